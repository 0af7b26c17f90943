// The console's list of the app's videos: newest first, a page at a time through the list's
// cursor ("Load more"), optionally only one status. app.js creates it once.

const PAGE = 15; // videos per page

/**
 * Wire the list to its elements; returns {load({more})}: without more, the list again from the
 * top, as long as it is now (status changes call it); with more, the next page appended.
 */
export function createVideoList({ api, el, fmtMs, fmtBytes, select, list, more, filter }) {
  const state = { cursor: null, status: '', busy: false, again: false };

  const item = (v) => {
    const progress = ['transcode_queued', 'transcoding'].includes(v.status) ? ` ${v.progress} %` : '';
    return el(
      'li',
      { dataset: { vid: String(v.vid), status: v.status } },
      el('a', { textContent: `#${v.vid} ${v.source_name}`, onclick: () => select(v.vid) }),
      ` · ${v.status}${progress}${v.duration ? ` · ${fmtMs(v.duration)}` : ''} · ${fmtBytes(v.file_size)}`,
    );
  };

  async function load({ more: next = false } = {}) {
    if (state.busy) {
      if (!next) state.again = true;
      return;
    }
    state.busy = true;
    try {
      const limit = next ? PAGE : Math.min(100, Math.max(PAGE, list.children.length));
      const params = new URLSearchParams({ limit: String(limit) });
      if (state.status) params.set('status', state.status);
      if (next && state.cursor) params.set('cursor', state.cursor);
      const page = await api(`/console/api/videos?${params}`);
      const items = page.videos.map(item);
      if (next) list.append(...items);
      else list.replaceChildren(...items);
      state.cursor = page.next_cursor;
      more.hidden = !page.next_cursor;
    } catch {
      // The list is a convenience; the next status change refreshes it.
    } finally {
      state.busy = false;
      if (state.again) {
        state.again = false;
        load();
      }
    }
  }

  more.addEventListener('click', () => load({ more: true }));
  filter.addEventListener('change', () => {
    state.status = filter.value;
    state.cursor = null;
    list.replaceChildren();
    load();
  });
  return { load };
}
