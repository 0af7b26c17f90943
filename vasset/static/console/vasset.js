// vasset browser/Node upload SDK: resumable, verified, parallel part uploads with an upload token.
//
// A plain ES module without a build step. It runs in browsers and in Node 20+ (global fetch,
// Blob, File, EventTarget). It never signs a request and never sees an app secret: the page
// gets {upload_id, upload_token, part_size, part_count, ...} from its own server (which made the
// signed `POST /video/upload/init`), and the token authorizes `PUT /video/upload/upload` and
// `GET /video/upload/resume` for that one upload only.

export const VERSION = '0.1.0';

// ---------------------------------------------------------------------------------------------
// MD5 (RFC 1321), incremental, on Uint8Array. Each part is sent with its MD5 as `hash`, so the
// server rejects a part that was damaged on the way (InvalidDigest) instead of storing it.

const MD5_S = [
  7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9,
  14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15,
  21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
];
const MD5_K = new Int32Array(64);
for (let i = 0; i < 64; i++) MD5_K[i] = Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) | 0;

/** Incremental MD5: `new MD5().update(bytes).hex()`. */
export class MD5 {
  constructor() {
    this.h = Int32Array.of(0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476);
    this.buf = new Uint8Array(64);
    this.bufLen = 0;
    this.total = 0;
    this.w = new Int32Array(16);
  }

  /** Feed bytes (Uint8Array, ArrayBuffer or a string, taken as UTF-8). */
  update(data) {
    const bytes = toBytes(data);
    const n = bytes.length;
    let i = 0;
    this.total += n;
    if (this.bufLen > 0) {
      const take = Math.min(64 - this.bufLen, n);
      this.buf.set(bytes.subarray(0, take), this.bufLen);
      this.bufLen += take;
      i = take;
      if (this.bufLen < 64) return this;
      this._block(this.buf, 0);
      this.bufLen = 0;
    }
    for (; i + 64 <= n; i += 64) this._block(bytes, i);
    if (i < n) {
      this.buf.set(bytes.subarray(i), 0);
      this.bufLen = n - i;
    }
    return this;
  }

  _block(b, o) {
    const w = this.w;
    const h = this.h;
    for (let j = 0; j < 16; j++) {
      const p = o + j * 4;
      w[j] = b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24);
    }
    let a = h[0];
    let bb = h[1];
    let c = h[2];
    let d = h[3];
    for (let i = 0; i < 64; i++) {
      let f;
      let g;
      if (i < 16) {
        f = (bb & c) | (~bb & d);
        g = i;
      } else if (i < 32) {
        f = (d & bb) | (~d & c);
        g = (5 * i + 1) & 15;
      } else if (i < 48) {
        f = bb ^ c ^ d;
        g = (3 * i + 5) & 15;
      } else {
        f = c ^ (bb | ~d);
        g = (7 * i) & 15;
      }
      const next = d;
      d = c;
      c = bb;
      const x = (a + f + MD5_K[i] + w[g]) | 0;
      const s = MD5_S[i];
      bb = (bb + ((x << s) | (x >>> (32 - s)))) | 0;
      a = next;
    }
    h[0] = (h[0] + a) | 0;
    h[1] = (h[1] + bb) | 0;
    h[2] = (h[2] + c) | 0;
    h[3] = (h[3] + d) | 0;
  }

  /** The digest as 32 lower-case hex digits (the object must not be used afterwards). */
  hex() {
    const bits = this.total * 8;
    const pad = new Uint8Array(((this.bufLen < 56 ? 56 : 120) - this.bufLen) + 8);
    pad[0] = 0x80;
    const view = new DataView(pad.buffer);
    view.setUint32(pad.length - 8, bits >>> 0, true);
    view.setUint32(pad.length - 4, Math.floor(bits / 2 ** 32) >>> 0, true);
    this.update(pad);
    let out = '';
    for (const word of this.h) {
      for (let k = 0; k < 4; k++) out += ((word >>> (8 * k)) & 0xff).toString(16).padStart(2, '0');
    }
    return out;
  }
}

/** MD5 hex of bytes in one call. */
export function md5Hex(data) {
  return new MD5().update(data).hex();
}

function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (typeof data === 'string') return new TextEncoder().encode(data);
  throw new TypeError('MD5 takes a Uint8Array, an ArrayBuffer or a string');
}

// ---------------------------------------------------------------------------------------------
// Errors

/**
 * Every error code a vasset server answers with (docs/API.md, "Error codes"); a test keeps this
 * list, the server's and the Python SDK's in step. Branch on these, never on `message`.
 */
export const ERROR_CODES = Object.freeze([
  'MissingParameter', 'InvalidParameter', 'InvalidDigest', 'InvalidPartSize',
  'InvalidContentRange', 'IncompleteBody', 'InvalidSource',
  'InvalidAppKey', 'SignatureDoesNotMatch', 'SignatureExpired', 'SignatureNonceUsed',
  'InvalidUploadToken', 'InvalidUrlSignature', 'InvalidConsoleKey',
  'InvalidMetricsToken',
  'VideoNotFound', 'UploadNotFound', 'ObjectNotFound', 'NotFound', 'MethodNotAllowed',
  'UploadCompleted', 'UploadAborted', 'UploadInProgress', 'OffsetMismatch', 'VideoNotPlayable',
  'InvalidState', 'EntityTooLarge', 'InvalidRange', 'HashMismatch', 'SizeMismatch', 'Throttled',
  'InternalError', 'ServiceUnavailable',
  // the tus 1.0 / IETF resumable-upload routes (docs/TUS.md)
  'InvalidHeader', 'MetadataTooLarge', 'UnsupportedChecksum', 'InconsistentLength', 'InvalidTicket',
  'TicketExpired', 'TicketUsedUp', 'UploadGone', 'TusVersionUnsupported', 'UnsupportedMediaType',
  'UploadLocked', 'ChecksumMismatch',
  // webhooks (docs/EVENTS.md)
  'InvalidWebhookUrl', 'EndpointNotFound', 'DeliveryNotFound',
  // image assets and overlays (docs/API.md)
  'InvalidImage', 'AssetNotFound',
  // storyboards and the audio-only rendition (docs/API.md)
  'StoryboardNotFound', 'AudioNotFound',
  // clips (docs/API.md)
  'ClipRangesMalformed', 'ClipTooManyRanges', 'ClipRangeReversed', 'ClipRangeEmpty',
  'ClipRangesOverlap', 'ClipRangeOutOfBounds',
  // captions (docs/API.md)
  'InvalidCaptions', 'CaptionNotFound',
  // transcode templates (docs/API.md)
  'UnknownTemplate',
  // thumbnails on demand (docs/API.md)
  'ThumbnailUnavailable',
]);

/** Codes this SDK sets itself (no answer, or an upload that could not finish); `HTTP{status}` for an answer without a code. */
export const CLIENT_ERROR_CODES = Object.freeze(['NetworkError', 'Incomplete']);

/** An answer of the vasset API that is not a success; `code` is API.md's stable error code. */
export class VassetError extends Error {
  constructor(message, { status = 0, code = 'NetworkError', body = null } = {}) {
    super(message);
    this.name = 'VassetError';
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

function abortError(reason) {
  if (reason instanceof Error) return reason;
  const err = new Error(typeof reason === 'string' ? reason : 'the upload was aborted');
  err.name = 'AbortError';
  return err;
}

// Codes that a later attempt of the same request may fix.
const RETRYABLE_CODES = new Set(['UploadInProgress', 'IncompleteBody', 'InvalidDigest']);

// ---------------------------------------------------------------------------------------------
// Storage for resumable uploads: localStorage in browsers, memory elsewhere (or any object
// with getItem/setItem/removeItem/key/length, e.g. a test shim).

/** A Storage-like object kept in memory (the default outside browsers). */
export class MemoryStorage {
  constructor() {
    this.map = new Map();
  }
  get length() {
    return this.map.size;
  }
  key(i) {
    return [...this.map.keys()][i] ?? null;
  }
  getItem(k) {
    return this.map.has(k) ? this.map.get(k) : null;
  }
  setItem(k, v) {
    this.map.set(k, String(v));
  }
  removeItem(k) {
    this.map.delete(k);
  }
  clear() {
    this.map.clear();
  }
}

function defaultStorage() {
  try {
    if (typeof globalThis.localStorage !== 'undefined' && globalThis.localStorage) {
      return globalThis.localStorage;
    }
  } catch {
    // localStorage throws in some sandboxed frames: fall through to memory.
  }
  return new MemoryStorage();
}

/** The name, size and lastModified a stored upload is keyed by. */
export function fileIdentity(file, name) {
  return {
    name: name ?? file.name ?? 'blob',
    size: file.size,
    lastModified: typeof file.lastModified === 'number' ? file.lastModified : 0,
  };
}

// ---------------------------------------------------------------------------------------------
// Uploader

const DEFAULTS = {
  baseUrl: '',
  parallel: 3,
  retries: 8,
  retryBaseMs: 500,
  retryMaxMs: 30_000,
  timeoutMs: 120_000,
  partHash: true,
  storagePrefix: 'vasset:upload:',
};

/**
 * Uploads files with upload tokens.
 *
 *   const uploader = new Uploader({ baseUrl: 'https://vasset.example', parallel: 3 });
 *   const task = uploader.upload(file, { init: (f) => myServer.createUpload(f.name, f.size) });
 *   task.addEventListener('progress', (e) => show(e.detail.loaded, e.detail.total));
 *   const { vid } = await task;
 */
export class Uploader {
  constructor(options = {}) {
    this.options = { ...DEFAULTS, ...options };
    this.baseUrl = String(this.options.baseUrl || '').replace(/\/+$/, '');
    this.storage = this.options.storage || defaultStorage();
    this.fetch = this.options.fetch || globalThis.fetch.bind(globalThis);
  }

  /** The localStorage key of a file's upload. */
  storageKey(file, name) {
    const id = fileIdentity(file, name);
    return `${this.options.storagePrefix}${encodeURIComponent(id.name)}:${id.size}:${id.lastModified}`;
  }

  /** The stored (resumable) upload of this file, or null. */
  stored(file, name) {
    return this._read(this.storageKey(file, name));
  }

  /** Every stored upload that has not expired: [{key, name, size, lastModified, upload_id, vid, ...}]. */
  listStored() {
    const out = [];
    const keys = [];
    for (let i = 0; i < this.storage.length; i++) {
      const key = this.storage.key(i);
      if (key && key.startsWith(this.options.storagePrefix)) keys.push(key);
    }
    for (const key of keys) {
      const entry = this._read(key);
      if (entry) out.push({ key, ...entry });
    }
    return out.sort((a, b) => (b.created || 0) - (a.created || 0));
  }

  /** Drop the stored state of a file (or of a key from listStored). */
  forget(fileOrKey, name) {
    const key = typeof fileOrKey === 'string' ? fileOrKey : this.storageKey(fileOrKey, name);
    this.storage.removeItem(key);
  }

  /** Ask the server which parts of a stored upload are missing (token-authorized). */
  async resumeInfo(entry, signal) {
    const url = this._url('/video/upload/resume', { upid: entry.upload_id, token: entry.upload_token });
    return this._request('GET', url, null, { signal, retries: 2 });
  }

  /**
   * Start (or resume) an upload of file. options.init(file, {name, size}) must return the
   * init answer of the page's server; it is called only when no stored upload can be resumed.
   * Returns an UploadTask: an EventTarget you can await.
   */
  upload(file, options = {}) {
    return new UploadTask(this, file, options);
  }

  _read(key) {
    let entry;
    try {
      entry = JSON.parse(this.storage.getItem(key) || 'null');
    } catch {
      entry = null;
    }
    if (!entry || typeof entry !== 'object' || !entry.upload_id || !entry.upload_token) {
      if (entry !== null) this.storage.removeItem(key);
      return null;
    }
    // An upload within a minute of expiry is not worth resuming.
    if (entry.expires_at && entry.expires_at * 1000 < Date.now() + 60_000) {
      this.storage.removeItem(key);
      return null;
    }
    return entry;
  }

  _url(path, params) {
    const query = Object.entries(params)
      .filter(([, v]) => v !== undefined && v !== null)
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
      .join('&');
    return `${this.baseUrl}${path}?${query}`;
  }

  _backoff(attempt) {
    const { retryBaseMs, retryMaxMs } = this.options;
    const ceiling = Math.min(retryMaxMs, retryBaseMs * 2 ** attempt);
    // "Equal jitter": at least half the exponential delay, plus a random share of the rest.
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  /**
   * One request with retries on network errors, timeouts, 5xx, 429 and a few retryable codes.
   * Returns the decoded JSON answer; throws VassetError for an answer that will not change.
   */
  async _request(method, url, body, { signal, retries = this.options.retries, onRetry } = {}) {
    for (let attempt = 0; ; attempt++) {
      if (signal?.aborted) throw abortError(signal.reason);
      const controller = new AbortController();
      const onAbort = () => controller.abort(signal.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      const timer = setTimeout(() => controller.abort(new Error('timeout')), this.options.timeoutMs);
      let failure;
      let retryAfterMs = null;
      try {
        const res = await this.fetch(url, {
          method,
          body: body ?? undefined,
          signal: controller.signal,
          headers: body ? { 'Content-Type': 'application/octet-stream' } : undefined,
          credentials: 'omit',
          cache: 'no-store',
        });
        const text = await res.text();
        let data = null;
        try {
          data = text ? JSON.parse(text) : null;
        } catch {
          data = null;
        }
        if (res.ok) return data ?? {};
        failure = new VassetError(data?.message || `HTTP ${res.status}`, {
          status: res.status,
          code: data?.code || `HTTP${res.status}`,
          body: data,
        });
        retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
      } catch (err) {
        if (signal?.aborted) throw abortError(signal.reason);
        // A network error, a timeout, or a body cut off mid-way.
        failure = new VassetError(`network error: ${err?.message || err}`, { code: 'NetworkError' });
        failure.cause = err;
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      }
      if (!isRetryableError(failure) || attempt >= retries) throw failure;
      const delay = retryAfterMs ?? this._backoff(attempt);
      onRetry?.({ attempt: attempt + 1, delay, error: failure });
      await sleep(delay, signal);
    }
  }
}

function isRetryableError(err) {
  return err.status === 0 || err.status >= 500 || err.status === 429 || RETRYABLE_CODES.has(err.code);
}

function parseRetryAfter(value) {
  if (value == null || value === '') return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.min(Math.max(0, seconds * 1000), 120_000);
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.min(Math.max(0, at - Date.now()), 120_000) : null;
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal.reason));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal.reason));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * One upload in progress. Events (CustomEvent, data in `detail`):
 *  - progress {loaded, total, percent}: bytes the server has confirmed; never goes down
 *  - resume {upload_id, vid, missing}: a stored upload is being resumed
 *  - start {upload_id, vid, part_count}: a new upload was created
 *  - part {pseq, received, part_count}: one part stored
 *  - retry {pseq, attempt, delay, error}: a request failed and will be retried
 *  - complete {vid, ...}: the server verified the whole file
 *  - error {error}
 * Await the task (or task.done) for the completion answer {vid, status: "uploaded", ...}.
 */
export class UploadTask extends EventTarget {
  constructor(uploader, file, options) {
    super();
    this.uploader = uploader;
    this.file = file;
    this.options = options;
    this.name = options.name ?? file.name ?? 'blob';
    this.key = uploader.storageKey(file, this.name);
    this.total = file.size;
    this.loaded = 0;
    this.state = 'starting';
    this.resumed = false;
    this.uploadId = null;
    this.vid = null;
    this._controller = new AbortController();
    if (options.signal) {
      if (options.signal.aborted) this._controller.abort(options.signal.reason);
      else options.signal.addEventListener('abort', () => this.abort(options.signal.reason));
    }
    if (options.onProgress) this.addEventListener('progress', (e) => options.onProgress(e.detail));
    this.done = this._run().then(
      (result) => {
        this.state = 'complete';
        this._emit('complete', result);
        return result;
      },
      (error) => {
        this.state = this._controller.signal.aborted ? 'aborted' : 'failed';
        this._emit('error', { error });
        throw error;
      },
    );
    // Callers that only listen to events must not trigger unhandled-rejection warnings.
    this.done.catch(() => {});
  }

  then(onFulfilled, onRejected) {
    return this.done.then(onFulfilled, onRejected);
  }

  catch(onRejected) {
    return this.done.catch(onRejected);
  }

  /** Stop every request; the stored state stays, so the upload can be resumed later. */
  abort(reason) {
    if (!this._controller.signal.aborted) this._controller.abort(abortError(reason));
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _progress(loaded) {
    const next = Math.min(Math.max(this.loaded, loaded), this.total);
    if (next === this.loaded && this._reported) return;
    this._reported = true;
    this.loaded = next;
    const percent = this.total ? (this.loaded / this.total) * 100 : 100;
    this._emit('progress', { loaded: this.loaded, total: this.total, percent });
  }

  async _run() {
    const up = this.uploader;
    const signal = this._controller.signal;
    let entry = up._read(this.key);
    let missing = null;
    if (entry) {
      try {
        const info = await up.resumeInfo(entry, signal);
        if (info.status === 'uploaded' && info.vid) {
          up.forget(this.key);
          this.vid = info.vid;
          this.uploadId = entry.upload_id;
          this.resumed = true;
          this._progress(this.total);
          return { upload_id: entry.upload_id, vid: info.vid, status: 'uploaded', resumed: true };
        }
        if (info.status === 'uploading' && Array.isArray(info.missing)) {
          missing = info.missing;
          this.resumed = true;
          this._emit('resume', { upload_id: entry.upload_id, vid: entry.vid, missing });
        } else {
          entry = null; // failed verification: start over
        }
      } catch (err) {
        if (signal.aborted) throw err;
        // 404 (expired/unknown) or 401 (token no longer valid): start a new upload.
        if (!(err instanceof VassetError) || ![401, 404].includes(err.status)) throw err;
        entry = null;
      }
      if (!entry) up.forget(this.key);
    }
    if (!entry) {
      if (typeof this.options.init !== 'function') {
        throw new TypeError('upload(file, {init}) needs an init function');
      }
      const info = await this.options.init(this.file, { name: this.name, size: this.total });
      if (signal.aborted) throw abortError(signal.reason);
      if (info && info.vid && info.status === 'uploaded') {
        // Instant upload: the server already holds these bytes.
        this.vid = info.vid;
        this._progress(this.total);
        return { ...info, resumed: false };
      }
      for (const field of ['upload_id', 'upload_token', 'part_size', 'part_count']) {
        if (!info || info[field] === undefined || info[field] === null) {
          throw new TypeError(`the init answer lacks ${field}`);
        }
      }
      if (info.size !== undefined && info.size !== this.total) {
        throw new TypeError(`the init answer is for ${info.size} bytes, the file has ${this.total}`);
      }
      entry = {
        upload_id: info.upload_id,
        upload_token: info.upload_token,
        part_size: info.part_size,
        part_count: info.part_count,
        vid: info.vid ?? null,
        expires_at: info.expires_at ?? null,
        name: this.name,
        size: this.total,
        lastModified: fileIdentity(this.file).lastModified,
        created: Date.now(),
      };
      up.storage.setItem(this.key, JSON.stringify(entry));
      missing = Array.from({ length: entry.part_count }, (_, i) => i + 1);
      this._emit('start', { upload_id: entry.upload_id, vid: entry.vid, part_count: entry.part_count });
    }
    this.uploadId = entry.upload_id;
    this.vid = entry.vid;
    this.entry = entry;
    this.state = 'uploading';
    this._progress(this.total - missing.reduce((sum, p) => sum + this._partLength(p), 0));

    for (let round = 0; round < 4; round++) {
      const result = await this._sendParts(missing);
      if (result) return this._finish(result);
      // Every part was sent without a completion answer (e.g. a lost response): ask the server.
      const info = await up.resumeInfo(entry, signal);
      if (info.status === 'uploaded') {
        return this._finish({ upload_id: entry.upload_id, vid: info.vid, status: 'uploaded' });
      }
      if (info.status !== 'uploading') {
        throw new VassetError('the upload failed', { status: 409, code: 'UploadAborted', body: info });
      }
      missing = info.missing || [];
    }
    throw new VassetError('the upload did not complete', { code: 'Incomplete' });
  }

  _finish(result) {
    this.uploader.forget(this.key);
    this.vid = result.vid ?? this.vid;
    this._progress(this.total);
    return { ...result, upload_id: result.upload_id ?? this.uploadId, resumed: this.resumed };
  }

  _partLength(pseq) {
    const { part_size: size, part_count: count } = this.entry ?? {};
    if (!size) return 0;
    return pseq < count ? size : this.total - size * (count - 1);
  }

  async _sendParts(missing) {
    const queue = [...missing].sort((a, b) => a - b);
    const parallel = Math.max(1, Math.min(this.uploader.options.parallel | 0 || 1, queue.length));
    let result = null;
    let failure = null;
    const inner = new AbortController();
    const onAbort = () => inner.abort(this._controller.signal.reason);
    this._controller.signal.addEventListener('abort', onAbort, { once: true });
    let confirmed = this.loaded;
    const worker = async () => {
      while (queue.length && !failure && !inner.signal.aborted) {
        const pseq = queue.shift();
        const answer = await this._sendPart(pseq, inner.signal);
        confirmed += this._partLength(pseq);
        if (answer.status === 'uploaded' && answer.vid) {
          result = answer;
        } else if (Array.isArray(answer.missing) && answer.missing.length) {
          // Storage lost parts at completion: send those again.
          for (const p of answer.missing) if (!queue.includes(p)) queue.push(p);
        } else {
          this._emit('part', { pseq, received: answer.received, part_count: answer.part_count });
        }
        this._progress(result ? this.total : confirmed);
      }
    };
    const runners = Array.from({ length: parallel }, () =>
      worker().catch((err) => {
        if (!failure) failure = err;
        inner.abort(err);
      }),
    );
    await Promise.all(runners);
    this._controller.signal.removeEventListener('abort', onAbort);
    if (this._controller.signal.aborted) throw abortError(this._controller.signal.reason);
    if (failure) throw failure;
    return result;
  }

  async _sendPart(pseq, signal) {
    const { part_size: size } = this.entry;
    const start = (pseq - 1) * size;
    const end = start + this._partLength(pseq);
    const bytes = new Uint8Array(await this.file.slice(start, end).arrayBuffer());
    const hash = this.uploader.options.partHash ? md5Hex(bytes) : undefined;
    const url = this.uploader._url('/video/upload/upload', {
      upid: this.entry.upload_id,
      pseq,
      hash,
      token: this.entry.upload_token,
    });
    try {
      return await this.uploader._request('PUT', url, bytes, {
        signal,
        onRetry: (info) => this._emit('retry', { pseq, ...info }),
      });
    } catch (err) {
      if (err instanceof VassetError && err.code === 'UploadCompleted' && err.body?.vid) {
        return { upload_id: this.entry.upload_id, vid: err.body.vid, status: 'uploaded' };
      }
      if (err instanceof VassetError && [401, 404].includes(err.status)) {
        this.uploader.forget(this.key); // the token or the upload is gone: nothing to resume
      }
      throw err;
    }
  }
}

/**
 * An init function for Uploader.upload that POSTs {name, size, ...extra} as JSON to url on the
 * page's own server (which makes the signed init call) and returns its JSON answer.
 */
export function serverInit(url, { headers = {}, extra = {}, fetch: fetchImpl } = {}) {
  const doFetch = fetchImpl || globalThis.fetch.bind(globalThis);
  return async (file, { name, size }) => {
    const res = await doFetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify({ name, size, ...extra }),
      credentials: 'same-origin',
    });
    const data = await res.json().catch(() => null);
    if (!res.ok) {
      throw new VassetError(data?.message || `HTTP ${res.status}`, {
        status: res.status,
        code: data?.code || `HTTP${res.status}`,
        body: data,
      });
    }
    return data;
  };
}

// Live events (Server-Sent Events with a polling fallback): docs/EVENTS.md.
export { SseParser, events, statusEvent, toEvent, watchVideo } from './vasset-events.js';
