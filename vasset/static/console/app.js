// The vasset console page: log in, upload (resumable), watch the status, play, download.
// It never holds an app secret: /console/api/* acts for the configured app server-side, and
// uploads use the upload token that the server-side init returns.
import { Uploader, VassetError, events, serverInit } from './vasset.js';
import { createVideoList } from './list.js';
import { attachScrubber, loadCaptions, loadTemplates } from './media.js';

const $ = (id) => document.getElementById(id);
const FINAL = new Set(['playable', 'transcode_failed', 'upload_failed']);
const STORAGE_PREFIX = 'vasset:console:';
const POLL_MS = 1000;

let task = null; // the running UploadTask
let taskFile = null;
let current = null; // the selected video: {vid, timer, source, hls, playFinal, snaps, status}

// ---------------------------------------------------------------------------------------------
// helpers

function fmtBytes(n) {
  if (n == null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(i && v < 10 ? 1 : 0)} ${units[i]}`;
}

function fmtMs(ms) {
  if (ms == null) return '–';
  const s = ms / 1000;
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(1).padStart(4, '0')}`;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node[k] = v;
  }
  for (const child of children) node.append(child);
  return node;
}

async function api(path, { method = 'GET', body } = {}) {
  const res = await fetch(path, {
    method,
    credentials: 'same-origin',
    cache: 'no-store',
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = new VassetError(data?.message || `HTTP ${res.status}`, {
      status: res.status,
      code: data?.code || `HTTP${res.status}`,
      body: data,
    });
    if (res.status === 401 && path.startsWith('/console/api/')) showLogin();
    throw err;
  }
  return data;
}

function makeUploader() {
  const parallel = Math.max(1, Math.min(16, Number($('parallel').value) || 3));
  return new Uploader({ baseUrl: '', parallel, storagePrefix: STORAGE_PREFIX });
}

// ---------------------------------------------------------------------------------------------
// login

function showLogin(message = '') {
  stopUpload();
  stopVideo();
  $('boot').hidden = true;
  $('console').hidden = true;
  $('logout').hidden = true;
  $('app-name').textContent = '';
  $('login').hidden = false;
  $('login-error').textContent = message;
  $('login-key').focus();
}

async function boot() {
  let info;
  try {
    info = await api('/console/api/session');
  } catch (err) {
    $('boot').textContent = `The console is unavailable: ${err.message}`;
    return;
  }
  if (!info.logged_in) {
    showLogin();
    return;
  }
  $('boot').hidden = true;
  $('login').hidden = true;
  $('console').hidden = false;
  $('logout').hidden = false;
  $('app-name').textContent = `app: ${info.app}`;
  const minKiB = Math.ceil((info.limits?.min_part_size || 102400) / 1024);
  $('part-size').min = String(minKiB);
  $('part-size').placeholder = String(Math.round((info.default_part_size || 4 << 20) / 1024));
  renderStored();
  loadRecent();
  loadTemplates(api, $('template'), $('template-box'));
  const vid = Number(new URLSearchParams(location.hash.slice(1)).get('vid'));
  if (vid > 0) selectVideo(vid);
}

$('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('login-error').textContent = '';
  try {
    await api('/console/login', { method: 'POST', body: { key: $('login-key').value } });
    $('login-key').value = '';
    await boot();
  } catch (err) {
    $('login-error').textContent = err.message;
  }
});

$('logout').addEventListener('click', async () => {
  await api('/console/logout', { method: 'POST', body: {} }).catch(() => {});
  showLogin();
});

// ---------------------------------------------------------------------------------------------
// uploads

function setUploadState(state, text) {
  $('upload').dataset.state = state;
  const badge = $('upload-state');
  badge.textContent = text || state;
  badge.className = `badge${state === 'complete' ? ' ok' : state === 'failed' ? ' bad' : ''}`;
  $('upload-abort').textContent = state === 'paused' ? 'Resume' : 'Pause';
  $('upload-abort').hidden = !['uploading', 'resuming', 'paused', 'starting'].includes(state);
}

function stopUpload() {
  if (task && ['starting', 'uploading'].includes(task.state)) task.abort('stopped');
}

function startUpload(file) {
  stopUpload();
  $('upload-error').textContent = '';
  const uploader = makeUploader();
  const partKiB = Number($('part-size').value);
  const extra = partKiB > 0 ? { part_size: Math.round(partKiB * 1024) } : {};
  const resuming = Boolean(uploader.stored(file));
  const started = performance.now();
  let startLoaded = null;
  const mine = uploader.upload(file, { init: serverInit('/console/api/uploads', { extra }) });
  task = mine;
  taskFile = file;
  $('upload-progress-box').hidden = false;
  $('upload-name').textContent = file.name;
  $('upload-progress').value = 0;
  $('upload-text').textContent = resuming ? 'Checking what the server already has…' : 'Starting…';
  setUploadState('starting', resuming ? 'resuming' : 'starting');
  renderStored();

  mine.addEventListener('start', (e) => {
    setUploadState('uploading');
    $('upload').dataset.vid = e.detail.vid;
    if (e.detail.vid) selectVideo(e.detail.vid);
    loadRecent();
  });
  mine.addEventListener('resume', (e) => {
    setUploadState('uploading', 'resuming');
    $('upload').dataset.resumed = 'true';
    $('upload').dataset.vid = e.detail.vid;
    $('upload').dataset.missing = String(e.detail.missing.length);
    if (e.detail.vid) selectVideo(e.detail.vid);
  });
  mine.addEventListener('progress', (e) => {
    if (task !== mine) return;
    const { loaded, total, percent } = e.detail;
    if (startLoaded === null) startLoaded = loaded;
    const seconds = (performance.now() - started) / 1000;
    const rate = seconds > 0.5 ? (loaded - startLoaded) / seconds : 0;
    $('upload-progress').value = percent;
    $('upload').dataset.loaded = String(loaded);
    $('upload').dataset.percent = percent.toFixed(1);
    $('upload-text').textContent =
      `${fmtBytes(loaded)} of ${fmtBytes(total)} (${percent.toFixed(1)} %)` +
      (rate ? ` · ${fmtBytes(rate)}/s` : '');
  });
  mine.addEventListener('retry', (e) => {
    if (task !== mine) return;
    const { pseq, delay, error } = e.detail;
    $('upload-error').textContent =
      `Part ${pseq}: ${error.code}; retrying in ${(delay / 1000).toFixed(1)} s`;
  });
  mine.then(
    (result) => {
      if (task !== mine) return;
      setUploadState('complete', result.resumed ? 'complete (resumed)' : 'complete');
      $('upload-error').textContent = '';
      $('upload').dataset.vid = result.vid;
      selectVideo(result.vid);
      loadRecent();
      renderStored();
    },
    (err) => {
      if (task !== mine) return;
      if (err.name === 'AbortError') {
        setUploadState('paused');
        $('upload-text').textContent += ' · paused: press Resume, or pick the file again later';
      } else {
        setUploadState('failed');
        $('upload-error').textContent = `Upload failed: ${err.code ? `${err.code}: ` : ''}${err.message}`;
      }
      renderStored();
    },
  );
}

$('file').addEventListener('change', () => {
  const file = $('file').files[0];
  if (file) startUpload(file);
  $('file').value = ''; // picking the same file again must fire change again
});

$('upload-abort').addEventListener('click', () => {
  if (!task) return;
  if (task.state === 'aborted' && taskFile) startUpload(taskFile);
  else task.abort('paused');
});

// Uploads that a reload (or a closed tab) interrupted: the SDK keeps them in localStorage.
function renderStored() {
  const uploader = makeUploader();
  const active = task && ['starting', 'uploading'].includes(task.state) ? task.key : null;
  const entries = uploader.listStored().filter((e) => e.key !== active);
  const list = $('resumable-list');
  list.replaceChildren();
  $('resumable').hidden = entries.length === 0;
  for (const entry of entries) {
    const note = el('span', { class: 'muted' }, ' checking…');
    const forget = el('button', {
      type: 'button',
      class: 'secondary',
      textContent: 'Discard',
      onclick: () => {
        uploader.forget(entry.key);
        renderStored();
      },
    });
    const item = el(
      'li',
      { dataset: { name: entry.name, vid: String(entry.vid ?? '') } },
      el('strong', { textContent: entry.name }),
      ` (${fmtBytes(entry.size)}, video ${entry.vid ?? '?'})`,
      note,
      ' ',
      forget,
    );
    list.append(item);
    uploader
      .resumeInfo(entry)
      .then((info) => {
        if (info.status === 'uploading') {
          const missingBytes = info.missing.reduce(
            (sum, p) => sum + (p < info.part_count ? info.part_size : entry.size - info.part_size * (info.part_count - 1)),
            0,
          );
          const pct = entry.size ? ((entry.size - missingBytes) / entry.size) * 100 : 0;
          item.dataset.percent = pct.toFixed(1);
          note.textContent = ` — ${pct.toFixed(0)} % uploaded; pick the same file to resume`;
        } else {
          note.textContent = ` — ${info.status}`;
          uploader.forget(entry.key);
        }
      })
      .catch((err) => {
        note.textContent = ` — no longer resumable (${err.code})`;
        if ([401, 404].includes(err.status)) uploader.forget(entry.key);
      });
  }
}

// ---------------------------------------------------------------------------------------------
// the selected video: status polling, player, downloads, snapshots

function stopVideo() {
  if (!current) return;
  clearTimeout(current.timer);
  if (current.live) current.live.close();
  if (current.hls) current.hls.destroy();
  if (current.scrubber) current.scrubber.detach();
  const video = $('player');
  video.querySelectorAll('track').forEach((t) => t.remove());
  video.removeAttribute('src');
  video.load();
  current = null;
}

function selectVideo(vid, { force = false, reloadOnFinal = false } = {}) {
  vid = Number(vid);
  if (current && current.vid === vid && !force) return;
  stopVideo();
  current = {
    vid, timer: null, source: null, hls: null, playFinal: false, snaps: false, status: null, live: null,
    reloadOnFinal, scrubber: null, storyboard: false,
  };
  history.replaceState(null, '', `#vid=${vid}`);
  $('video').hidden = false;
  $('video').dataset.vid = String(vid);
  $('video-vid').textContent = `#${vid}`;
  $('video-name').textContent = '';
  $('video-error').textContent = '';
  $('player-box').hidden = true;
  $('downloads-box').hidden = true;
  $('snapshots-box').hidden = true;
  $('scrub').hidden = true;
  $('captions-box').hidden = true;
  $('action-note').textContent = '';
  $('media').replaceChildren();
  setVideoStatus('…', 0);
  watch(current);
}

// Live status: each event of the video refreshes it (since=0 replays what came before the
// stream opened); when the stream fails, the SDK polls the status instead (the same refresh).
function watch(state) {
  $('video').dataset.live = 'connecting';
  state.live = events(`/console/api/events?vid=${state.vid}&since=0`, {
    onEvent: (event) => {
      if (current !== state) return false;
      $('video').dataset.live = event.synthesized ? 'polling' : 'sse';
      if (event.progress != null && !event.synthesized) setProgress(event.progress);
      refresh(state);
      return undefined;
    },
    onFallback: () => { $('video').dataset.live = 'polling'; },
    poll: () => api(`/console/api/videos/${state.vid}`),
    pollInterval: POLL_MS,
  });
  state.live.done.then(() => {
    // The stream ended for good (an error it could not get past): the old polling loop.
    if (current === state && !state.finished) { state.live = null; poll(state); }
  });
  refresh(state);
}

// One status read at a time; events that arrive meanwhile cause one more read after it.
function refresh(state) {
  if (state.reading) { state.again = true; return; }
  state.reading = true;
  poll(state).finally(() => {
    state.reading = false;
    if (state.again && current === state) { state.again = false; refresh(state); }
  });
}

function setVideoStatus(status, progress) {
  const badge = $('video-status');
  badge.textContent = status;
  badge.className = `badge${status === 'playable' ? ' ok' : status.endsWith('failed') ? ' bad' : ''}`;
  $('video').dataset.status = status;
  setProgress(progress);
}

// The transcode progress as a bar and a "42 %" label beside it.
function setProgress(progress) {
  const pct = Math.max(0, Math.min(100, Math.round(Number(progress) || 0)));
  $('video-progress').value = pct;
  $('video-progress-label').textContent = `${pct} %`;
  $('video').dataset.progress = String(pct);
}

async function poll(state) {
  if (current !== state) return;
  let info;
  try {
    info = await api(`/console/api/videos/${state.vid}`);
  } catch (err) {
    if (current !== state) return;
    $('video-error').textContent = err.message;
    if (err.status === 404 || err.status === 401) return;
    state.timer = setTimeout(() => poll(state), POLL_MS * 3);
    return;
  }
  if (current !== state) return;
  const final = FINAL.has(info.status);
  if (info.status !== state.status) {
    state.status = info.status;
    loadRecent();
  }
  setVideoStatus(info.status, info.progress);
  $('video-name').textContent = info.media?.source_name || '';
  $('video-error').textContent = info.error ? `Error: ${info.error}` : '';
  renderMedia(info.media || {});
  try {
    if (info.playable && (!state.source || (final && !state.playFinal))) {
      await loadPlay(state, final);
    }
    if (final && info.status === 'playable' && !state.snaps) await loadSnapshots(state);
    if (final && info.status === 'playable' && !state.storyboard) await loadStoryboard(state);
  } catch (err) {
    if (current === state) $('video-error').textContent = err.message;
  }
  if (final && info.status !== 'playable') state.playFinal = true; // nothing to play: stop
  const done = final && state.playFinal && (info.status !== 'playable' || (state.snaps && state.storyboard));
  if (done) {
    state.finished = true;
    if (state.live) state.live.close();
  } else if (!state.live) {
    state.timer = setTimeout(() => poll(state), POLL_MS);
  }
}

function renderMedia(m) {
  const rows = [
    ['file size', fmtBytes(m.file_size)],
    ['duration', fmtMs(m.duration)],
    ['size', m.video_width ? `${m.video_width}×${m.video_height}` : '–'],
    ['codecs', [m.video_codec, m.audio_codec].filter(Boolean).join(' + ') || '–'],
    ['format', m.format || '–'],
    ['MD5', m.md5 || '–'],
    ['renditions', String((m.renditions || []).length)],
  ];
  $('media').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { textContent: k }), el('dd', { textContent: v })]));
}

async function loadPlay(state, final) {
  const play = await api(`/console/api/videos/${state.vid}/play`);
  if (current !== state) return;
  if (final) state.playFinal = true;
  // After a retranscode the old renditions go away: play the new ones from where it was.
  if (final && state.reloadOnFinal) state.source = null;
  renderDownloads(play);
  startPlayer(state, play);
}

function renderDownloads(play) {
  const stem = ($('video-name').textContent || `video-${play.vid}`).replace(/\.[^.]*$/, '');
  const items = play.play_urls
    .filter((u) => u.format === 'mp4')
    .sort((a, b) => (a.height || 0) - (b.height || 0))
    .map((u) =>
      el(
        'li',
        { dataset: { definition: u.definition } },
        el('a', {
          href: u.url,
          download: `${stem}-${u.definition}.mp4`,
          textContent: `${u.definition} MP4`,
        }),
        ` ${u.width}×${u.height} · ${fmtBytes(u.size)}` +
          (u.bitrate ? ` · ${Math.round(u.bitrate / 1000)} kbit/s` : ''),
      ),
    );
  const hls = play.play_urls.find((u) => u.format === 'hls');
  if (hls) {
    items.push(
      el('li', {}, el('a', { href: hls.url, textContent: 'HLS master playlist', target: '_blank', rel: 'noopener' })),
    );
  }
  const expires = play.play_urls[0]?.expires_at;
  if (expires) {
    items.push(el('li', { class: 'muted', textContent: `links expire ${new Date(expires * 1000).toLocaleString()}` }));
  }
  $('downloads').replaceChildren(...items);
  $('downloads-box').hidden = items.length === 0;
}

function startPlayer(state, play) {
  const video = $('player');
  const hlsUrl = play.play_urls.find((u) => u.format === 'hls');
  const mp4 = play.play_urls
    .filter((u) => u.format === 'mp4')
    .sort((a, b) => (b.height || 0) - (a.height || 0))[0];
  const Hls = window.Hls;
  let want = null;
  if (hlsUrl && Hls && Hls.isSupported()) want = 'hls.js';
  else if (hlsUrl && video.canPlayType('application/vnd.apple.mpegurl')) want = 'native-hls';
  else if (mp4) want = 'mp4';
  if (!want || want === state.source) return;
  const resumeAt = video.currentTime || 0;
  if (state.hls) {
    state.hls.destroy();
    state.hls = null;
  }
  state.source = want;
  video.dataset.source = want;
  $('player-source').textContent =
    want === 'hls.js' ? 'HLS (hls.js)' : want === 'native-hls' ? 'HLS (native)' : `MP4 ${mp4.definition}`;
  $('player-box').hidden = false;
  video.muted = true;
  video.querySelectorAll('track').forEach((t) => t.remove());
  state.captions = loadCaptions(video, play.captions || [], want === 'hls.js' ? null : want, $('captions'), $('captions-box'));
  const start = () => {
    if (resumeAt) video.currentTime = resumeAt;
    video.play().catch(() => {});
  };
  if (want === 'hls.js') {
    const hls = new Hls({ enableWorker: true });
    state.hls = hls;
    state.captions.useHls(hls, Hls);
    hls.on(Hls.Events.MANIFEST_PARSED, start);
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal || current !== state) return;
      // Fall back to the progressive MP4 rather than leave the player broken.
      hls.destroy();
      state.hls = null;
      if (mp4) {
        state.source = 'mp4';
        state.captions = loadCaptions(video, play.captions || [], 'mp4', $('captions'), $('captions-box'));
        video.dataset.source = 'mp4';
        $('player-source').textContent = `MP4 ${mp4.definition} (HLS failed: ${data.details})`;
        video.src = mp4.url;
        video.play().catch(() => {});
      }
    });
    hls.loadSource(hlsUrl.url);
    hls.attachMedia(video);
  } else {
    video.src = want === 'mp4' ? mp4.url : hlsUrl.url;
    video.addEventListener('loadedmetadata', start, { once: true });
  }
}

async function loadSnapshots(state) {
  const snaps = await api(`/console/api/videos/${state.vid}/snapshots`);
  if (current !== state) return;
  state.snaps = true;
  const figures = snaps.snapshots.map((s) =>
    el(
      'figure',
      { class: s.index === snaps.cover_index ? 'cover' : '' },
      el('img', { src: s.url, alt: `snapshot ${s.index}`, width: s.width, height: s.height }),
      el('figcaption', {
        textContent: `#${s.index} · ${fmtMs(s.time)}${s.index === snaps.cover_index ? ' · cover' : ''}`,
      }),
    ),
  );
  $('snapshots').replaceChildren(...figures);
  $('snapshots-box').hidden = figures.length === 0;
}

// ---------------------------------------------------------------------------------------------
// the app's videos, a page at a time (list.js)

const videoList = createVideoList({
  api, el, fmtMs, fmtBytes, select: (vid) => selectVideo(vid),
  list: $('recent-list'), more: $('load-more'), filter: $('status-filter'),
});

/** The list again from the top (status changes call it), or with more=true the next page. */
function loadRecent(opts) {
  return videoList.load(opts);
}

// ---------------------------------------------------------------------------------------------
// actions on the selected video

$('delete').addEventListener('click', async () => {
  if (!current) return;
  const { vid } = current;
  if (!window.confirm(`Delete video #${vid} and all its renditions? This cannot be undone.`)) return;
  try {
    await api(`/console/api/videos/${vid}/delete`, { method: 'POST', body: {} });
  } catch (err) {
    $('video-error').textContent = `Delete failed: ${err.code}: ${err.message}`;
    return;
  }
  stopVideo();
  $('video').hidden = true;
  $('video').dataset.vid = '';
  history.replaceState(null, '', location.pathname);
  loadRecent();
});

$('retranscode').addEventListener('click', async () => {
  if (!current) return;
  const { vid } = current;
  const template = $('template-box').hidden ? '' : $('template').value;
  const body = template ? { template } : {};
  $('action-note').textContent = 'queueing…';
  try {
    await api(`/console/api/videos/${vid}/retranscode`, { method: 'POST', body });
  } catch (err) {
    $('action-note').textContent = '';
    $('video-error').textContent = `Retranscode failed: ${err.code}: ${err.message}`;
    return;
  }
  // Watch it again from the start: the old renditions keep playing until the new ones land.
  selectVideo(vid, { force: true, reloadOnFinal: true });
  $('action-note').textContent = template ? `retranscode queued (template ${template})` : 'retranscode queued';
  loadRecent();
});

// ---------------------------------------------------------------------------------------------
// storyboard (thumbnails while scrubbing)

async function loadStoryboard(state) {
  let board;
  try {
    board = await api(`/console/api/videos/${state.vid}/storyboard`);
  } catch (err) {
    // No storyboard for this video (or none yet): the scrub bar stays hidden.
    if (current === state) state.storyboard = true;
    if ([404, 409].includes(err.status)) return;
    throw err;
  }
  if (current !== state) return;
  state.storyboard = true;
  if (state.scrubber) state.scrubber.detach();
  state.scrubber = await attachScrubber($('player'), board, {
    box: $('scrub'),
    bar: $('scrub-bar'),
    fill: $('scrub-fill'),
    preview: $('scrub-preview'),
    tile: $('scrub-tile'),
    label: $('scrub-time'),
    fmt: fmtMs,
  });
}

window.addEventListener('hashchange', () => {
  const vid = Number(new URLSearchParams(location.hash.slice(1)).get('vid'));
  if (vid > 0 && !$('console').hidden) selectVideo(vid);
});

boot();
