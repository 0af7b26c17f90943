// Live events of vasset (docs/EVENTS.md): a Server-Sent Events reader with a polling fallback.
//
// It reads the stream with fetch rather than the EventSource object: EventSource reconnects
// to the same URL (a signed URL's nonce is single-use), cannot send Last-Event-ID on a first
// connect, and hides the HTTP status (a 404 from an older server must switch to polling).
// The reading follows EventSource's rules: `id:`, `event:`, `data:`, `retry:`, comments skipped.

const FAILED = new Set(['upload.failed', 'video.transcode.failed', 'video.deleted']);
const STATUS_EVENT = {
  uploading: 'upload.created',
  uploaded: 'upload.completed',
  upload_failed: 'upload.failed',
  transcode_queued: 'video.transcode.queued',
  transcoding: 'video.transcode.started',
  transcode_succeeded: 'video.transcode.succeeded',
  transcode_failed: 'video.transcode.failed',
  playable: 'video.playable',
  deleted: 'video.deleted',
};

/** Parse event-stream text fed in chunks; calls onFrame({id, event, data, retry}). */
export class SseParser {
  constructor(onFrame) {
    this.onFrame = onFrame;
    this.buffer = '';
    this.id = null;
    this.reset();
  }

  reset() {
    this.event = null;
    this.data = [];
    this.retry = null;
  }

  push(text) {
    this.buffer += text;
    const lines = this.buffer.split(/\r\n|\r|\n/);
    this.buffer = lines.pop();
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === '') {
      if (this.data.length) {
        this.onFrame({ id: this.id, event: this.event, data: this.data.join('\n'), retry: this.retry });
      }
      this.reset();
      return;
    }
    if (line.startsWith(':')) return; // a heartbeat comment
    const at = line.indexOf(':');
    const key = at < 0 ? line : line.slice(0, at);
    let value = at < 0 ? '' : line.slice(at + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (key === 'data') this.data.push(value);
    else if (key === 'event') this.event = value;
    else if (key === 'id' && !value.includes('\0')) this.id = value;
    else if (key === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
  }
}

/** An event object from one frame: {id, type, data, seq, vid, status, progress, timestamp}. */
export function toEvent(frame) {
  const body = JSON.parse(frame.data);
  const data = body && typeof body.data === 'object' && body.data ? body.data : {};
  return {
    id: frame.id && /^\d+$/.test(frame.id) ? Number(frame.id) : null,
    type: frame.event || body.type || 'message',
    data,
    timestamp: body.timestamp ?? null,
    vid: data.vid ?? null,
    seq: data.seq ?? null,
    status: data.status ?? null,
    progress: data.progress ?? null,
    synthesized: false,
  };
}

/** A status answer ({vid, status, progress}) as a synthesized event (no id, no seq). */
export function statusEvent(st, previous = null) {
  let type = STATUS_EVENT[st.status] || 'video.status';
  if (st.status === 'transcoding' && previous?.status === 'transcoding') type = 'video.transcode.progress';
  const data = { vid: st.vid, status: st.status, progress: st.progress ?? 0 };
  if (st.error) data.error = st.error;
  return { id: null, type, data, timestamp: null, vid: st.vid, seq: null, status: st.status, progress: data.progress, synthesized: true };
}

const wait = (ms, signal) =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });

/**
 * Stream events from `url` (a string, or a function giving a fresh URL per connect: signed URLs
 * are single-use). Reconnects with Last-Event-ID after errors. When the stream answers 404, or
 * fails `maxFailures` times in a row, and `poll` is given, calls `await poll()` every
 * `pollInterval` ms and emits synthesized events when its status changes (`poll` resolves to a
 * /video/status answer and throws errors with `status`: a 404 ends it with video.deleted).
 * Options: onEvent(event), onError(err), onFallback(), poll, since, fetch, credentials.
 * Returns {close(), done} (done settles when it stops).
 */
export function events(url, options = {}) {
  const {
    onEvent = () => {},
    onError = () => {},
    onFallback = () => {},
    poll = null,
    since = null,
    pollInterval = 2000,
    maxFailures = 5,
    credentials = 'same-origin',
    fetch: fetchImpl = globalThis.fetch.bind(globalThis),
  } = options;
  const controller = new AbortController();
  const { signal } = controller;
  let lastId = since;
  let stopped = false;
  const stop = () => { stopped = true; controller.abort(); };
  const emit = (event) => {
    if (event.id != null) lastId = event.id;
    if (onEvent(event) === false) stop(); // a handler returning false ends the stream
  };

  async function streamOnce() {
    const target = typeof url === 'function' ? await url(lastId) : url;
    const headers = { Accept: 'text/event-stream' };
    if (lastId != null) headers['Last-Event-ID'] = String(lastId);
    const res = await fetchImpl(target, { headers, credentials, cache: 'no-store', signal });
    if (!res.ok) {
      const body = await res.json().catch(() => null);
      const err = new Error(body?.message || `HTTP ${res.status}`);
      Object.assign(err, { status: res.status, code: body?.code || `HTTP${res.status}` });
      throw err;
    }
    let retry = null;
    const parser = new SseParser((frame) => {
      if (frame.retry != null) retry = frame.retry;
      emit(toEvent(frame));
    });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    while (!stopped) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.push(value);
    }
    return retry;
  }

  async function pollLoop() {
    onFallback();
    let previous = null;
    while (!stopped) {
      try {
        const st = await poll();
        if (!previous || st.status !== previous.status || (st.progress ?? 0) !== (previous.progress ?? 0)) {
          emit(statusEvent(st, previous));
        }
        previous = st;
      } catch (err) {
        onError(err);
        if (err.status === 404 && previous) emit(statusEvent({ ...previous, status: 'deleted' }));
        if (err.status === 401 || err.status === 404) return;
      }
      await wait(pollInterval, signal);
    }
  }

  async function run() {
    let failures = 0;
    while (!stopped) {
      try {
        const retry = await streamOnce();
        failures = 0;
        if (!stopped) await wait(retry ?? 1000, signal); // the server ended it: reconnect
      } catch (err) {
        if (stopped) return;
        failures += 1;
        onError(err);
        const gone = err.status === 404 && err.code === 'NotFound'; // no such route: old server
        if (err.status && err.status < 500 && !gone && err.status !== 429) return;
        if (poll && (gone || failures >= maxFailures)) return pollLoop();
        await wait(Math.min(30000, 500 * 2 ** failures), signal);
      }
    }
  }

  const done = run().catch(onError);
  return { close: stop, done };
}

/** events() for one video that stops by itself once it is playable, failed or deleted. */
export function watchVideo(url, options = {}) {
  const { onEvent = () => {} } = options;
  const handle = events(url, {
    ...options,
    onEvent: (event) => {
      const result = onEvent(event);
      if (event.type === 'video.playable' || FAILED.has(event.type)) return false;
      return result;
    },
  });
  return handle;
}
