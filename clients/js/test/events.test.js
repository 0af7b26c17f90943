// Live events against a real vasset server: the SSE reader, resume, and the polling fallback.
import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, test } from 'node:test';

import { SseParser, Uploader, events, watchVideo } from '../vasset.js';
import { NO_SERVER, SERVER, StorageShim, call, randomFile, signedInit, signedUrl } from './helpers.js';

async function uploadOne() {
  const { file } = randomFile(120 * 1024);
  const uploader = new Uploader({ baseUrl: SERVER, storage: new StorageShim(), parallel: 1 });
  return (await uploader.upload(file, { init: signedInit({ psize: 120 * 1024 }) })).vid;
}

/** A front of the server as an older version: /video/events is 404 NotFound. */
async function legacyServer() {
  const server = http.createServer(async (req, res) => {
    if (req.url.startsWith('/video/events')) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end('{"code":"NotFound","message":"no such route"}');
      return;
    }
    const upstream = await fetch(SERVER + req.url, { method: req.method });
    res.writeHead(upstream.status, { 'Content-Type': 'application/json' });
    res.end(Buffer.from(await upstream.arrayBuffer()));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

test('the parser follows the event-stream rules across chunk borders', () => {
  const frames = [];
  const p = new SseParser((f) => frames.push(f));
  p.push(': hb\n\nid: 7\nevent: upload.created\nda');
  p.push('ta: {"data":{"vid":1}}\r\n\r\nretry: 10\ndata: a\ndata: b\n\n');
  assert.deepEqual(frames, [
    { id: '7', event: 'upload.created', data: '{"data":{"vid":1}}', retry: null },
    { id: '7', event: null, data: 'a\nb', retry: 10 },
  ]);
});

describe('live events', { skip: NO_SERVER }, () => {
  test('replay, resume and live events of one video', async () => {
    const vid = await uploadOne();
    const seen = [];
    const url = (lastId) => signedUrl('GET', '/video/events', { vid, since: lastId ?? 0 });
    const handle = watchVideo(url, { onEvent: (e) => seen.push(e) });
    for (let i = 0; i < 100 && seen.length < 2; i += 1) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(seen.slice(0, 2).map((e) => [e.type, e.seq, e.vid]), [
      ['upload.created', 1, vid],
      ['upload.completed', 2, vid],
    ]);
    await call('POST', '/video/delete', { vid });
    await Promise.race([handle.done, new Promise((r) => setTimeout(r, 15000))]);
    handle.close();
    assert.equal(seen.at(-1).type, 'video.deleted'); // watchVideo stopped by itself
    assert.deepEqual(seen.map((e) => e.seq), seen.map((_, i) => i + 1));
  });

  test('a server without /video/events is polled', async () => {
    const legacy = await legacyServer();
    try {
      const vid = await uploadOne();
      const seen = [];
      let fellBack = false;
      const poll = async () => {
        // A poll reports failures with their HTTP status (404: the video is gone).
        const res = await fetch(signedUrl('GET', '/video/status', { vid }));
        const body = await res.json();
        if (!res.ok) throw Object.assign(new Error(body.message), { status: res.status, code: body.code });
        return body;
      };
      const handle = watchVideo(() => signedUrl('GET', '/video/events', { vid }, legacy.url), {
        poll,
        pollInterval: 100,
        onFallback: () => { fellBack = true; },
        onEvent: (e) => seen.push(e),
      });
      for (let i = 0; i < 100 && !seen.length; i += 1) await new Promise((r) => setTimeout(r, 50));
      await call('POST', '/video/delete', { vid });
      await Promise.race([handle.done, new Promise((r) => setTimeout(r, 10000))]);
      handle.close();
      assert.ok(fellBack);
      assert.deepEqual(seen.map((e) => [e.type, e.synthesized]), [
        ['upload.completed', true],
        ['video.deleted', true],
      ]);
    } finally {
      legacy.close();
    }
  });

  test('a stream the server refuses is an error, not a poll', async () => {
    const errors = [];
    const handle = events(`${SERVER}/video/events?app_key=nope`, { onError: (e) => errors.push(e), poll: () => ({}) });
    await handle.done;
    assert.equal(errors.length, 1);
    assert.ok([400, 401, 403].includes(errors[0].status), String(errors[0].status));
  });
});
