"""A transcode job's overlays: the watermark fetched and the text written into its workdir.

The pure builder (vasset/transcode/overlays.py) only names these files; this is where they
come from. Called by the pipeline once the probe has said how large the decode is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vasset.assets.service import AssetService
from vasset.errors import FailureCode
from vasset.transcode import overlays
from vasset.transcode.options import TranscodeOptions
from vasset.transcode.probe import MediaError, MediaInfo

if TYPE_CHECKING:
    from vasset.transcode.jobrun import JobRun


class FontMissing(MediaError):
    """A text overlay was asked for, but VASSET_FONT_FILE is not a file on this worker."""

    code = FailureCode.FONT_MISSING
    permanent = True


def frame_size(info: MediaInfo) -> tuple[int, int]:
    """The decode's size in pixels: the stored size, turned by the rotation FFmpeg applies."""
    if info.rotation % 180 == 90:
        return info.height, info.width
    return info.width, info.height


async def prepare(
    run: JobRun, asked: TranscodeOptions, info: MediaInfo
) -> overlays.OverlayPlan | None:
    """The overlays a job asked for, their files in place (None: it asked for none)."""
    if asked.watermark is None and asked.text is None:
        return None
    folder = run.workdir / "overlay"
    folder.mkdir(parents=True, exist_ok=True)
    width, height = frame_size(info)
    kwargs: dict = {}
    if (wm := asked.watermark) is not None:
        service = AssetService(run.ctx.engine, run.ctx.store, run.ctx.settings)
        path = await service.fetch(run.job.app_id, wm.asset_id, folder / "watermark.png")
        kwargs.update(
            watermark_path=str(path),
            wm_position=wm.position,
            wm_margin=wm.margin,
            wm_opacity=wm.opacity,
            wm_scale=wm.scale,
        )
    if (text := asked.text) is not None:
        font = run.ctx.settings.font_file
        if not Path(font).is_file():
            raise FontMissing(f"VASSET_FONT_FILE {font} is not a file on this worker")
        textfile = folder / "text.txt"
        # Exactly the asked text: no newline added, none translated.
        textfile.write_bytes(text.text.encode("utf-8"))
        kwargs.update(
            text_file=str(textfile),
            font_file=font,
            text_position=text.position,
            text_size=text.size,
            text_colour=text.colour,
            text_start_ms=text.start_ms,
            text_end_ms=text.end_ms,
        )
    return overlays.plan_overlays(width, height, **kwargs)
