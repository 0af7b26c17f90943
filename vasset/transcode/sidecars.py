"""Storyboards and the audio-only rendition of one transcode attempt: ask, store, record.

The ladder's FFmpeg run writes both (commands.build_transcode with the requests made here).
``store`` puts them under the attempt's token-scoped prefix; ``record`` runs inside the
pipeline's final, fenced publish transaction, so they replace the previous set atomically with
the renditions (a failed attempt leaves the old ones; the old prefix goes with the old set).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from vasset.transcode import audio, ladder, storyboard
from vasset.transcode.commands import TranscodeCommand
from vasset.transcode.options import TranscodeOptions
from vasset.transcode.outputs import mp4_boxes
from vasset.transcode.probe import InvalidOutput, MediaInfo
from vasset.transcode.progressive import PLAYLIST_TYPE, Playlist
from vasset.videos import repository as videos
from vasset.videos.state import VideoStatus

if TYPE_CHECKING:
    from vasset.settings import Settings
    from vasset.transcode.jobrun import JobRun

log = structlog.get_logger(__name__)

STORYBOARD_KEY = storyboard.MEDIA_INFO_KEY
#: Definition and format of the audio-only rendition's row.
AUDIO_DEFINITION = audio.NAME
AUDIO_FORMAT = "m4a"


def storyboard_request(
    settings: Settings, asked: TranscodeOptions, info: MediaInfo, workdir: Path
) -> storyboard.StoryboardRequest | None:
    """The storyboard this job makes: on by default (VASSET_STORYBOARD), the job may override."""
    wanted = settings.storyboard if asked.storyboard is None else asked.storyboard
    if not wanted or not info.has_video:
        return None
    width, height = ladder.display_size(
        info.width, info.height, info.rotation, sample_aspect=info.sample_aspect
    )
    layout = storyboard.plan_layout(info.duration_ms, width, height)
    if layout is None:
        return None
    return storyboard.StoryboardRequest(layout=layout, out_dir=str(workdir / "storyboard"))


def audio_request(
    asked: TranscodeOptions,
    info: MediaInfo,
    plans: list,
    workdir: Path,
    hls: bool,
    hls_time: int,
    copied: int | None = None,
) -> audio.AudioRequest | None:
    """The audio-only rendition this job makes: when the source has audio, unless turned off.

    copied: the source's audio bitrate when the ladder copies the source's audio (so does this).
    """
    if asked.audio is False or not info.has_audio:
        return None
    bitrate = copied or max((p.audio_bitrate for p in plans), default=audio.DEFAULT_BITRATE)
    return audio.AudioRequest(
        out_dir=str(workdir / "out"),
        bitrate=bitrate,
        hls=hls,
        hls_time=hls_time,
        copy=copied is not None,
    )


class Stored(msgspec.Struct, kw_only=True):
    """What store() put under the attempt's prefix, for record()."""

    storyboard: dict[str, Any] | None = None
    m4a_key: str | None = None
    m4a_size: int = 0
    m4a_bitrate: int = 0


async def store(run: JobRun, cmd: TranscodeCommand, master: Path | None, live: bool) -> Stored:
    """Upload the storyboard and the audio rendition under the attempt's prefix.

    live: HLS went out progressively, so the audio-only variant and the master that names it
    are uploaded here (otherwise the pipeline uploads the whole hls/ tree, master included).
    """
    stored = Stored()
    if cmd.storyboard is not None:
        stored.storyboard = await _store_storyboard(run, cmd.storyboard)
    sound = cmd.audio
    if sound is not None:
        boxes = mp4_boxes(sound.m4a_path) if Path(sound.m4a_path).is_file() else []
        if "moov" not in boxes or "mdat" not in boxes or boxes.index("moov") > boxes.index("mdat"):
            raise InvalidOutput("the audio rendition is missing or not faststart")
        key = f"{run.prefix}{audio.NAME}.m4a"
        await run.ctx.store.put_file(key, Path(sound.m4a_path), audio.M4A_TYPE)
        run.uploaded.append(key)
        stored.m4a_key, stored.m4a_bitrate = key, sound.bitrate
        stored.m4a_size = Path(sound.m4a_path).stat().st_size
        if sound.hls_playlist is not None:
            await _check_variant(Path(sound.hls_playlist))
            if live and master is not None:
                await _store_audio_hls(run, Path(sound.hls_playlist), master)
    return stored


async def _check_variant(playlist: Path) -> None:
    try:
        parsed = Playlist(playlist.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidOutput("the audio-only HLS variant was not written") from exc
    names = ([parsed.init] if parsed.init else []) + parsed.segments
    if not parsed.ended or not parsed.segments:
        raise InvalidOutput("the audio-only HLS variant is incomplete")
    for name in names:
        if "/" in name or not (playlist.parent / name).is_file():
            raise InvalidOutput(f"audio HLS segment missing: {name}")


async def _store_audio_hls(run: JobRun, playlist: Path, master: Path) -> None:
    """Segments, then the variant playlist, then the master naming it (players never see a
    name without bytes)."""
    hls_root = master.parent
    for path in sorted(playlist.parent.iterdir()):
        if path.is_file() and path != playlist:
            key = f"{run.prefix}hls/{path.relative_to(hls_root).as_posix()}"
            await run.ctx.store.put_file(key, path)
            run.uploaded.append(key)
    for path in (playlist, master):
        key = f"{run.prefix}hls/{path.relative_to(hls_root).as_posix()}"
        await run.ctx.store.put_bytes(key, path.read_bytes(), PLAYLIST_TYPE)
        run.uploaded.append(key)


async def _store_storyboard(
    run: JobRun, board: storyboard.StoryboardOutputs
) -> dict[str, Any] | None:
    """Upload the sheets FFmpeg wrote and the VTT naming them; None when there is no sheet."""
    layout = board.layout
    sheets = []
    for sheet in layout.sheets():
        path = Path(board.paths[sheet.name])
        if not path.is_file() or not path.stat().st_size:
            break  # a shorter decode than the probed duration: keep the sheets before it
        key = f"{run.prefix}storyboard/{sheet.name}"
        await run.ctx.store.put_file(key, path, "image/jpeg")
        run.uploaded.append(key)
        sheets.append({"key": key, "width": sheet.width, "height": sheet.height})
    if not sheets:
        log.warning("storyboard_missing", vid=run.job.video_id)
        return None
    count = min(layout.count, len(sheets) * layout.per_sheet)
    if count < layout.count:
        log.warning("storyboard_truncated", vid=run.job.video_id, tiles=count, of=layout.count)
        layout = msgspec.structs.replace(layout, count=count)
    vtt_key = f"{run.prefix}storyboard/{storyboard.VTT_NAME}"
    text = storyboard.vtt_text(layout).encode()
    await run.ctx.store.put_bytes(vtt_key, text, storyboard.VTT_TYPE)
    run.uploaded.append(vtt_key)
    return {
        "vtt": vtt_key,
        "interval": layout.interval,
        "tile_width": layout.tile_width,
        "tile_height": layout.tile_height,
        "tiles": count,
        "sheets": sheets,
    }


async def record(conn: AsyncConnection, source: Any, details: dict, stored: Stored) -> None:
    """In the final publish transaction: the storyboard into media_info, the M4A row inserted.

    The caller has retired the previous renditions (the old M4A row among them) and writes
    ``details`` back; an attempt without a storyboard drops the previous one.
    """
    if stored.storyboard is None:
        details.pop(STORYBOARD_KEY, None)
    else:
        details[STORYBOARD_KEY] = stored.storyboard
    if stored.m4a_key is None:
        return
    await videos.insert_video(
        conn,
        app_id=source.app_id,
        parent_id=source.id,
        source_name=source.source_name,
        file_size=stored.m4a_size,
        duration=source.duration,
        definition=AUDIO_DEFINITION,
        storage_uri=stored.m4a_key,
        status=VideoStatus.PLAYABLE.value,
        format=AUDIO_FORMAT,
        media_info=json.dumps({"bitrate": stored.m4a_bitrate, "codecs": audio.CODECS}),
    )
