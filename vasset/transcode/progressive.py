"""Progressive HLS: a video is playable from its first segments while the ladder continues.

The design, in one place:

- FFmpeg writes every HLS variant as an EVENT playlist (``hls_playlist_type=event``) with a
  1 s first segment (an extra key frame at 1 s) and 2 s segments after it. FFmpeg names a
  segment in the playlist only once the segment is closed, and writes EVENT playlists through
  a temp file and a rename, so whatever the local playlist says is on disk, whole.
- A ``Publisher`` watches the attempt's output folder while FFmpeg runs. Each round, per
  variant: it uploads the init segment and every new segment, then the variant playlist that
  names them (segments before the playlist, so a player never sees a name without bytes). The
  playlists it uploads carry ``#EXT-X-START:TIME-OFFSET=0`` so players start at the beginning
  instead of at the "live" edge.
- As soon as the lowest variant has a segment, the master playlist naming every variant that
  has one is uploaded, and one transaction, while the job's token holds, points the video at it:
  HLS rendition rows, ``media_info.hls_master`` and ``ladder: "partial"`` (videos/state.py), and
  a ``video.playable`` event. The video stays ``transcoding``; ``/video/status`` answers
  ``playable: true, ladder: "partial"`` and playurl the HLS master (MP4s come at the end).
- At the end FFmpeg closes the playlists (``#EXT-X-ENDLIST``); the last round uploads them as
  VOD playlists and the pipeline's final publish adds the MP4 rows and ``ladder: "complete"``.

Fencing: every object goes under the attempt's token-scoped prefix, and the database points at
that prefix only from a transaction that holds the job's token. Each round that changes a
playlist first checks the token; a lost token stops FFmpeg and the attempt. A stale writer can
at most append segments and a playlist naming them to its own prefix, which stays consistent.

A retried attempt (worker killed, lease lost) publishes a fresh set under its own prefix and
switches the video to it in one transaction when its own first segment is out: a player that
loads the master from then on gets the new set; one already on the old set keeps reading it
(its bytes stay until the new attempt completes, then go like a retranscode's old set). A
failed final attempt leaves the video ``transcode_failed`` and not playable: the partial
renditions are retired in the failing transaction (``drop_partial``). A video whose complete
ladder is already published is never published progressively: a retranscode keeps the old
renditions playing until the new ladder is complete.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from vasset.db import run_transaction, transaction
from vasset.events import outbox
from vasset.events.types import EventType
from vasset.storage import keys
from vasset.transcode import commands
from vasset.transcode.repository import holds
from vasset.videos import repository as videos
from vasset.videos.state import LADDER, Ladder, VideoStatus, ladder_of

if TYPE_CHECKING:
    from vasset.transcode.jobrun import JobRun

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: Segment length while publishing progressively: one GOP, so the first segment closes early.
SEGMENT_SECONDS = 2
#: The first segment's length: the first publish waits for it.
FIRST_SEGMENT_SECONDS = 1
#: Seconds between two looks at the output folder.
POLL_INTERVAL = 0.2
#: Seconds a round may take to finish once FFmpeg has ended, before it is cancelled after all.
ROUND_GRACE = 60.0
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
START_TAG = "#EXT-X-START:TIME-OFFSET=0"


class Playlist:
    """What a local FFmpeg variant playlist names: init segment, segments, and whether it ended."""

    def __init__(self, text: str) -> None:
        self.lines = [line.strip() for line in text.splitlines() if line.strip()]
        self.segments = [line for line in self.lines if not line.startswith("#")]
        self.init = None
        for line in self.lines:
            if line.startswith("#EXT-X-MAP:") and 'URI="' in line:
                self.init = line.split('URI="', 1)[1].split('"', 1)[0]
        self.ended = "#EXT-X-ENDLIST" in self.lines

    def published_text(self, target: int) -> str:
        """What players get: start at 0, a steady target duration, VOD once ended."""
        out = []
        for line in self.lines:
            if line.startswith("#EXT-X-TARGETDURATION:"):
                found = int(line.split(":", 1)[1] or 0)
                line = f"#EXT-X-TARGETDURATION:{max(found, target)}"
            elif line == "#EXT-X-PLAYLIST-TYPE:EVENT" and self.ended:
                line = "#EXT-X-PLAYLIST-TYPE:VOD"
            out.append(line)
            if line == "#EXTM3U":
                out.append(START_TAG)
        return "\n".join(out) + "\n"


def _read_playlist(path: str) -> Playlist | None:
    try:
        return Playlist(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, UnicodeDecodeError):
        return None


async def wanted(run: JobRun) -> bool:
    """Whether this attempt publishes progressively: on, HLS on, and no complete ladder yet."""
    s = run.ctx.settings
    if not (s.hls and s.hls_progressive):
        return False
    async with transaction(run.ctx.engine) as conn:
        video = await videos.get_video(conn, run.job.video_id)
        children = await videos.children(conn, run.job.video_id) if video else []
    if video is None:
        return False
    current = ladder_of(json.loads(video.media_info or "{}"), bool(children))
    return LADDER.allows(current, Ladder.PARTIAL)


class Publisher:
    """Uploads one attempt's HLS as FFmpeg writes it and makes the video playable early."""

    def __init__(self, run: JobRun, cmd: commands.TranscodeCommand) -> None:
        self.run = run
        self.cmd = cmd
        self.variants = [o for o in cmd.outputs if o.hls_playlist]
        self.hls_root = Path(cmd.master_path).parent if cmd.master_path else None
        self.uploaded: set[str] = set()
        self.playlists: dict[str, str] = {}  # variant name -> text last uploaded
        self.in_master: list[str] = []  # variants the uploaded master names, in ladder order
        self.rows: set[str] = set()  # variants with a committed HLS rendition row
        self.replaced: set[str] = set()  # prefixes of the sets this attempt's first publish hid
        self.first_playable_at: float | None = None

    @property
    def published(self) -> bool:
        """Whether the video points at this attempt's HLS (its first publish committed)."""
        return bool(self.rows)

    def key(self, path: str | Path) -> str:
        """The object key of a local file under the attempt's hls/ folder."""
        assert self.hls_root is not None
        return f"{self.run.prefix}hls/{Path(path).relative_to(self.hls_root).as_posix()}"

    async def alongside(self, ffmpeg: Awaitable[T]) -> T:
        """Run FFmpeg with the watcher beside it; the watcher stops when FFmpeg ends."""
        stop = asyncio.Event()
        watcher = asyncio.create_task(self._watch(stop))
        try:
            return await ffmpeg
        finally:
            # The watcher ends between rounds, never inside one: a round cancelled mid-way
            # would abandon a transaction or an upload half done. finish() uploads the rest.
            stop.set()
            done, _ = await asyncio.wait([watcher], timeout=ROUND_GRACE)
            if not done:
                log.warning("progressive_round_stuck", job=self.run.job.id, grace=ROUND_GRACE)
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)

    async def _watch(self, stop: asyncio.Event) -> None:
        while True:
            try:
                await asyncio.wait_for(stop.wait(), POLL_INTERVAL)
                return
            except TimeoutError:
                pass
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A lost token sets run.cancel (FFmpeg stops); anything else is retried next
                # round and, if it persists, by the final publish, which raises for real.
                log.warning(
                    "progressive_round_failed",
                    job=self.run.job.id,
                    error=type(exc).__name__,
                    detail=str(exc)[:200],
                )

    async def sync(self) -> None:
        """One round: new segments, then playlists naming them, then (when grown) the master."""
        self.run.check()
        changed: dict[str, str] = {}
        ready: list[str] = []
        for out in self.variants:
            assert out.hls_playlist is not None
            playlist = _read_playlist(out.hls_playlist)
            if playlist is None or not playlist.segments:
                continue
            folder = Path(out.hls_playlist).parent
            names = ([playlist.init] if playlist.init else []) + playlist.segments
            for name in names:
                path = folder / name
                key = self.key(path)
                if key not in self.uploaded:
                    await self.run.ctx.store.put_file(key, path)
                    self.uploaded.add(key)
            text = playlist.published_text(SEGMENT_SECONDS)
            if self.playlists.get(out.name) != text:
                changed[out.name] = text
            ready.append(out.name)
        if not changed:
            return
        await self._check_token()
        for out in self.variants:
            if out.name in changed:
                assert out.hls_playlist is not None
                key = self.key(out.hls_playlist)
                await self.run.ctx.store.put_bytes(key, changed[out.name].encode(), PLAYLIST_TYPE)
                self.playlists[out.name] = changed[out.name]
        # The master waits for the lowest variant: players start on it while the rest follow.
        if ready and ready[0] == self.variants[0].name and ready != self.in_master:
            await self._publish_master(ready)

    async def _check_token(self) -> None:
        """Raise LeaseLost (and stop FFmpeg) unless the job's token still holds."""
        async with transaction(self.run.ctx.engine) as conn:
            held = await holds(conn, self.run.job)
        if not held:
            self.run.cancel.set()
        self.run.check()

    async def _publish_master(self, names: list[str]) -> None:
        outputs = [o for o in self.variants if o.name in names]
        assert self.cmd.master_path is not None
        master_key = self.key(self.cmd.master_path)
        text = commands.master_playlist(outputs)
        await self.run.ctx.store.put_bytes(master_key, text.encode(), PLAYLIST_TYPE)
        self.in_master = names
        new = [o for o in outputs if o.name not in self.rows]
        if new:
            await run_transaction(
                self.run.ctx.engine, lambda conn: self._point_video(conn, new, master_key)
            )
            self.rows |= {o.name for o in new}

    async def _point_video(self, conn: AsyncConnection, new: list, master_key: str) -> None:
        """Point the video at this attempt's HLS (first time: hide any earlier partial set)."""

        vid = self.run.job.video_id
        # The video row first, then the job's (videos.lock_video): the API's lock order.
        source = await videos.get_video(conn, vid, for_update=True)
        if source is None or not await holds(conn, self.run.job, lock=True):
            self.run.cancel.set()
            self.run.check()
        assert source is not None
        details = json.loads(source.media_info or "{}")
        first = not self.rows
        if first:
            old = await videos.children(conn, vid)
            LADDER.check(ladder_of(details, bool(old)), Ladder.PARTIAL)
            self.replaced = {
                p
                for p in (keys.output_prefix_of(r.storage_uri or "") for r in old)
                if p and p != self.run.prefix
            }
            await videos.retire_renditions(conn, vid)
        for out in new:
            await insert_rendition(conn, source, out, self.key(out.hls_playlist), 0, "hls")
        details.update(hls_master=master_key, output_prefix=self.run.prefix, ladder="partial")
        await videos.update_video(conn, vid, media_info=json.dumps(details))
        if first:
            await outbox.emit(conn, vid, EventType.PLAYABLE, ladder=Ladder.PARTIAL.value)
            self.first_playable_at = time.time()
            log.info(
                "first_playable",
                job=self.run.job.id,
                vid=vid,
                variants=[o.name for o in new],
                replaced=sorted(self.replaced),
            )

    async def finish(self) -> None:
        """After FFmpeg: upload what is left and the closed (VOD) playlists, then the master."""
        await self.sync()
        missing = [o.name for o in self.variants if o.name not in self.playlists]
        if missing:
            raise RuntimeError(f"HLS variants never written: {', '.join(missing)}")
        if self.in_master != [o.name for o in self.variants]:
            await self._publish_master([o.name for o in self.variants])

    def rows_left(self) -> list[commands.RenditionOutput]:
        """HLS variants without a committed row yet (the final publish inserts them)."""
        return [o for o in self.variants if o.name not in self.rows]


async def drop_partial(conn: AsyncConnection, vid: int) -> bool:
    """Retire a partial ladder (a transcode failed for good); True if there was one.

    Runs in the failing transaction: the video becomes transcode_failed and not playable at once,
    rather than playable as an EVENT playlist that never ends.
    """
    video = await videos.get_video(conn, vid)
    if video is None:
        return False
    details = json.loads(video.media_info or "{}")
    children = await videos.children(conn, vid)
    if ladder_of(details, bool(children)) is not Ladder.PARTIAL:
        return False
    LADDER.check(Ladder.PARTIAL, Ladder.NONE)
    await videos.retire_renditions(conn, vid)
    for field in ("hls_master", "output_prefix"):
        details.pop(field, None)
    details["ladder"] = Ladder.NONE.value
    await videos.update_video(conn, vid, media_info=json.dumps(details))
    log.info("partial_ladder_retired", vid=vid, renditions=len(children))
    return True


async def insert_rendition(conn, source, output, key: str, size: int, fmt: str) -> None:
    """Record one published rendition of source (a playable child row)."""
    await videos.insert_video(
        conn,
        app_id=source.app_id,
        parent_id=source.id,
        source_name=source.source_name,
        file_size=size,
        video_width=output.width,
        video_height=output.height,
        duration=source.duration,
        definition=output.name,
        storage_uri=key,
        status=VideoStatus.PLAYABLE.value,
        format=fmt,
        media_info=json.dumps(
            {
                "bitrate": output.video_bitrate + output.audio_bitrate,
                "bandwidth": output.bandwidth,
                "codecs": output.codecs,
                "frame_rate": output.frame_rate,
                "passthrough": output.passthrough,
            }
        ),
    )
