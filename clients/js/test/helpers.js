// Test helpers: a signing client (tests only: the SDK itself never signs), a localStorage shim
// and a fault-injecting proxy in front of the real vasset server.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import http from 'node:http';

export const SERVER = process.env.VASSET_URL || '';
export const APP_KEY = process.env.VASSET_APP_KEY || '';
export const APP_SECRET = process.env.VASSET_APP_SECRET || '';
/** Why server tests skip (falsy when a server is configured). */
export const NO_SERVER =
  SERVER && APP_KEY && APP_SECRET
    ? false
    : 'set VASSET_URL, VASSET_APP_KEY and VASSET_APP_SECRET to run against a vasset server';

const enc = (v) =>
  encodeURIComponent(String(v)).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** A signed URL for a call of API.md (signing lives server-side in real pages). */
export function signedUrl(method, path, params = {}, base = SERVER) {
  const all = {
    ...Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)])),
    app_key: APP_KEY,
    timestamp: String(Math.floor(Date.now() / 1000)),
    random: randomBytes(12).toString('hex'),
  };
  const pairs = Object.entries(all)
    .map(([k, v]) => [enc(k), enc(v)])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  const canonical = pairs.map(([k, v]) => `${k}=${v}`).join('&');
  const signature = createHmac('sha256', APP_SECRET).update(`${method}\n${path}\n${canonical}`).digest('hex');
  return `${base}${path}?${canonical}&signature=${signature}`;
}

/** A signed JSON call; throws on a non-2xx answer. */
export async function call(method, path, params = {}) {
  const res = await fetch(signedUrl(method, path, params), { method });
  const body = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

/** An init function for Uploader.upload that does the server-side part (a signed init). */
export function signedInit({ psize = 100 * 1024, auto = 0, calls } = {}) {
  return async (file, { name, size }) => {
    if (calls) calls.push({ name, size });
    return call('POST', '/video/upload/init', {
      fn: Buffer.from(name, 'utf8').toString('base64'),
      fsize: size,
      psize,
      auto,
    });
  };
}

/** A File of n random bytes. */
export function randomFile(n, name = `clip-${randomBytes(4).toString('hex')}.bin`) {
  const bytes = randomBytes(n);
  return { file: new File([bytes], name, { lastModified: 1_700_000_000_000 }), md5: md5Of(bytes) };
}

export function md5Of(bytes) {
  return createHash('md5').update(bytes).digest('hex');
}

/** A Map-backed object with the Web Storage interface (what localStorage is in a browser). */
export class StorageShim {
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
}

/**
 * An HTTP proxy on 127.0.0.1 in front of the server. fault(req, info) may return
 * {status, headers, body} to answer instead of the server, 'reset' to drop the connection,
 * or nothing to forward. It records every request and the peak number in flight.
 */
export async function startProxy(fault = () => undefined, target = SERVER) {
  const upstream = new URL(target);
  const log = [];
  let inFlight = 0;
  let peak = 0;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://proxy');
    const info = {
      method: req.method,
      path: url.pathname,
      pseq: url.searchParams.has('pseq') ? Number(url.searchParams.get('pseq')) : null,
      status: null,
    };
    log.push(info);
    inFlight += 1;
    peak = Math.max(peak, inFlight);
    res.on('close', () => {
      inFlight -= 1;
    });
    const decision = fault(req, info);
    if (decision === 'reset') {
      info.status = 'reset';
      req.socket.destroy();
      return;
    }
    if (decision) {
      // Read the body first so the client sees the answer, not a broken pipe.
      req.resume();
      req.on('end', () => {
        info.status = decision.status;
        res.writeHead(decision.status, { 'Content-Type': 'application/json', ...(decision.headers || {}) });
        res.end(JSON.stringify(decision.body || { code: 'ServiceUnavailable', message: 'injected' }));
      });
      return;
    }
    const forward = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: upstream.host },
      },
      (answer) => {
        info.status = answer.statusCode;
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    get peak() {
      return peak;
    },
    parts: () => log.filter((r) => r.method === 'PUT' && r.pseq !== null),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(resolve);
      }),
  };
}
