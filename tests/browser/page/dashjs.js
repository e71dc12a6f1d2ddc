// Plays one DASH manifest with dash.js and Clear Key licenses from a license
// server, then reports what happened (same report shape as player.js).
'use strict';

/**
 * @param {{manifestUrl: string, licenseUrl: ?string, minTime: number, timeoutMs: number}} options
 * @return {Promise<Object>} a JSON-serialisable report
 */
window.runPlayback = async function runPlayback(options) {
  const player = dashjs.MediaPlayer().create();
  const report = newReport('dash.js', player.getVersion());
  const errorOf = (e) => {
    const error = (e && e.error) || e;
    return {category: 'dash.js', code: error && error.code, data: [String((error && error.message) || error)]};
  };
  const video = document.getElementById('video');
  video.muted = true;
  player.updateSettings({debug: {logLevel: dashjs.Debug.LOG_LEVEL_WARNING}});
  player.registerLicenseRequestFilter(() => {
    report.licenseRequests += 1;
    return Promise.resolve();
  });
  // dash.js runs response filters on 2xx answers only; refusals come as errors.
  player.registerLicenseResponseFilter(() => {
    report.licenseResponses.push(200);
    return Promise.resolve();
  });
  player.on(dashjs.MediaPlayer.events.ERROR, (e) => report.errors.push(errorOf(e)));
  // Without a licenseUrl, dash.js takes it from the manifest (clearkey:Laurl).
  if (options.licenseUrl) player.setProtectionData({'org.w3.clearkey': {serverURL: options.licenseUrl}});
  const start = () => new Promise((resolve) => {
    player.on(dashjs.MediaPlayer.events.STREAM_INITIALIZED, resolve);
    player.initialize(video, options.manifestUrl, false);
  });
  await drivePlayback(video, report, options, start, errorOf);
  try { player.reset(); } catch (e) { /* the report is what matters */ }
  return report;
};
