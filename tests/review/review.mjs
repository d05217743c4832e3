// The review app in a real browser, driven by Playwright (playwright-core, Debian's chromium):
// rate clips with the keyboard, pick one, vote blind in the compare view (refused until both clips
// played), reload and find every rating and vote, and a second tab sees them. Screenshots of the
// grid and the compare view are left in the work folder. Prints one JSON line; exits 1 on failure.
//
//   node review.mjs <playwright-core dir> <app address> <work folder>
import { createRequire } from 'node:module';
import path from 'node:path';

const [pwDir, address, work] = process.argv.slice(2);
const require = createRequire(path.join(pwDir, 'index.js'));
const { chromium } = require(pwDir);

const failures = [];
const check = (ok, what) => { if (!ok) failures.push(what); };
const deadline = { timeout: 20000 };

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
});
const result = {};
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  // (The 409 of the early vote below is the one error the test causes on purpose.)
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().includes('status of 409')) errors.push(m.text()); });
  await page.goto(address);
  await page.waitForSelector('body[data-ready="1"]', deadline);
  const state = () => page.evaluate(async () => {
    const token = new URL(location.href).searchParams.get('token');
    const r = await fetch('/api/state?token=' + token);
    return r.json();
  });

  // The grid, with the keyboard: rate the focused clip 4, the next one 2, and pick it.
  const first = await page.getAttribute('figure.clip.focus', 'data-id');
  await page.keyboard.press('4');
  await page.waitForSelector(`figure.clip[data-id="${first}"][data-rating="4"]`, deadline);
  await page.keyboard.press('ArrowRight');
  const second = await page.getAttribute('figure.clip.focus', 'data-id');
  check(second && second !== first, 'ArrowRight moved to another clip');
  await page.keyboard.press('2');
  await page.keyboard.press('p');
  await page.waitForSelector(`figure.clip[data-id="${second}"][data-rating="2"][data-picked="true"]`, deadline);
  // Videos load as they come into view: far fewer than all of them at first.
  result.loaded_at_first = await page.evaluate(() => document.querySelectorAll('video[src]').length);
  result.clips = await page.evaluate(() => document.querySelectorAll('figure.clip').length);
  await page.screenshot({ path: path.join(work, 'review-grid.png') });

  // Compare: blind, the vote refused until both clips have played through.
  await page.keyboard.press('c');
  await page.waitForSelector('body[data-pair]', deadline);
  check(await page.isDisabled('#vote-left'), 'the vote button is disabled before the clips played');
  await page.keyboard.press('ArrowLeft'); // refused by the page
  const early = await page.evaluate(async () => {
    const token = new URL(location.href).searchParams.get('token');
    const [left, right] = document.body.dataset.pair.split('|');
    const r = await fetch('/api/vote?token=' + token, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-review-token': token },
      body: JSON.stringify({ left, right, winner: 'left', played: [true, false] }),
    });
    return r.status;
  });
  check(early === 409, `a vote before both clips played is refused by the server (got ${early})`);
  check((await state()).votes === 0, 'no vote was recorded before both clips played');
  result.can_play_h264 = await page.evaluate(() => document.createElement('video').canPlayType('video/mp4; codecs="avc1.42E01E"'));
  await page.click('#play-both');
  await page.waitForSelector('#vote-left:not([disabled])', deadline);
  const pair = await page.evaluate(() => document.body.dataset.pair);
  await page.screenshot({ path: path.join(work, 'review-compare.png') });
  await page.keyboard.press('ArrowLeft');
  await page.waitForSelector('body[data-votes="1"]', deadline);
  const afterVote = await state();
  check(afterVote.votes === 1, 'the vote was recorded');
  const shown = await page.textContent('#reveal');
  check(shown.includes('prompt=') || shown.includes('aspect_ratio='), 'the parameters are shown after the vote');
  result.vote = pair;

  // Reload: every rating, the pick and the vote are still there.
  await page.reload();
  await page.waitForSelector('body[data-ready="1"]', deadline);
  check(await page.$(`figure.clip[data-id="${first}"][data-rating="4"]`) !== null, 'the first rating survives a reload');
  check(await page.$(`figure.clip[data-id="${second}"][data-rating="2"][data-picked="true"]`) !== null, 'the second rating and the pick survive a reload');
  check((await state()).votes === 1, 'the vote survives a reload');

  // A second tab sees the same.
  const other = await context.newPage();
  await other.goto(address);
  await other.waitForSelector('body[data-ready="1"]', deadline);
  check(await other.$(`figure.clip[data-id="${first}"][data-rating="4"]`) !== null, 'a second tab sees the ratings');
  await other.click('#tab-wins');
  await other.waitForSelector('#values tr + tr', deadline);
  result.value_rows = await other.evaluate(() => document.querySelectorAll('#values tr').length - 1);
  check(errors.length === 0, 'no errors in the page: ' + errors.join(' | '));
  result.first = first;
  result.second = second;
} catch (e) {
  failures.push(String(e && e.stack || e));
} finally {
  await browser.close();
}
result.failures = failures;
console.log(JSON.stringify(result));
process.exit(failures.length ? 1 : 0);
