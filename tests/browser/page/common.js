// Shared part of the test pages (player.html for Shaka Player, dashjs.html,
// hlsjs.html): the report every page returns and the bounded playback drive.
'use strict';

/** A fresh report; every page fills the same fields so the tests read one shape. */
window.newReport = function newReport(player, version) {
  return {
    ok: false, player, version, errors: [], licenseRequests: 0, licenseResponses: [],
    currentTime: 0, totalVideoFrames: 0, droppedVideoFrames: 0, keyStatuses: [],
  };
};

/**
 * Load with ``start()`` (a promise settled when the player has the manifest),
 * play, and wait until ``minTime`` is reached. Nothing may wait forever: a
 * refused license leaves the media element waiting for a key, so every wait
 * is bounded by the deadline and ends early on the first error.
 */
window.drivePlayback = async function drivePlayback(video, report, options, start, errorOf) {
  const deadline = Date.now() + options.timeoutMs;
  const record = (e) => { report.errors.push(errorOf(e)); };
  const waitFor = async (condition) => {
    while (Date.now() < deadline && report.errors.length === 0 && !condition()) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  let loaded = false;
  start().then(() => { loaded = true; }, record);
  await waitFor(() => loaded);
  if (loaded && report.errors.length === 0) {
    // A player that resets its MediaSource after load (Shaka does for some
    // HLS content) interrupts a pending play() with an AbortError: play again.
    let started = false;
    const play = (attempts) => video.play().then(() => { started = true; }, (e) => {
      if (e && e.name === 'AbortError' && attempts > 1) {
        setTimeout(() => play(attempts - 1), 200);
      } else {
        record(e);
      }
    });
    play(5);
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
  return report;
};
