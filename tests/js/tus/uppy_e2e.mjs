// Uppy (Dashboard + @uppy/tus) in headless Chromium against vasset's /files/ on another origin.
//
// Bundle uppy_entry.js with esbuild, serve it and uppy.html from a static server of our own on
// 127.0.0.1 (so the page's origin is not the API's and every tus request is a CORS request),
// pick the clip in the Dashboard's file input, press Upload, wait for Uppy's `complete`, and
// save a screenshot. Driven by tests/test_tus_clients.py.
//
// argv[2] is a JSON object: endpoint, ticket, clip, chunk, outDir, screenshot, chromium.
// The last stdout line is {"step": "done", "origin", "run"}: run is the page's window.tusRun.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';

const cfg = JSON.parse(process.argv[2]);
const HERE = dirname(fileURLToPath(import.meta.url));
const step = (name, extra = {}) => console.log(JSON.stringify({ step: name, ...extra }));

mkdirSync(cfg.outDir, { recursive: true });
await build({
  entryPoints: { uppy: join(HERE, 'uppy_entry.js') },
  bundle: true,
  format: 'esm',
  outdir: cfg.outDir,
  target: 'es2022',
  logLevel: 'warning',
});
copyFileSync(join(HERE, 'uppy.html'), join(cfg.outDir, 'index.html'));
step('bundled');

// Only the three files the page needs; anything else is a 404 (and a failed test below).
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css' };
const FILES = new Set(['/index.html', '/uppy.js', '/uppy.css']);
const server = createServer((req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  if (path === '/favicon.ico') {
    // Chromium asks for one; a 404 would show up as a console error.
    res.writeHead(204).end();
    return;
  }
  if (!FILES.has(path)) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'Content-Type': TYPES[extname(path)], 'Cache-Control': 'no-store' });
  res.end(readFileSync(join(cfg.outDir, path)));
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const origin = `http://127.0.0.1:${server.address().port}`;
assert.notEqual(new URL(cfg.endpoint).origin, origin, 'the page must not share the API origin');

const browser = await chromium.launch({
  executablePath: cfg.chromium || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync'],
});
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 640 } });
  page.setDefaultTimeout(30_000);
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
  });
  page.on('requestfailed', (req) => problems.push(`request failed: ${req.method()} ${req.url()} ${req.failure()?.errorText}`));
  page.on('request', (req) => {
    const url = new URL(req.url());
    if (url.hostname !== '127.0.0.1' && !['data:', 'blob:'].includes(url.protocol)) {
      problems.push(`off-machine request: ${req.url()}`);
    }
  });

  const query = new URLSearchParams({ endpoint: cfg.endpoint, ticket: cfg.ticket, chunk: String(cfg.chunk) });
  await page.goto(`${origin}/index.html?${query}`);
  await page.locator('.uppy-Dashboard').waitFor({ state: 'visible' });
  step('page_ready', { origin });

  // The Dashboard's hidden <input type=file> (the first one picks files, not folders).
  await page.locator('input.uppy-Dashboard-input[type=file]').first().setInputFiles(cfg.clip);
  await page.locator('.uppy-Dashboard-Item').first().waitFor({ state: 'visible' });
  step('file_added');

  await page.locator('.uppy-StatusBar-actionBtn--upload').click();
  await page.waitForFunction(() => window.tusRun.done, null, { timeout: 60_000 });
  const run = await page.evaluate(() => window.tusRun);
  // Let the Dashboard draw its final state before the picture.
  await page.locator('.uppy-StatusBar.is-complete, .uppy-StatusBar.is-error').first().waitFor({ state: 'visible' });
  await page.screenshot({ path: cfg.screenshot, fullPage: true });
  assert.deepEqual(problems, [], problems.join('\n'));
  step('done', { origin, run });
} finally {
  await browser.close();
  server.close();
}
