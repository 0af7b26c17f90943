import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import test from 'node:test';

import { MD5, md5Hex } from '../vasset.js';

const ref = (b) => createHash('md5').update(b).digest('hex');

test('md5 matches node:crypto on the RFC 1321 vectors', () => {
  assert.equal(md5Hex(''), 'd41d8cd98f00b204e9800998ecf8427e');
  assert.equal(md5Hex('abc'), '900150983cd24fb0d6963f7d28e17f72');
  assert.equal(md5Hex('message digest'), 'f96b697d7cb7938d525a2f31aaf161d0');
  assert.equal(
    md5Hex('12345678901234567890123456789012345678901234567890123456789012345678901234567890'),
    '57edf4a22be3c955ac49da2e2107b67a',
  );
});

test('md5 matches node:crypto around every block boundary', () => {
  for (const n of [1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4096 + 3]) {
    const data = randomBytes(n);
    assert.equal(md5Hex(new Uint8Array(data)), ref(data), `length ${n}`);
  }
});

test('md5 is incremental over uneven chunks', () => {
  const data = randomBytes(300_001);
  const h = new MD5();
  let at = 0;
  for (const step of [1, 63, 64, 65, 7, 1000, 128 * 1024]) {
    h.update(data.subarray(at, at + step));
    at += step;
  }
  h.update(data.subarray(at));
  assert.equal(h.hex(), ref(data));
});

test('md5 of a 4 MiB part is fast enough for a browser', () => {
  const data = randomBytes(4 << 20);
  const started = performance.now();
  assert.equal(md5Hex(data), ref(data));
  assert.ok(performance.now() - started < 2000, 'MD5 of 4 MiB took over 2 s');
});
