// A line-oriented driver of headless Debian Chromium (playwright-core) for the console tests:
// each stdin line is a JSON command, each stdout line its JSON answer. The Python test
// interleaves browser steps with device-emulator commands.
//
// usage: node console_driver.mjs '{"chromium": "/usr/bin/chromium"}'
import {mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import readline from 'node:readline';
import {chromium} from 'playwright-core';

const options = JSON.parse(process.argv[2] || '{}');
const userDataDir = mkdtempSync(join(tmpdir(), 'drm-console-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: options.chromium || '/usr/bin/chromium', headless: true, timeout: 60000,
  viewport: {width: 1280, height: 860},
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
const page = context.pages()[0] || await context.newPage();
const logs = [];
page.on('console', (msg) => logs.push(`${msg.type()}: ${msg.text()}`.slice(0, 300)));
page.on('pageerror', (err) => logs.push(`pageerror: ${err.message}`.slice(0, 300)));

const ops = {
  goto: (c) => page.goto(c.url, {waitUntil: 'load'}).then(() => null),
  fill: (c) => page.fill(c.selector, c.value).then(() => null),
  click: (c) => page.click(c.selector).then(() => null),
  // Wait until the selector's text contains c.text; answers the elapsed milliseconds.
  waitText: async (c) => {
    const start = Date.now();
    await page.waitForFunction(([s, t]) => [...document.querySelectorAll(s)].some((e) => e.textContent.includes(t)),
      [c.selector, c.text], {timeout: c.timeout ?? 5000, polling: 50});
    return Date.now() - start;
  },
  // Hold every response whose URL matches the glob c.url for c.ms milliseconds (a slow server).
  delay: (c) => page.route(c.url, async (route) => {
    await new Promise((resolve) => setTimeout(resolve, c.ms));
    await route.continue();
  }).then(() => null),
  text: (c) => page.textContent(c.selector),
  count: (c) => page.locator(c.selector).count(),
  hash: () => page.evaluate(() => location.hash),
  evaluate: (c) => page.evaluate(c.expression),
  screenshot: (c) => page.screenshot({path: c.path, fullPage: c.fullPage ?? false}).then(() => null),
  logs: () => logs.slice(-40),
};

const input = readline.createInterface({input: process.stdin});
for await (const line of input) {
  const command = JSON.parse(line);
  if (command.op === 'quit') break;
  try {
    const result = await ops[command.op](command);
    process.stdout.write(JSON.stringify({ok: true, result}) + '\n');
  } catch (error) {
    process.stdout.write(JSON.stringify({ok: false, error: String(error).slice(0, 2000), logs: logs.slice(-20)}) + '\n');
  }
}
await context.close().catch(() => {});
rmSync(userDataDir, {recursive: true, force: true});
process.exit(0);
