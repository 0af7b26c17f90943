// The console's video management in headless Chromium (driven by tests/test_console.py).
//
// Page through the app's videos ("Load more" and the status filter), play a playable video,
// hover the scrub bar and check the storyboard tile, pick its captions (hls.js, then <track>
// on MP4), retranscode it with a template while the progress label shows "N %", and delete it (a confirm that
// is first dismissed, then accepted). Everything stays on 127.0.0.1.
//
// Environment: CONSOLE_URL, CONSOLE_KEY, USER_DATA_DIR, CHROMIUM, PLAYWRIGHT_FROM, VID (a
// playable video of the console app), LISTED (how many videos the app has), EXPECT_STORYBOARD
// (1|0), CAPTION_LANG (a caption the video has, or empty), TEMPLATE (a template of the app to
// retranscode with, or empty).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const env = process.env;
const require = createRequire(env.PLAYWRIGHT_FROM);
const { chromium } = require('playwright-core');

const BASE = env.CONSOLE_URL;
const VID = Number(env.VID);
const LISTED = Number(env.LISTED);
const LANG = env.CAPTION_LANG || '';
const step = (name, extra = {}) => console.log(JSON.stringify({ step: name, ...extra }));

async function waitPlaying(page, source) {
  await page.waitForFunction(
    (want) => {
      const v = document.getElementById('player');
      return v && v.dataset.source === want && !v.paused && v.currentTime > 0 && v.readyState >= 2;
    },
    source,
    { timeout: 30_000 },
  );
}

/** Select the caption language and wait until a showing text track has its cues. */
async function showCaptions(page) {
  await page.locator('#captions-box').waitFor({ state: 'visible' });
  await page.selectOption('#captions', LANG);
  await page.waitForFunction(
    (lang) => [...document.getElementById('player').textTracks].some(
      (t) => t.mode === 'showing' && t.language === lang && t.cues && t.cues.length > 0,
    ),
    LANG,
    { timeout: 30_000 },
  );
}

const context = await chromium.launchPersistentContext(env.USER_DATA_DIR, {
  executablePath: env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required',
  ],
  viewport: { width: 1100, height: 900 },
});
const problems = [];
try {
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(30_000);
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  const offsite = [];
  page.on('request', (req) => {
    const url = new URL(req.url());
    if (!['127.0.0.1', 'localhost'].includes(url.hostname) && !['data:', 'blob:'].includes(url.protocol)) {
      offsite.push(req.url());
    }
  });

  await page.goto(`${BASE}/console`);
  await page.fill('#login-key', env.CONSOLE_KEY);
  await page.click('#login-form button[type=submit]');
  await page.locator('#console').waitFor({ state: 'visible' });

  // 1. paging: a first page of 15, "Load more" until every video is listed once, newest first
  const listed = () => page.$$eval('#recent-list li', (lis) => lis.map((li) => Number(li.dataset.vid)));
  await page.waitForFunction(() => document.querySelectorAll('#recent-list li').length > 0);
  assert.equal((await listed()).length, 15);
  let clicks = 0;
  while (await page.locator('#load-more').isVisible()) {
    const before = (await listed()).length;
    await page.click('#load-more');
    await page.waitForFunction((n) => document.querySelectorAll('#recent-list li').length > n, before);
    clicks += 1;
  }
  const all = await listed();
  assert.equal(all.length, LISTED, `listed ${all.length} of ${LISTED}`);
  assert.deepEqual(all, [...new Set(all)].sort((a, b) => b - a));
  assert.ok(all.includes(VID));
  await page.selectOption('#status-filter', 'playable');
  await page.waitForFunction(() => {
    const lis = [...document.querySelectorAll('#recent-list li')];
    return lis.length > 0 && lis.every((li) => li.dataset.status === 'playable');
  });
  assert.ok((await listed()).includes(VID));
  assert.equal(await page.locator('#load-more').isVisible(), false);
  step('paged', { listed: all.length, clicks });

  // 2. the video plays, its progress label reads 100 %
  await page.click(`#recent-list li[data-vid="${VID}"] a`);
  await page.locator('#video[data-status="playable"]').waitFor();
  await waitPlaying(page, 'hls.js');
  assert.equal((await page.textContent('#video-progress-label')).trim(), '100 %');
  step('playing');

  // 3. storyboard: hovering the scrub bar shows the tile of the time under the pointer
  if (env.EXPECT_STORYBOARD === '1') {
    await page.locator('#scrub').waitFor({ state: 'visible' });
    await page.locator('#scrub-bar').scrollIntoViewIfNeeded();
    const bar = await page.locator('#scrub-bar').boundingBox();
    const board = await page.evaluate((vid) => fetch(`/console/api/videos/${vid}/storyboard`).then((r) => r.json()), VID);
    const tiles = [];
    for (const frac of [0.1, 0.9]) {
      await page.mouse.move(bar.x + bar.width * frac, bar.y + bar.height / 2);
      await page.locator('#scrub-preview').waitFor({ state: 'visible' });
      const shown = await page.evaluate(() => {
        const p = document.getElementById('scrub-preview');
        const t = document.getElementById('scrub-tile');
        return { uri: p.dataset.uri, url: p.dataset.url, time: Number(p.dataset.time), w: t.style.width, bg: t.style.backgroundImage };
      });
      assert.match(shown.uri, /^sheet\d+\.jpg#xywh=\d+,\d+,\d+,\d+$/);
      const [, , w] = shown.uri.split('=')[1].split(',');
      assert.equal(shown.w, `${w}px`);
      assert.ok(shown.bg.includes(shown.url));
      const res = await context.request.get(shown.url);
      assert.equal(res.status(), 200);
      assert.deepEqual([...(await res.body()).subarray(0, 2)], [0xff, 0xd8], 'the sheet is not a JPEG');
      // The tile is the cue of the hovered time (cue lookup from the same VTT, outside the page).
      const vtt = await (await context.request.get(board.vtt_url)).text();
      const cue = vtt.split(/\n\n+/).map((block) => block.split('\n').filter((l) => l.trim())).find((lines) => {
        const m = lines.find((l) => l.includes('-->'));
        if (!m) return false;
        const [a, b] = m.split('-->').map((s) => s.trim().split(':').reduce((x, p) => x * 60 + Number(p), 0));
        return shown.time >= a && shown.time < b;
      });
      assert.ok(cue, `no cue at ${shown.time}`);
      assert.equal(cue[cue.length - 1].trim().replace(/^.*\/(sheet)/, '$1'), shown.uri);
      tiles.push(shown.uri);
    }
    assert.notEqual(tiles[0], tiles[1], 'two times far apart showed the same tile');
    // A click on the bar seeks.
    await page.mouse.click(bar.x + bar.width * 0.5, bar.y + bar.height / 2);
    await page.mouse.move(bar.x, bar.y - 200);
    await page.locator('#scrub-preview').waitFor({ state: 'hidden' });
    step('storyboard', { tiles });
  }

  // 4. captions: the HLS master's SUBTITLES group through hls.js, <track> elements on MP4
  if (LANG) {
    await page.waitForFunction(() => Number(document.getElementById('player').dataset.subtitleTracks || 0) >= 1);
    await showCaptions(page);
    const plain = await context.newPage();
    await plain.addInitScript(() => {
      const canPlayType = HTMLMediaElement.prototype.canPlayType;
      HTMLMediaElement.prototype.canPlayType = function (type) {
        return /mpegurl/i.test(type) ? '' : canPlayType.call(this, type);
      };
    });
    plain.on('pageerror', (err) => problems.push(`page error (no hls.js): ${err.message}`));
    await plain.route((url) => url.pathname.endsWith('/hls.min.js'), (route) => route.fulfill({ status: 404, body: '' }));
    await plain.goto(`${BASE}/console#vid=${VID}`);
    await waitPlaying(plain, 'mp4');
    const tracks = await plain.$$eval('#player track', (ts) => ts.map((t) => ({ lang: t.srclang, kind: t.kind })));
    assert.deepEqual(tracks, [{ lang: LANG, kind: 'subtitles' }]);
    await showCaptions(plain);
    await plain.close();
    step('captions', { tracks: tracks.length });
  }

  // 5. retranscode: the label follows the progress in per cent until playable again
  if (env.TEMPLATE) {
    await page.locator('#template-box').waitFor({ state: 'visible' });
    await page.selectOption('#template', env.TEMPLATE);
  }
  await page.click('#retranscode');
  await page.waitForFunction(() => document.getElementById('action-note').textContent.includes('queued'));
  const note = await page.textContent('#action-note');
  if (env.TEMPLATE) assert.ok(note.includes(`template ${env.TEMPLATE}`), note);
  const labels = new Set();
  const deadline = Date.now() + 120_000;
  let status = '';
  let seenQueued = false;
  while (Date.now() < deadline) {
    const now = await page.evaluate(() => ({
      status: document.getElementById('video').dataset.status,
      label: document.getElementById('video-progress-label').textContent.trim(),
      value: document.getElementById('video-progress').value,
    }));
    assert.match(now.label, /^\d{1,3} %$/);
    assert.equal(now.label, `${now.value} %`);
    labels.add(now.label);
    status = now.status;
    if (status !== 'playable') seenQueued = true;
    if (seenQueued && status === 'playable') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(status, 'playable');
  assert.ok(seenQueued, 'the page never showed the retranscode');
  assert.equal((await page.textContent('#video-progress-label')).trim(), '100 %');
  await waitPlaying(page, 'hls.js');
  step('retranscoded', { labels: [...labels] });

  // 6. delete: dismissing the confirm keeps the video, accepting it deletes it
  page.once('dialog', (d) => d.dismiss());
  await page.click('#delete');
  assert.equal(await page.getAttribute('#video', 'data-vid'), String(VID));
  let asked = '';
  page.once('dialog', (d) => {
    asked = d.message();
    d.accept();
  });
  await page.click('#delete');
  await page.locator('#video').waitFor({ state: 'hidden' });
  assert.match(asked, new RegExp(`#${VID}`));
  await page.waitForFunction((vid) => !document.querySelector(`#recent-list li[data-vid="${vid}"]`), VID);
  const gone = await page.evaluate((vid) => fetch(`/console/api/videos/${vid}`).then((r) => r.status), VID);
  assert.equal(gone, 404);
  step('deleted');

  assert.deepEqual(offsite, [], 'the page reached beyond 127.0.0.1');
  assert.deepEqual(problems, []);
  step('done');
} finally {
  await context.close();
}
