// Plays one HLS master playlist with hls.js (EME, Clear Key key lines) and
// licenses from a license server, then reports what happened (same report
// shape as player.js). hls.js takes the license URL from its configuration
// only: HLS has no license-URL signalling for Clear Key.
'use strict';

/**
 * @param {{manifestUrl: string, licenseUrl: ?string, minTime: number, timeoutMs: number}} options
 * @return {Promise<Object>} a JSON-serialisable report
 */
window.runPlayback = async function runPlayback(options) {
  const report = newReport('hls.js', Hls.version);
  const errorOf = (e) => ({category: 'hls.js', code: e && e.details, data: [String((e && e.reason) || (e && e.error) || e)]});
  report.warnings = [];
  const video = document.getElementById('video');
  video.muted = true;
  const hls = new Hls({
    debug: false,
    emeEnabled: true,
    drmSystems: options.licenseUrl ? {'org.w3.clearkey': {licenseUrl: options.licenseUrl}} : {},
    licenseXhrSetup: () => { report.licenseRequests += 1; },
    licenseResponseCallback: (xhr) => {
      report.licenseResponses.push(xhr.status);
      return xhr.response;
    },
  });
  hls.on(Hls.Events.ERROR, (event, data) => {
    if (data.fatal) report.errors.push(errorOf(data));
    else report.warnings.push(String(data.details));
  });
  const start = () => new Promise((resolve) => {
    hls.on(Hls.Events.MANIFEST_PARSED, resolve);
    hls.attachMedia(video);
    hls.loadSource(options.manifestUrl);
  });
  await drivePlayback(video, report, options, start, errorOf);
  hls.destroy();
  return report;
};
