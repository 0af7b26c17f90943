// The console player's extras: storyboard tiles above a scrub bar, caption selection, and the
// app's templates for "Retranscode with template". app.js wires them to the page.

/** Seconds of a WebVTT timestamp (hh:mm:ss.mmm or mm:ss.mmm). */
function vttSeconds(stamp) {
  return stamp.split(':').reduce((total, part) => total * 60 + Number(part), 0);
}

/** The cues of a storyboard WebVTT: {start, end, uri, url, x, y, w, h}, URLs resolved. */
export function parseStoryboard(text, base) {
  const cues = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i += 1) {
    const m = lines[i].match(/^\s*([0-9:.]+)\s+-->\s+([0-9:.]+)/);
    if (!m) continue;
    const uri = (lines[i + 1] || '').trim();
    const at = uri.indexOf('#xywh=');
    if (at < 0) continue;
    const [x, y, w, h] = uri.slice(at + 6).split(',').map(Number);
    if (![x, y, w, h].every(Number.isFinite)) continue;
    const url = new URL(uri.slice(0, at), base).href;
    cues.push({ start: vttSeconds(m[1]), end: vttSeconds(m[2]), uri, url, x, y, w, h });
  }
  return cues;
}

/**
 * Show the storyboard tile of the time under the pointer above a scrub bar; a click or a drag
 * on the bar seeks. Returns {detach()} (and {cues} for the page's tests).
 */
export async function attachScrubber(video, board, ui) {
  const res = await fetch(board.vtt_url, { cache: 'no-store' });
  if (!res.ok) throw new Error(`storyboard track: HTTP ${res.status}`);
  const cues = parseStoryboard(await res.text(), res.url || board.vtt_url);
  if (!cues.length) return { cues, detach() {} };
  const stop = new AbortController();
  const on = (target, name, fn) => target.addEventListener(name, fn, { signal: stop.signal });
  const duration = () => (Number.isFinite(video.duration) && video.duration > 0 ? video.duration : cues[cues.length - 1].end);
  const fraction = (event) => {
    const box = ui.bar.getBoundingClientRect();
    return Math.max(0, Math.min(1, (event.clientX - box.left) / box.width));
  };
  let dragging = false;

  const show = (frac) => {
    const t = frac * duration();
    const cue = cues.find((c) => t >= c.start && t < c.end) || (t < cues[0].start ? cues[0] : cues[cues.length - 1]);
    ui.tile.style.width = `${cue.w}px`;
    ui.tile.style.height = `${cue.h}px`;
    ui.tile.style.backgroundImage = `url("${cue.url}")`;
    ui.tile.style.backgroundPosition = `-${cue.x}px -${cue.y}px`;
    ui.label.textContent = ui.fmt(t * 1000);
    const width = ui.bar.clientWidth;
    const half = cue.w / 2 + 2;
    ui.preview.style.left = `${Math.max(half, Math.min(width - half, frac * width))}px`;
    ui.preview.dataset.uri = cue.uri;
    ui.preview.dataset.url = cue.url;
    ui.preview.dataset.time = t.toFixed(2);
    ui.preview.hidden = false;
  };
  const seek = (frac) => {
    if (Number.isFinite(video.duration)) video.currentTime = frac * video.duration;
  };

  on(ui.bar, 'pointermove', (e) => {
    show(fraction(e));
    if (dragging) seek(fraction(e));
  });
  on(ui.bar, 'pointerdown', (e) => {
    dragging = true;
    ui.bar.setPointerCapture(e.pointerId);
    show(fraction(e));
    seek(fraction(e));
  });
  on(ui.bar, 'pointerup', (e) => {
    dragging = false;
    ui.bar.releasePointerCapture(e.pointerId);
  });
  on(ui.bar, 'pointerleave', () => {
    if (!dragging) ui.preview.hidden = true;
  });
  on(video, 'timeupdate', () => {
    ui.fill.style.width = `${(100 * video.currentTime) / duration()}%`;
  });
  ui.box.hidden = false;
  ui.box.dataset.cues = String(cues.length);
  return {
    cues,
    detach() {
      stop.abort();
      ui.preview.hidden = true;
      ui.box.hidden = true;
      ui.fill.style.width = '0';
    },
  };
}

/**
 * The caption selector of the player. mode 'mp4' adds a <track> per caption; HLS players get
 * them from the master's SUBTITLES group (hls.js: call useHls; native HLS: its text tracks).
 */
export function loadCaptions(video, captions, mode, select, box) {
  select.replaceChildren(
    new Option('Off', ''),
    ...captions.map((c) => new Option(`${c.label} (${c.lang})`, c.lang)),
  );
  box.hidden = captions.length === 0;
  if (mode === 'mp4') {
    for (const c of captions) {
      const track = document.createElement('track');
      Object.assign(track, { kind: 'subtitles', src: c.url, srclang: c.lang, label: c.label });
      video.append(track);
    }
  }
  let hls = null;
  const apply = () => {
    const lang = select.value;
    if (hls) {
      hls.subtitleDisplay = Boolean(lang);
      hls.subtitleTrack = lang ? hls.subtitleTracks.findIndex((t) => t.lang === lang) : -1;
    } else {
      for (const track of video.textTracks) {
        track.mode = lang && track.language === lang ? 'showing' : 'disabled';
      }
    }
    video.dataset.captions = lang;
  };
  select.onchange = apply;
  video.dataset.captions = '';
  return {
    useHls(player, Hls) {
      hls = player;
      player.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, (_event, data) => {
        video.dataset.subtitleTracks = String(data.subtitleTracks.length);
        apply();
      });
    },
  };
}

/** Fill the template selector from the app's templates; hidden when it has none. */
export async function loadTemplates(api, select, box) {
  let answer;
  try {
    answer = await api('/console/api/templates');
  } catch {
    box.hidden = true;
    return;
  }
  const names = (answer.templates || []).map((t) => t.name);
  select.replaceChildren(new Option('(service defaults)', ''), ...names.map((n) => new Option(n, n)));
  box.hidden = names.length === 0;
}
