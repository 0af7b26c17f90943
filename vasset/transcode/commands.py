"""FFmpeg command lines for the rendition ladder and HLS (pure: argv lists only).

One process decodes the source once; each rendition is scaled from the nearest larger one and
has its own H.264 encoder (or, for a passthrough, copies the source's video), and each output's
packets go through the ``tee`` muxer to both a faststart MP4 and a VOD HLS variant, so HLS costs
no second encode. Snapshots can branch off the same decode. Inputs are opened as ``ffargs``
says (file protocol only, whitelisted demuxers); snapshot filters are in ``snapshots``. The
caller must create ``TranscodeCommand.directories`` first (the HLS muxer does not), and check the
outputs afterwards: a failing tee slave does not always change FFmpeg's exit code.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import msgspec

from vasset.transcode import codecs as video_codecs
from vasset.transcode import overlays
from vasset.transcode.audio import AudioOutput, AudioRequest, audio_output_args
from vasset.transcode.ffargs import VIDEO_DEMUXERS, common_args, input_args
from vasset.transcode.h264 import MAX_FRAME_RATE, codecs_string, h264_level
from vasset.transcode.ladder import RenditionPlan
from vasset.transcode.master import master_playlist
from vasset.transcode.passthrough import Passthrough
from vasset.transcode.snapshots import (
    SnapshotOutputs,
    SnapshotRequest,
    build_snapshots,
    snapshot_outputs,
    snapshot_times,
)
from vasset.transcode.storyboard import StoryboardOutputs, StoryboardRequest, storyboard_outputs

# VIDEO_DEMUXERS, input_args, the snapshot commands, the H.264 level table and the master
# playlist live in ffargs, snapshots, h264 and master; they are re-exported because tests,
# bench/ and other modules import them from here.
__all__ = [
    "VIDEO_DEMUXERS",
    "RenditionOutput",
    "TranscodeCommand",
    "build_snapshots",
    "build_transcode",
    "codecs_string",
    "h264_level",
    "input_args",
    "master_playlist",
    "snapshot_times",
]

# GOP and segment lengths: a key frame every 2 s, so 4 s HLS segments cut on key frames.
GOP_SECONDS = 2.0
HLS_SEGMENT_SECONDS = 4


class RenditionOutput(msgspec.Struct, frozen=True, kw_only=True):
    """Where one rendition is written, and what the master playlist says about it."""

    name: str
    width: int
    height: int
    video_bitrate: int
    max_rate: int
    audio_bitrate: int
    level: str
    codecs: str
    frame_rate: float
    mp4_path: str
    # HLS variant playlist and its directory (None when HLS is off).
    hls_dir: str | None = None
    hls_playlist: str | None = None
    # The source's video stream remuxed, not re-encoded.
    passthrough: bool = False

    @property
    def bandwidth(self) -> int:
        """Peak bits/s for BANDWIDTH: max rate plus audio plus ~10 % container overhead."""
        return round((self.max_rate + self.audio_bitrate) * 1.1)

    @property
    def average_bandwidth(self) -> int:
        """Average bits/s for AVERAGE-BANDWIDTH."""
        return round((self.video_bitrate + self.audio_bitrate) * 1.05)


class TranscodeCommand(msgspec.Struct, frozen=True, kw_only=True):
    """An FFmpeg argv plus everything the caller needs around it."""

    argv: list[str]
    outputs: list[RenditionOutput]
    # Directories that must exist before FFmpeg starts.
    directories: list[str]
    # Where master_playlist() output goes (None when HLS is off).
    master_path: str | None = None
    # JPEG snapshots written by the same run (None when none were asked for).
    snapshots: SnapshotOutputs | None = None
    # Storyboard sheets and the audio-only rendition of the same run (see storyboard, audio).
    storyboard: StoryboardOutputs | None = None
    audio: AudioOutput | None = None

    def make_directories(self) -> None:
        """Create the output directories (the one impure convenience of this module)."""
        for directory in self.directories:
            os.makedirs(directory, exist_ok=True)


def _tee_path(path: Path) -> str:
    # The tee muxer parses its argument with two levels of escaping; rather than get that
    # subtly wrong, output paths (which vasset chooses) must not contain its syntax characters.
    text = os.fspath(path)
    if any(char in text for char in "\\:|[]'\";="):
        raise ValueError(f"output path {text!r} contains a character the tee muxer reserves")
    return text


def _fps(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _scale_chain(
    video: str, encoded: Sequence[tuple[int, RenditionPlan]], frame_rate: float, snapshots: bool
) -> tuple[list[str], str | None]:
    """Filtergraph: one decode; each rendition scaled from the nearest larger one.

    Returns the graph lines (rendition i comes out on pad ``v{i}``) and the pad left over for
    snapshots (the full-size decode), if asked.
    """
    head = f"[{video}]"
    if frame_rate > MAX_FRAME_RATE:
        head += f"fps={_fps(MAX_FRAME_RATE)},"
    # Largest first: each scaler's output also feeds the next smaller scaler.
    order = sorted(encoded, key=lambda item: (item[1].width * item[1].height, item[0]))[::-1]
    graph = [head + ("split=2[c][snap]" if snapshots else "null[c]")]
    source = "c"
    for n, (i, plan) in enumerate(order):
        # Lanczos: a chain of bicubic steps loses ~0.002 SSIM at 360p against one bicubic step
        # from the full decode; lanczos steps measured at least as good and still cheaper.
        chain = f"[{source}]scale={plan.width}:{plan.height}:flags=lanczos,setsar=1"
        if n == len(order) - 1:
            graph.append(f"{chain}[v{i}]")
        else:
            source = f"c{i}"
            graph.append(f"{chain},split=2[v{i}][{source}]")
    if not order:
        graph[0] = head + "null[snap]"
    return graph, "snap" if snapshots else None


def _keyframe_clock(gop_seconds: float, first_keyframe: float | None) -> str:
    """FFmpeg's -force_key_frames expression: every gop_seconds, or 0, first, then every gop."""
    if first_keyframe is None:
        return f"expr:gte(t,n_forced*{_fps(gop_seconds)})"
    first, gop = _fps(first_keyframe), _fps(gop_seconds)
    return f"expr:gte(t,if(eq(n_forced,0),0,{first}+(n_forced-1)*{gop}))"


def _video_codec_args(
    plan: RenditionPlan, level: str, preset: str, gop: int, keyframes: str, x264: str
) -> list[str]:
    args = [
        "-c:v",
        "libx264",
        "-preset",
        preset,
        "-profile:v",
        "high",
        "-level:v",
        level,
        "-pix_fmt",
        "yuv420p",
        "-b:v",
        str(plan.video_bitrate),
        "-maxrate:v",
        str(plan.max_rate),
        "-bufsize:v",
        str(plan.buffer_size),
        # Key frames on a clock (works for variable frame rates too), none from scene cuts,
        # so every rendition cuts its HLS segments at the same instants.
        "-force_key_frames:v",
        keyframes,
        "-g:v",
        str(gop),
        "-keyint_min:v",
        str(gop),
        "-sc_threshold:v",
        "0",
    ]
    return args + (["-x264-params:v", x264] if x264 else [])


def build_transcode(
    source: str | os.PathLike[str],
    plans: Sequence[RenditionPlan],
    out_dir: str | os.PathLike[str],
    *,
    has_audio: bool,
    frame_rate: float,
    demuxer: str | None = None,
    video_stream: int | None = None,
    audio_stream: int | None = None,
    preset: str = "veryfast",
    threads: int = 0,
    x264_params: str = "",
    hls: bool = True,
    hls_segment_type: str = "fmp4",
    hls_time: int = HLS_SEGMENT_SECONDS,
    hls_playlist_type: str = "vod",
    gop_seconds: float = GOP_SECONDS,
    first_keyframe: float | None = None,
    passthrough: Passthrough | None = None,
    snapshots: SnapshotRequest | None = None,
    storyboard: StoryboardRequest | None = None,
    audio_only: AudioRequest | None = None,
    audio_copy: int | None = None,
    overlay: overlays.OverlayPlan | None = None,
    loglevel: str = "warning",
) -> TranscodeCommand:
    """One FFmpeg run that writes every planned rendition (MP4, and HLS when asked).

    passthrough names the (top) plan that remuxes the source's video instead of encoding it;
    snapshots adds JPEG outputs taken from the same decode. first_keyframe puts the second key
    frame that many seconds in (then one every gop_seconds): with hls_time no longer than it,
    the first HLS segment closes early.
    """
    if not plans:
        raise ValueError("no renditions to build")
    if hls_playlist_type not in ("vod", "event"):
        raise ValueError(f"unknown HLS playlist type {hls_playlist_type!r}")
    if hls_segment_type not in ("fmp4", "mpegts"):
        raise ValueError(f"unknown HLS segment type {hls_segment_type!r}")
    if passthrough is not None and passthrough.name not in {p.name for p in plans}:
        raise ValueError(f"passthrough names no planned rendition: {passthrough.name!r}")
    out = Path(out_dir)
    rate = frame_rate if 0 < frame_rate <= MAX_FRAME_RATE else 0.0
    out_rate = rate or (MAX_FRAME_RATE if frame_rate > MAX_FRAME_RATE else 30.0)
    gop = max(1, round(out_rate * gop_seconds))
    keyframes = _keyframe_clock(gop_seconds, first_keyframe)

    # Exact stream indexes from the probe: "0:v" alone could pick a cover-art picture.
    video = f"0:{video_stream}" if video_stream is not None else "0:v:0"
    audio = f"0:{audio_stream}" if audio_stream is not None else "0:a:0?"
    copied = passthrough.name if passthrough is not None else None
    encoded = [(i, p) for i, p in enumerate(plans) if p.name != copied]
    graph: list[str] = []
    snap = None
    board = None
    if encoded or snapshots is not None or storyboard is not None:
        # One decode (autorotated before the graph's input) for every encoder and snapshot.
        branch = snapshots is not None or storyboard is not None
        graph, snap_pad = _scale_chain(video, encoded, frame_rate, branch)
        if storyboard is not None and snap_pad is not None:
            board = storyboard_outputs(snap_pad, storyboard, share=snapshots is not None)
            graph, snap_pad = graph + board.graph, board.rest
        if snapshots is not None and snap_pad is not None:
            snap = snapshot_outputs(
                snap_pad,
                snapshots.out_dir,
                snapshots.times_ms,
                width=snapshots.width,
                height=snapshots.height,
            )
            graph += snap.graph

    argv = [*common_args(loglevel=loglevel), *input_args(source, demuxer=demuxer)]
    if overlay is not None:
        # Watermark and text on the decode, before the split: every output shows them.
        graph = overlays.apply(graph, video, overlay)
        argv += overlays.input_args(overlay)
    if graph:
        argv += ["-filter_complex", ";".join(graph)]
    if threads:
        argv += ["-filter_complex_threads", str(threads)]

    outputs: list[RenditionOutput] = []
    directories = [os.fspath(out)]
    hls_root = out / "hls"
    for i, plan in enumerate(plans):
        copy = passthrough if plan.name == copied else None
        level = copy.level if copy is not None else h264_level(plan.width, plan.height, out_rate)
        # hevc/av1 variants: their encoder, level and CODECS come from transcode.codecs.
        alt = video_codecs.encoding(
            plan, frame_rate=out_rate, gop=gop, keyframes=keyframes, has_audio=has_audio
        )
        level = alt.level if alt is not None else level
        mp4_path = out / f"{plan.name}.mp4"
        argv += ["-map", video if copy is not None else f"[v{i}]"]
        if has_audio:
            # One audio stream; without an index, "?" tolerates a file that has none after all.
            argv += ["-map", audio]
        if copy is not None:
            argv += ["-c:v", "copy"]
        else:
            x264 = _video_codec_args(plan, level, preset, gop, keyframes, x264_params)
            argv += alt.args if alt is not None else x264
            if threads:
                argv += ["-threads:v", str(threads)]
        audio_bitrate = plan.audio_bitrate
        if has_audio and audio_copy is not None:
            # The source's audio in every rendition (passthrough.audio_copy decided it fits).
            argv += ["-c:a", "copy"]
            audio_bitrate = audio_copy
        elif has_audio and copy is not None and copy.copy_audio:
            argv += ["-c:a", "copy"]
            audio_bitrate = copy.audio_bitrate or plan.audio_bitrate
        elif has_audio:
            argv += ["-c:a", "aac", "-b:a", str(plan.audio_bitrate), "-ac", "2", "-ar", "48000"]
        else:
            argv += ["-an"]
        argv += ["-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1"]

        hls_dir = hls_playlist = None
        slaves = [f"[f=mp4:movflags=+faststart:onfail=abort]{_tee_path(mp4_path)}"]
        if hls:
            variant_dir = hls_root / plan.name
            hls_dir, hls_playlist = os.fspath(variant_dir), os.fspath(variant_dir / "index.m3u8")
            directories.append(hls_dir)
            ext = "m4s" if hls_segment_type == "fmp4" else "ts"
            opts = [
                "f=hls",
                "onfail=abort",
                f"hls_time={hls_time}",
                # "event": the playlist grows while FFmpeg runs (progressive publishing).
                f"hls_playlist_type={hls_playlist_type}",
                "hls_flags=independent_segments",
                f"hls_segment_type={hls_segment_type}",
                f"hls_segment_filename={_tee_path(variant_dir / f'seg_%05d.{ext}')}",
            ]
            if hls_segment_type == "fmp4":
                opts.append("hls_fmp4_init_filename=init.mp4")
            slaves.append(f"[{':'.join(opts)}]{_tee_path(variant_dir / 'index.m3u8')}")
        argv += ["-f", "tee", "|".join(slaves)]

        codecs = alt.codecs if alt is not None else codecs_string(level, has_audio=has_audio)
        if copy is not None:
            codecs = f"{copy.codecs_video},mp4a.40.2" if has_audio else copy.codecs_video
        outputs.append(
            RenditionOutput(
                name=plan.name,
                width=plan.width,
                height=plan.height,
                video_bitrate=copy.video_bitrate if copy is not None else plan.video_bitrate,
                max_rate=max(plan.max_rate, copy.video_bitrate) if copy else plan.max_rate,
                audio_bitrate=audio_bitrate if has_audio else 0,
                level=level,
                codecs=codecs,
                frame_rate=out_rate,
                mp4_path=os.fspath(mp4_path),
                hls_dir=hls_dir,
                hls_playlist=hls_playlist,
                passthrough=copy is not None,
            )
        )
    if snap is not None:
        argv += snap.args
    if board is not None:
        argv += board.args
        directories.append(board.out_dir)
    sound = None
    if audio_only is not None and has_audio:
        sound_args, sound = audio_output_args(audio, audio_only, hls_root if hls else None)
        argv += sound_args
        directories += [audio_only.out_dir] + ([sound.hls_dir] if sound.hls_dir else [])
    master = os.fspath(hls_root / "master.m3u8") if hls else None
    if hls:
        directories.insert(1, os.fspath(hls_root))
    if snapshots is not None:
        directories.append(os.fspath(snapshots.out_dir))
    return TranscodeCommand(
        argv=argv,
        outputs=outputs,
        directories=directories,
        master_path=master,
        snapshots=snap,
        storyboard=board,
        audio=sound,
    )
