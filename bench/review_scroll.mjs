// The review app over a large run, in Chromium driven by Playwright: how long the page takes to be
// ready, how many videos it asks for at first, and while scrolling 20 screens down, how many
// video elements hold a source at once. Prints one JSON line.
//
//   node review_scroll.mjs <playwright-core dir> <app address>
import { createRequire } from 'node:module';
import path from 'node:path';

const [pwDir, address] = process.argv.slice(2);
const { chromium } = createRequire(path.join(pwDir, 'index.js'))(pwDir);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
const requested = new Set();
let videoRequests = 0;
page.on('request', (r) => { const u = new URL(r.url()); if (u.pathname.startsWith('/v/')) { videoRequests++; requested.add(u.pathname); } });
const started = Date.now();
await page.goto(address);
await page.waitForSelector('body[data-ready="1"]', { timeout: 120000 });
const ready_ms = Date.now() - started;
await page.waitForTimeout(500);
const atOpen = { requests: videoRequests, with_src: await page.evaluate(() => document.querySelectorAll('video[src]').length) };
const builtAtOpen = await page.evaluate(() => document.querySelectorAll('figure.clip').length);
const clips = await page.evaluate(async () => (await (await fetch('/api/state' + location.search)).json()).clips.length);
let maxWithSrc = atOpen.with_src;
for (let i = 0; i < 20; i++) {
  await page.evaluate(() => { const s = document.querySelector('.scroll'); s.scrollBy(0, s.clientHeight); });
  await page.waitForTimeout(250);
  maxWithSrc = Math.max(maxWithSrc, await page.evaluate(() => document.querySelectorAll('video[src]').length));
}
const builtAfter = await page.evaluate(() => document.querySelectorAll('figure.clip').length);
const heap = await page.evaluate(() => (performance.memory ? performance.memory.usedJSHeapSize : null));
console.log(JSON.stringify({ clips, ready_ms, at_open: { ...atOpen, clips_built: builtAtOpen }, after_20_screens: { requests: videoRequests, distinct_videos: requested.size, max_with_src: maxWithSrc, clips_built: builtAfter }, js_heap_bytes: heap }));
await browser.close();
