// End-to-end test of the console page in headless Chromium (driven by tests/test_console.py).
//
// Log in, upload a clip with small parts, reload mid-upload, resume by picking the file again,
// wait until playable, check that the video plays, the snapshots show and every rendition
// downloads, and save a screenshot. Everything stays on 127.0.0.1.
//
// Environment: CONSOLE_URL, CONSOLE_KEY, CLIP, SCREENSHOT, USER_DATA_DIR, CHROMIUM,
// PLAYWRIGHT_FROM (a package.json whose node_modules hold playwright-core), EXPECT_HLS (1|0),
// PART_KIB (default 100), PART_DELAY_MS (default 150).
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename } from 'node:path';

const env = process.env;
const require = createRequire(env.PLAYWRIGHT_FROM);
const { chromium } = require('playwright-core');

const BASE = env.CONSOLE_URL;
const CLIP = env.CLIP;
const CLIP_NAME = basename(CLIP);
const CLIP_SIZE = statSync(CLIP).size;
const PART = Number(env.PART_KIB || 100) * 1024;
const PART_COUNT = Math.ceil(CLIP_SIZE / PART);
let partDelay = Number(env.PART_DELAY_MS || 150);

const step = (name, extra = {}) => console.log(JSON.stringify({ step: name, t: Math.round(performance.now()), ...extra }));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Wait until the player plays (optionally from a given source); on timeout, say what it did. */
async function waitPlaying(page, source = null) {
  try {
    await page.waitForFunction(
      (want) => {
        const v = document.getElementById('player');
        return v && (!want || v.dataset.source === want) && !v.paused && v.currentTime > 0 && v.readyState >= 2;
      },
      source,
      { timeout: 30_000 },
    );
  } catch (err) {
    const state = await page.evaluate(() => {
      const v = document.getElementById('player');
      return {
        source: v?.dataset.source,
        src: v?.currentSrc,
        paused: v?.paused,
        currentTime: v?.currentTime,
        readyState: v?.readyState,
        error: v?.error && { code: v.error.code, message: v.error.message },
        status: document.getElementById('video')?.dataset.status,
        videoError: document.getElementById('video-error')?.textContent,
        hls: typeof window.Hls,
      };
    });
    throw new Error(`the video did not play: ${JSON.stringify(state)} (${err.message})`);
  }
}

const context = await chromium.launchPersistentContext(env.USER_DATA_DIR, {
  executablePath: env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--no-first-run',
    '--disable-quic',
    '--disable-sync',
    '--autoplay-policy=no-user-gesture-required',
  ],
  viewport: { width: 1100, height: 900 },
});
const problems = [];
try {
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(30_000);
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') console.log(JSON.stringify({ console: msg.text() }));
  });
  const offsite = [];
  page.on('request', (req) => {
    const url = new URL(req.url());
    if (!['127.0.0.1', 'localhost'].includes(url.hostname) && !['data:', 'blob:'].includes(url.protocol)) {
      offsite.push(req.url());
    }
  });

  // Part PUTs: the throttle that makes a reload mid-upload possible, and a record of each part.
  const parts = []; // {phase, pseq, status}
  let phase = 1;
  await page.route(
    (url) => url.pathname === '/video/upload/upload',
    async (route) => {
      if (partDelay) await sleep(partDelay);
      try {
        await route.continue();
      } catch {
        // The page navigated away while this part waited: the request is gone.
      }
    },
  );
  page.on('response', (res) => {
    const url = new URL(res.url());
    if (url.pathname === '/video/upload/upload' && res.request().method() === 'PUT') {
      parts.push({ phase, pseq: Number(url.searchParams.get('pseq')), status: res.status() });
    }
  });

  // 1. log in (a wrong key first)
  await page.goto(`${BASE}/console`);
  await page.locator('#login').waitFor({ state: 'visible' });
  await page.fill('#login-key', 'not-the-key');
  await page.click('#login-form button[type=submit]');
  await page.waitForFunction(() => document.getElementById('login-error').textContent.length > 0);
  assert.match(await page.textContent('#login-error'), /wrong console key/i);
  await page.fill('#login-key', env.CONSOLE_KEY);
  await page.click('#login-form button[type=submit]');
  await page.locator('#console').waitFor({ state: 'visible' });
  step('logged_in');
  const cookies = await context.cookies(`${BASE}/console/api/session`);
  const session = cookies.find((c) => c.name === 'vasset_console');
  assert.ok(session, 'no session cookie');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');
  assert.equal(await page.evaluate(() => document.cookie.includes('vasset_console')), false);

  // 2. upload with small parts, one at a time, slowed down
  await page.locator('#upload-settings summary').click();
  await page.fill('#part-size', String(PART / 1024));
  await page.fill('#parallel', '1');
  await page.setInputFiles('#file', CLIP);
  await page.waitForFunction(() => Number(document.getElementById('upload').dataset.percent || 0) >= 25);
  const vid = Number(await page.getAttribute('#upload', 'data-vid'));
  assert.ok(vid > 0, 'no vid while uploading');
  assert.equal(await page.getAttribute('#video', 'data-status'), 'uploading');
  const before = new Set(parts.filter((p) => p.status === 200).map((p) => p.pseq));
  step('reload_mid_upload', { vid, parts_before: before.size, part_count: PART_COUNT });
  assert.ok(before.size < PART_COUNT, 'the upload finished before the reload');

  // 3. reload; the page offers to resume; pick the same file again
  phase = 2;
  partDelay = 0;
  await page.reload();
  await page.locator('#console').waitFor({ state: 'visible' });
  const offer = page.locator(`#resumable-list li[data-name="${CLIP_NAME}"]`);
  await offer.waitFor({ state: 'visible' });
  await page.waitForFunction(
    (name) => document.querySelector(`#resumable-list li[data-name="${name}"]`)?.dataset.percent,
    CLIP_NAME,
  );
  assert.match(await page.textContent('#resumable'), /Resume available/);
  const offered = Number(await offer.getAttribute('data-percent'));
  assert.ok(offered > 0 && offered < 100, `resume offer at ${offered} %`);
  // The reloaded page shows the video it was uploading.
  assert.equal(await page.getAttribute('#video', 'data-vid'), String(vid));
  step('resume_offered', { percent: offered });

  await page.setInputFiles('#file', CLIP);
  await page.locator('#upload[data-state="complete"]').waitFor({ timeout: 60_000 });
  assert.equal(await page.getAttribute('#upload', 'data-resumed'), 'true');
  assert.equal(Number(await page.getAttribute('#upload', 'data-vid')), vid);
  const after = parts.filter((p) => p.phase === 2 && p.status === 200).map((p) => p.pseq);
  for (const pseq of after) assert.ok(!before.has(pseq), `part ${pseq} was uploaded again after the reload`);
  assert.ok(after.length < PART_COUNT, 'the resumed upload sent every part again');
  // A part in flight at the reload may have been stored without the page seeing the answer.
  assert.ok(before.size + after.length >= PART_COUNT - 1, 'parts are missing');
  step('upload_complete', { parts_after: after.length });

  // 4. transcoded and playing
  await page.locator('#video[data-status="playable"]').waitFor({ timeout: 90_000 });
  step('playable');
  // Live events can start an MP4 rendition before the HLS master is published; once the video
  // is final the page switches to HLS, so wait for the player it settles on.
  await waitPlaying(page, env.EXPECT_HLS === '1' ? 'hls.js' : null);
  const source = await page.getAttribute('#player', 'data-source');
  if (env.EXPECT_HLS === '1') {
    const shown = await page.textContent('#player-source');
    assert.equal(source, 'hls.js', `hls.js did not play the HLS master (the page shows: ${shown})`);
  }
  step('playing', { source });

  // 5. snapshots are visible
  await page.locator('#snapshots img').first().waitFor({ state: 'visible' });
  await page.waitForFunction(() => {
    const imgs = [...document.querySelectorAll('#snapshots img')];
    return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  });
  const snapshots = await page.locator('#snapshots img').count();
  step('snapshots', { count: snapshots });

  // 6. every rendition downloads
  const links = await page.$$eval('#downloads a[download]', (as) => as.map((a) => a.href));
  assert.ok(links.length >= 1, 'no download links');
  for (const href of links) {
    const res = await context.request.get(href);
    assert.equal(res.status(), 200, `download ${href}`);
    const body = await res.body();
    assert.equal(body.subarray(4, 8).toString('latin1'), 'ftyp', 'a download is not an MP4');
  }
  step('downloads', { count: links.length });

  await page.evaluate(() => {
    // Freeze the frame for a stable screenshot.
    document.getElementById('player').pause();
  });
  await page.screenshot({ path: env.SCREENSHOT, fullPage: true });

  // 7. without hls.js (and without native HLS, which recent Chromium has) the page plays MP4
  const plain = await context.newPage();
  await plain.addInitScript(() => {
    const canPlayType = HTMLMediaElement.prototype.canPlayType;
    HTMLMediaElement.prototype.canPlayType = function (type) {
      return /mpegurl/i.test(type) ? '' : canPlayType.call(this, type);
    };
  });
  plain.on('pageerror', (err) => problems.push(`page error (no hls.js): ${err.message}`));
  await plain.route((url) => url.pathname.endsWith('/hls.min.js'), (route) => route.fulfill({ status: 404, body: '' }));
  await plain.goto(`${BASE}/console#vid=${vid}`);
  await waitPlaying(plain, 'mp4');
  await plain.close();
  step('mp4_fallback');

  assert.deepEqual(offsite, [], 'the page reached beyond 127.0.0.1');
  assert.deepEqual(problems, []);
  step('done', { vid, screenshot: env.SCREENSHOT });
} finally {
  await context.close();
}
