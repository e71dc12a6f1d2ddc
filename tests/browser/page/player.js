// Plays one DASH or HLS manifest with Shaka Player and Clear Key licenses from
// a license server, then reports what happened. The test driver (play.mjs)
// calls window.runPlayback(options) and reads the returned report.
'use strict';

const COMMON_SYSTEM_ID = [0x10, 0x77, 0xef, 0xec, 0xc0, 0xb2, 0x4d, 0x02, 0xac, 0xe3, 0x3c, 0x1e, 0x52, 0xe2, 0xfb, 0x4b];

/** A version-1 W3C common-system PSSH box listing ``keyIds`` (hex strings), which the Clear Key CDM reads. */
function commonPssh(keyIds) {
  const kids = [...keyIds];
  const box = new Uint8Array(36 + 16 * kids.length);
  const view = new DataView(box.buffer);
  view.setUint32(0, box.length);
  box.set([0x70, 0x73, 0x73, 0x68], 4);  // 'pssh'
  view.setUint32(8, 0x01000000);  // version 1, no flags
  box.set(COMMON_SYSTEM_ID, 12);
  view.setUint32(28, kids.length);
  kids.forEach((hex, i) => box.set(hex.match(/../g).map((h) => parseInt(h, 16)), 32 + 16 * i));
  return box;  // data size (last 4 bytes) stays 0
}

/** The KIDs (hex) of a Widevine PSSH box: the key_ids (field 2) of its WidevinePsshData. */
function widevineKeyIds(box) {
  const view = new DataView(box.buffer, box.byteOffset, box.byteLength);
  let pos = 28;  // size, 'pssh', version + flags, system id
  if (box[8] > 0) pos += 4 + 16 * view.getUint32(pos);  // version 1: the box's own KID list
  const end = Math.min(box.length, pos + 4 + view.getUint32(pos));
  pos += 4;
  const varint = () => {
    let value = 0;
    for (let shift = 0; pos < end; shift += 7) {
      const byte = box[pos++];
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) break;
    }
    return value;
  };
  const kids = [];
  while (pos < end) {
    const tag = varint();
    if ((tag & 7) === 0) { varint(); continue; }
    if ((tag & 7) !== 2) break;
    const length = varint();
    if (tag >> 3 === 2 && length === 16) {
      kids.push([...box.subarray(pos, pos + 16)].map((b) => b.toString(16).padStart(2, '0')).join(''));
    }
    pos += length;
  }
  return kids;
}

/**
 * Shaka Player 5.2 reads no KEYFORMAT="org.w3.clearkey" HLS key line (its HLS
 * parser knows identity, FairPlay, Widevine, PlayReady and WisePlay only, and
 * takes an identity URI as the key itself). To get Clear Key licenses for HLS
 * it must be told to use the Widevine key line with the Clear Key CDM:
 * keySystemsMapping turns that line's key system into org.w3.clearkey, and
 * initDataTransform hands the CDM a common-system PSSH of the KIDs in place of
 * the Widevine PSSH it cannot read. The KIDs come from the Widevine PSSH (the
 * packager lists every KID of the title there), not from the KEYIDs Shaka has
 * seen so far: it loads media playlists lazily, so a rendition switched to
 * later would otherwise have no key.
 */
function hlsClearKeyConfig(licenseUrl) {
  return {
    keySystemsMapping: {'com.widevine.alpha': 'org.w3.clearkey'},
    servers: {'com.widevine.alpha': licenseUrl, 'org.w3.clearkey': licenseUrl},
    initDataTransform: (initData, initDataType, drmInfo) => {
      if (!drmInfo || drmInfo.keySystem !== 'org.w3.clearkey' || initDataType !== 'cenc') return initData;
      const kids = new Set([...widevineKeyIds(initData), ...drmInfo.keyIds]);
      return kids.size ? commonPssh(kids) : initData;
    },
  };
}

/**
 * @param {{manifestUrl: string, licenseUrl: ?string, minTime: number, timeoutMs: number}} options
 * @return {Promise<Object>} a JSON-serialisable report
 */
window.runPlayback = async function runPlayback(options) {
  const report = newReport('shaka', shaka.Player.version);
  report.shakaVersion = shaka.Player.version;
  const errorOf = (e) => (e instanceof shaka.util.Error || (e && e.category !== undefined) ? {
    category: e.category, code: e.code, severity: e.severity,
    data: (e.data || []).map((d) => (d instanceof Object ? String(d.message || d) : d)),
  } : {category: -1, code: -2, data: [String(e)]});
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
  const hls = /\.m3u8(\?|$)/.test(options.manifestUrl);
  const drm = hls && options.licenseUrl ? hlsClearKeyConfig(options.licenseUrl) :
    {servers: options.licenseUrl ? {'org.w3.clearkey': options.licenseUrl} : {}};
  player.configure({
    drm: Object.assign(drm, {retryParameters: retry}),
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
  await drivePlayback(video, report, options, () => player.load(options.manifestUrl), errorOf);
  await Promise.race([player.destroy(), new Promise((resolve) => setTimeout(resolve, 2000))]);
  return report;
};
