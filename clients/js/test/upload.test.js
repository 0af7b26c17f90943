// Uploads against a real vasset server (VASSET_URL, VASSET_APP_KEY, VASSET_APP_SECRET).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Uploader, VassetError } from '../vasset.js';
import {
  NO_SERVER,
  SERVER,
  StorageShim,
  call,
  randomFile,
  signedInit,
  startProxy,
} from './helpers.js';

const KiB = 1024;
const FAST_RETRIES = { retryBaseMs: 10, retryMaxMs: 100 };

async function assertStored(vid, md5, size) {
  const status = await call('GET', '/video/status', { vid });
  assert.equal(status.status, 'uploaded');
  const info = await call('GET', '/video/mediainfo', { vid });
  assert.equal(info.md5, md5, 'the server holds other bytes than the file');
  assert.equal(info.file_size, size);
}

describe('uploads with an upload token', { skip: NO_SERVER }, () => {
  test('a file in parts, each with its MD5, verified by the server', async () => {
    const { file, md5 } = randomFile(1_000_000);
    const storage = new StorageShim();
    const proxy = await startProxy();
    try {
      const uploader = new Uploader({ baseUrl: proxy.url, storage, parallel: 1 });
      const result = await uploader.upload(file, { init: signedInit({ psize: 100 * KiB }) });
      assert.equal(result.status, 'uploaded');
      assert.equal(result.md5, md5);
      assert.equal(result.resumed, false);
      await assertStored(result.vid, md5, file.size);
      const parts = proxy.parts();
      assert.equal(parts.length, 10);
      assert.deepEqual(parts.map((p) => p.pseq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      // Finished uploads leave nothing to resume.
      assert.equal(storage.length, 0);
      // Only the upload token was sent: no app key, no signature.
      assert.ok(proxy.log.every((r) => r.path.startsWith('/video/upload/')));
    } finally {
      await proxy.close();
    }
  });

  test('parts go up in parallel', async () => {
    const { file, md5 } = randomFile(1_600_000);
    const proxy = await startProxy();
    try {
      const uploader = new Uploader({ baseUrl: proxy.url, storage: new StorageShim(), parallel: 4 });
      const result = await uploader.upload(file, { init: signedInit({ psize: 100 * KiB }) });
      assert.equal(result.md5, md5);
      assert.ok(proxy.peak >= 2, `at most ${proxy.peak} request(s) were in flight`);
      assert.ok(proxy.peak <= 4, `${proxy.peak} requests were in flight, parallel is 4`);
      assert.equal(new Set(proxy.parts().map((p) => p.pseq)).size, 16);
      await assertStored(result.vid, md5, file.size);
    } finally {
      await proxy.close();
    }
  });

  test('progress is monotonic, per confirmed part, and ends at the total', async () => {
    const { file } = randomFile(550 * KiB);
    const uploader = new Uploader({ baseUrl: SERVER, storage: new StorageShim(), parallel: 1 });
    const seen = [];
    const task = uploader.upload(file, {
      init: signedInit({ psize: 100 * KiB }),
      onProgress: (p) => seen.push(p),
    });
    const events = [];
    task.addEventListener('progress', (e) => events.push(e.detail.loaded));
    await task;
    assert.equal(seen[0].loaded, 0);
    assert.equal(seen.at(-1).loaded, file.size);
    assert.equal(seen.at(-1).percent, 100);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i].loaded > seen[i - 1].loaded);
    assert.ok(seen.every((p) => p.total === file.size));
    assert.deepEqual(
      seen.map((p) => p.loaded),
      [0, 1, 2, 3, 4, 5].map((i) => i * 100 * KiB).concat([file.size]),
    );
    assert.deepEqual(events, seen.map((p) => p.loaded));
  });

  test('resume after a reload sends only the missing parts', async () => {
    const { file, md5 } = randomFile(1_200_000);
    const storage = new StorageShim(); // survives the "reload"; the SDK instances do not
    const proxy = await startProxy();
    const inits = [];
    try {
      const first = new Uploader({ baseUrl: proxy.url, storage, parallel: 1 });
      const task = first.upload(file, { init: signedInit({ psize: 100 * KiB, calls: inits }) });
      task.addEventListener('part', (e) => {
        if (e.detail.received >= 4) task.abort('page reload');
      });
      await assert.rejects(task.done, (err) => err.name === 'AbortError');
      assert.equal(task.state, 'aborted');
      const before = new Set(proxy.parts().filter((p) => p.status === 200).map((p) => p.pseq));
      assert.ok(before.size >= 4 && before.size < 12, `${before.size} parts before the reload`);
      const stored = first.stored(file);
      assert.ok(stored, 'the upload was not kept for resuming');
      assert.equal(first.listStored().length, 1);

      // "Reload": a new SDK instance, the same storage, the same file picked again.
      const second = new Uploader({ baseUrl: proxy.url, storage, parallel: 2 });
      const sentBefore = proxy.parts().length;
      const resumed = second.upload(file, { init: signedInit({ psize: 100 * KiB, calls: inits }) });
      const resumeEvents = [];
      resumed.addEventListener('resume', (e) => resumeEvents.push(e.detail));
      const firstProgress = new Promise((resolve) =>
        resumed.addEventListener('progress', (e) => resolve(e.detail.loaded), { once: true }),
      );
      const result = await resumed;
      assert.equal(inits.length, 1, 'a resumed upload must not call init again');
      assert.equal(resumeEvents.length, 1);
      assert.equal(resumeEvents[0].upload_id, stored.upload_id);
      assert.equal(result.upload_id, stored.upload_id);
      assert.equal(result.vid, stored.vid);
      assert.equal(result.resumed, true);
      assert.equal(result.md5, md5);
      assert.ok((await firstProgress) >= before.size * 100 * KiB, 'progress restarted at 0');
      const after = proxy.parts().slice(sentBefore).map((p) => p.pseq);
      for (const pseq of after) assert.ok(!before.has(pseq), `part ${pseq} was sent twice`);
      assert.equal(new Set([...before, ...after]).size, 12);
      assert.equal(storage.length, 0);
      await assertStored(result.vid, md5, file.size);
    } finally {
      await proxy.close();
    }
  });

  test('503, 429 with Retry-After and dropped connections are retried with backoff', async () => {
    const { file, md5 } = randomFile(600 * KiB);
    let failures = 0;
    const proxy = await startProxy((req, info) => {
      if (info.pseq === null) return undefined;
      failures += 1;
      if (failures <= 3) return { status: 503, headers: { 'Retry-After': '0' } };
      if (failures === 4) {
        return { status: 429, headers: { 'Retry-After': '0' }, body: { code: 'Throttled' } };
      }
      if (failures === 5) return 'reset';
      if (failures === 6) return { status: 502, body: { message: 'bad gateway' } }; // no Retry-After
      return undefined;
    });
    try {
      const uploader = new Uploader({ baseUrl: proxy.url, storage: new StorageShim(), parallel: 2, ...FAST_RETRIES });
      const task = uploader.upload(file, { init: signedInit({ psize: 100 * KiB }) });
      const retries = [];
      task.addEventListener('retry', (e) => retries.push(e.detail));
      const result = await task;
      assert.equal(result.md5, md5);
      assert.equal(retries.length, 6);
      // Two parts are in flight, so the order of the last failures may vary.
      assert.deepEqual(
        retries.map((r) => r.error.code).sort(),
        ['HTTP502', 'NetworkError', 'ServiceUnavailable', 'ServiceUnavailable', 'ServiceUnavailable', 'Throttled'],
      );
      const withRetryAfter = retries.filter((r) => ['ServiceUnavailable', 'Throttled'].includes(r.error.code));
      assert.ok(withRetryAfter.every((r) => r.delay === 0), 'Retry-After: 0 was not honoured');
      for (const r of retries.filter((x) => ['HTTP502', 'NetworkError'].includes(x.error.code))) {
        const ceiling = Math.min(100, 10 * 2 ** (r.attempt - 1));
        assert.ok(r.delay >= ceiling / 2 && r.delay <= ceiling, `backoff ${r.delay} ms, attempt ${r.attempt}`);
      }
      assert.ok(retries.every((r) => Number.isInteger(r.pseq) && r.pseq >= 1));
      await assertStored(result.vid, md5, file.size);
    } finally {
      await proxy.close();
    }
  });

  test('a part gives up after the configured number of retries', async () => {
    const { file } = randomFile(300 * KiB);
    const proxy = await startProxy((req, info) => (info.pseq === 2 ? { status: 503 } : undefined));
    try {
      const storage = new StorageShim();
      const uploader = new Uploader({ baseUrl: proxy.url, storage, parallel: 1, retries: 3, ...FAST_RETRIES });
      const task = uploader.upload(file, { init: signedInit({ psize: 100 * KiB }) });
      await assert.rejects(task.done, (err) => err instanceof VassetError && err.status === 503);
      assert.equal(proxy.parts().filter((p) => p.pseq === 2).length, 4);
      assert.ok(uploader.stored(file), 'a failed upload stays resumable');
    } finally {
      await proxy.close();
    }
  });

  test('client errors are not retried; a bad token forgets the stored upload', async () => {
    const { file } = randomFile(250 * KiB);
    const storage = new StorageShim();
    const uploader = new Uploader({ baseUrl: SERVER, storage, ...FAST_RETRIES });
    const init = signedInit({ psize: 100 * KiB });
    const task = uploader.upload(file, {
      init: async (f, meta) => ({ ...(await init(f, meta)), upload_token: 'not-the-token' }),
    });
    await assert.rejects(task.done, (err) => err.code === 'InvalidUploadToken' && err.status === 401);
    assert.equal(storage.length, 0);
  });

  test('a stored upload the server no longer knows starts over with init', async () => {
    const { file, md5 } = randomFile(220 * KiB);
    const storage = new StorageShim();
    const uploader = new Uploader({ baseUrl: SERVER, storage });
    storage.setItem(
      uploader.storageKey(file),
      JSON.stringify({ upload_id: 'f'.repeat(32), upload_token: 'gone', part_size: 102400, part_count: 3 }),
    );
    const inits = [];
    const result = await uploader.upload(file, { init: signedInit({ psize: 100 * KiB, calls: inits }) });
    assert.equal(inits.length, 1);
    assert.equal(result.resumed, false);
    assert.equal(result.md5, md5);
  });

  test('an upload that completed before the reload is reported, not sent again', async () => {
    const { file, md5 } = randomFile(150 * KiB);
    const storage = new StorageShim();
    const proxy = await startProxy();
    try {
      const uploader = new Uploader({ baseUrl: proxy.url, storage });
      let entry;
      const task = uploader.upload(file, { init: signedInit({ psize: 100 * KiB }) });
      task.addEventListener('start', () => {
        entry = storage.getItem(uploader.storageKey(file));
      });
      const first = await task;
      // The page reloaded after the last part but before it noticed completion.
      storage.setItem(uploader.storageKey(file), entry);
      const sent = proxy.parts().length;
      const again = await new Uploader({ baseUrl: proxy.url, storage }).upload(file, {
        init: () => assert.fail('init must not be called'),
      });
      assert.equal(again.vid, first.vid);
      assert.equal(again.resumed, true);
      assert.equal(proxy.parts().length, sent);
      await assertStored(first.vid, md5, file.size);
    } finally {
      await proxy.close();
    }
  });
});

describe('without a server', () => {
  test('an instant upload answer completes without sending bytes', async () => {
    const { file } = randomFile(10);
    const uploader = new Uploader({
      baseUrl: 'http://127.0.0.1:9',
      storage: new StorageShim(),
      fetch: () => assert.fail('no request expected'),
    });
    const result = await uploader.upload(file, {
      init: async () => ({ vid: 7, status: 'uploaded', instant: true }),
    });
    assert.equal(result.vid, 7);
  });

  test('abort before anything was sent rejects with AbortError', async () => {
    const { file } = randomFile(10);
    const controller = new AbortController();
    controller.abort();
    const uploader = new Uploader({ storage: new StorageShim() });
    const task = uploader.upload(file, { init: async () => ({}), signal: controller.signal });
    await assert.rejects(task.done, (err) => err.name === 'AbortError');
  });

  test('network errors are retried, then reported as NetworkError', async () => {
    const { file } = randomFile(10);
    let calls = 0;
    const uploader = new Uploader({
      storage: new StorageShim(),
      retries: 2,
      ...FAST_RETRIES,
      fetch: async () => {
        calls += 1;
        throw new TypeError('fetch failed');
      },
    });
    const task = uploader.upload(file, {
      init: async () => ({ upload_id: 'u', upload_token: 't', part_size: 100, part_count: 1 }),
    });
    await assert.rejects(task.done, (err) => err.code === 'NetworkError');
    assert.equal(calls, 3);
  });

  test('the storage key is the name, size and lastModified', () => {
    const uploader = new Uploader({ storage: new StorageShim() });
    const a = new File(['x'], 'a b.mp4', { lastModified: 5 });
    const b = new File(['y'], 'a b.mp4', { lastModified: 6 });
    assert.equal(uploader.storageKey(a), 'vasset:upload:a%20b.mp4:1:5');
    assert.notEqual(uploader.storageKey(a), uploader.storageKey(b));
  });
});
