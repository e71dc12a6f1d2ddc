// Plays one DASH manifest with Shaka Player and Clear Key licenses from a
// license server, then reports what happened. The test driver (play.mjs)
// calls window.runPlayback(options) and reads the returned report.
'use strict';

/**
 * @param {{manifestUrl: string, licenseUrl: ?string, minTime: number, timeoutMs: number}} options
 * @return {Promise<Object>} a JSON-serialisable report
 */
window.runPlayback = async function runPlayback(options) {
  const report = {
    ok: false,
    shakaVersion: shaka.Player.version,
    errors: [],
    licenseRequests: 0,
    licenseResponses: [],
    currentTime: 0,
    totalVideoFrames: 0,
    droppedVideoFrames: 0,
    keyStatuses: [],
  };
  const errorOf = (e) => ({
    category: e.category, code: e.code, severity: e.severity,
    data: (e.data || []).map((d) => (d instanceof Object ? String(d.message || d) : d)),
  });
  shaka.polyfill.installAll();
  if (!shaka.Player.isBrowserSupported()) {
    report.errors.push({category: -1, code: -1, data: ['browser not supported by Shaka']});
    return report;
  }
  const video = document.getElementById('video');
  video.muted = true;
  const player = new shaka.Player();
  await player.attach(video);
  // Without a licenseUrl, Shaka takes the license URL from the manifest
  // (the DASH-IF Clear Key dashif:Laurl / clearkey:Laurl signalling).
  const retry = {maxAttempts: 1, timeout: 10000};
  player.configure({
    drm: {servers: options.licenseUrl ? {'org.w3.clearkey': options.licenseUrl} : {}, retryParameters: retry},
    streaming: {retryParameters: retry},
    manifest: {retryParameters: retry},
  });
  const RequestType = shaka.net.NetworkingEngine.RequestType;
  player.getNetworkingEngine().registerRequestFilter((type) => {
    if (type === RequestType.LICENSE) report.licenseRequests += 1;
  });
  player.getNetworkingEngine().registerResponseFilter((type, response) => {
    if (type === RequestType.LICENSE) report.licenseResponses.push(response.status || 200);
  });
  player.addEventListener('error', (event) => report.errors.push(errorOf(event.detail)));
  player.addEventListener('keystatuschanged', () => {
    const statuses = player.getKeyStatuses();
    report.keyStatuses = Object.keys(statuses).map((kid) => `${kid}:${statuses[kid]}`);
  });

  // Nothing below may wait forever: a refused license can leave load() or
  // play() pending (the media element waits for a key), so every wait is
  // bounded by the deadline and ends early on the first error.
  const deadline = Date.now() + options.timeoutMs;
  const settled = (promise) => promise.then(() => true, (e) => {
    report.errors.push(e instanceof shaka.util.Error ? errorOf(e) : {category: -1, code: -2, data: [String(e)]});
    return true;
  });
  const waitFor = async (condition) => {
    while (Date.now() < deadline && report.errors.length === 0 && !condition()) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  let loaded = false;
  settled(player.load(options.manifestUrl)).then(() => { loaded = true; });
  await waitFor(() => loaded);
  if (loaded && report.errors.length === 0) {
    let started = false;
    settled(video.play()).then(() => { started = true; });
    await waitFor(() => started);
    await waitFor(() => video.currentTime >= options.minTime);
  }
  report.timedOut = Date.now() >= deadline;
  const quality = video.getVideoPlaybackQuality();
  report.currentTime = video.currentTime;
  report.totalVideoFrames = quality.totalVideoFrames;
  report.droppedVideoFrames = quality.droppedVideoFrames;
  report.mediaError = video.error ? {code: video.error.code, message: video.error.message} : null;
  report.ok = report.errors.length === 0 && video.currentTime >= options.minTime && quality.totalVideoFrames > 0;
  await Promise.race([player.destroy(), new Promise((resolve) => setTimeout(resolve, 2000))]);
  return report;
};
