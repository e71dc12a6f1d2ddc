// Opens a drm-conformance HTML report in headless Chromium (Debian's, driven by
// playwright-core; never a downloaded browser) and saves a PNG of its top part:
// the header, the counts and the matrix, with the first evidence entry opened.
//
// usage: node screenshot.mjs '{"report": "/abs/report.html", "out": "/abs/shot.png",
//                              "nodeModules": "/abs/node_modules", "chromium": "/usr/bin/chromium",
//                              "width": 1280, "maxHeight": 2400}'
import {mkdtempSync, rmSync} from 'node:fs';
import {createRequire} from 'node:module';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {pathToFileURL} from 'node:url';

const options = JSON.parse(process.argv[2] || '{}');
const require = createRequire(join(options.nodeModules, 'resolve-from-here.js'));
const {chromium} = require('playwright-core');
const userDataDir = mkdtempSync(join(tmpdir(), 'drm-conformance-shot-'));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: options.chromium || '/usr/bin/chromium', headless: true, timeout: 60000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
    viewport: {width: options.width || 1280, height: 900},
  });
  const page = context.pages()[0] || await context.newPage();
  await page.goto(pathToFileURL(options.report).href, {waitUntil: 'load', timeout: 30000});
  const height = await page.evaluate(() => {
    const first = document.querySelector('details');
    if (first) first.open = true;
    const end = first ? first.getBoundingClientRect().bottom + window.scrollY : document.body.scrollHeight;
    return Math.ceil(end + 16);
  });
  await page.screenshot({path: options.out, fullPage: true,
                         clip: {x: 0, y: 0, width: options.width || 1280, height: Math.min(height, options.maxHeight || 2400)}});
  process.stdout.write(JSON.stringify({ok: true, out: options.out, height}) + '\n');
} catch (error) {
  process.stdout.write(JSON.stringify({ok: false, error: String(error)}) + '\n');
  process.exitCode = 2;
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, {recursive: true, force: true});
}
process.exit(process.exitCode ?? 0);
