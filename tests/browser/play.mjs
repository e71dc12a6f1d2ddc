// Drives headless Debian Chromium (never a downloaded browser) through
// playwright-core: opens the test page, plays one manifest with Clear Key
// licenses and prints the page's report as one JSON line on stdout.
//
// usage: node play.mjs '{"pageUrl": ..., "manifestUrl": ..., "licenseUrl": ...,
//                        "minTime": 2, "timeoutMs": 30000, "chromium": "/usr/bin/chromium"}'
import {mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {chromium} from 'playwright-core';

const options = JSON.parse(process.argv[2] || '{}');
const executablePath = options.chromium || process.env.DRM_CHROMIUM || '/usr/bin/chromium';
const userDataDir = mkdtempSync(join(tmpdir(), 'drm-chromium-'));
const args = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required', '--mute-audio',
];

/** Reject if ``promise`` has not settled after ``ms`` milliseconds. */
function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

let context;
const console_ = [];
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath, headless: true, args, timeout: 60000,
  });
  const page = context.pages()[0] || await context.newPage();
  page.on('console', (msg) => console_.push(`${msg.type()}: ${msg.text()}`.slice(0, 500)));
  page.on('pageerror', (err) => console_.push(`pageerror: ${err.message}`.slice(0, 500)));
  await page.goto(options.pageUrl, {waitUntil: 'load', timeout: 30000});
  const timeoutMs = options.timeoutMs ?? 30000;
  const report = await withTimeout(page.evaluate((opts) => window.runPlayback(opts), {
    manifestUrl: options.manifestUrl,
    licenseUrl: options.licenseUrl,
    minTime: options.minTime ?? 2,
    timeoutMs,
  }), timeoutMs + 15000, 'the page did not report');
  report.browserVersion = context.browser()?.version() ?? null;
  report.console = console_.slice(-40);
  process.stdout.write(JSON.stringify(report) + '\n');
} catch (error) {
  process.stdout.write(JSON.stringify({ok: false, driverError: String(error), console: console_.slice(-40)}) + '\n');
  process.exitCode = 2;
} finally {
  if (context) await withTimeout(context.close(), 10000, 'close').catch(() => {});
  rmSync(userDataDir, {recursive: true, force: true});
}
process.exit(process.exitCode ?? 0);
