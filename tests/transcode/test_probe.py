"""probe() on every generated clip kind, good and bad."""

from __future__ import annotations

import pytest

from tests import media
from vasset.transcode.probe import (
    CorruptMedia,
    MediaError,
    NotAVideo,
    ProbeFailed,
    UnsupportedMedia,
    ffprobe_json,
    probe,
)


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    return media.shared_dir(tmp_path_factory)


def test_landscape(clips):
    info = probe(media.landscape(clips))
    assert info.demuxer.startswith("mov,")
    assert info.format == "MPEG-4"
    assert (info.width, info.height, info.rotation) == (320, 180, 0)
    assert info.display_size == (320, 180)
    assert 2900 <= info.duration_ms <= 3100
    assert info.video_codec == "h264" and info.audio_codec == "aac"
    assert info.has_video and info.has_audio
    assert info.frame_rate == 25.0 and not info.variable_frame_rate
    assert info.bitrate > 0 and info.video_bitrate and info.audio_bitrate
    assert info.file_size == media.landscape(clips).stat().st_size
    assert info.sample_aspect == 1.0
    assert (info.video_stream, info.audio_stream) == (0, 1)


def test_portrait_rotated(clips):
    info = probe(media.portrait_rotated(clips))
    # Stored size is kept raw; rotation is recorded separately; display swaps.
    assert (info.width, info.height, info.rotation) == (320, 180, 90)
    assert (info.display_width, info.display_height) == (180, 320)


def test_odd_size(clips):
    info = probe(media.odd_size(clips))
    assert (info.width, info.height) == (321, 241)


def test_no_audio(clips):
    info = probe(media.no_audio(clips))
    assert info.has_video and not info.has_audio
    assert info.audio_codec is None and info.audio_bitrate is None


def test_variable_frame_rate(clips):
    info = probe(media.variable_frame_rate(clips))
    assert info.variable_frame_rate
    assert 10 < info.frame_rate < 30


@pytest.mark.parametrize(
    ("clip", "error", "words"),
    [
        (media.audio_only, NotAVideo, "audio only"),
        (media.audio_with_cover, NotAVideo, "audio only"),
        (media.image, NotAVideo, "image"),
        (media.text_file, UnsupportedMedia, "not a media file"),
        (media.hls_disguised, UnsupportedMedia, "hls"),
        (media.missing_moov, CorruptMedia, "MPEG-4"),
        (media.truncated, CorruptMedia, "truncated"),
    ],
)
def test_bad_inputs_are_classified(clips, clip, error, words):
    path = clip(clips)
    with pytest.raises(error) as info:
        probe(path)
    exc = info.value
    assert isinstance(exc, MediaError)
    assert exc.code == error.__name__
    assert exc.permanent is True
    assert words in exc.message
    # Server paths never leak into client-visible messages.
    assert str(clips) not in exc.message


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(UnsupportedMedia):
        probe(empty)
    with pytest.raises(ProbeFailed) as info:
        probe(tmp_path / "nope.mp4")
    assert info.value.permanent is False and info.value.code == "ProbeFailed"


def test_unknown_binary_is_unsupported(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(UnsupportedMedia):
        probe(junk)


def test_corrupt_video_stream_fails_decode_check(clips, tmp_path):
    # Keep the container intact but overwrite the media data: demuxing works, decoding does not.
    data = bytearray(media.no_audio(clips).read_bytes())
    start = data.index(b"mdat") + 4
    data[start : start + 60_000] = b"\x00" * 60_000
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bytes(data))
    with pytest.raises(CorruptMedia):
        probe(broken)


def test_hls_playlist_is_never_followed(clips):
    # The disguised playlist is refused before anything reads the file it points at.
    with pytest.raises(UnsupportedMedia, match="hls"):
        ffprobe_json(media.hls_disguised(clips))


def test_concat_script_refused(clips, tmp_path):
    # FFmpeg's concat demuxer would read whatever files the script names.
    script = tmp_path / "list.mp4"
    script.write_text(f"ffconcat version 1.0\nfile '{media.landscape(clips)}'\n")
    with pytest.raises(UnsupportedMedia, match="concat"):
        probe(script)


def test_passthrough_facts(clips):
    from tests.transcode.test_ladder_e2e import fitting_clip, starved_clip

    dense = probe(fitting_clip(clips))
    # A key frame every 25 frames at 25 fps: the longest gap is one second.
    assert dense.keyframe_interval == 1.0
    assert (dense.pix_fmt, dense.video_profile, dense.video_level) == ("yuv420p", "High", 30)
    assert dense.audio_profile == "LC"
    assert 400_000 < dense.video_bitrate_estimate < 600_000
    # One key frame in 4 s: the gap after it, up to the last packet, counts.
    assert probe(starved_clip(clips)).keyframe_interval >= 3.9
    assert probe(media.odd_size(clips)).pix_fmt == "yuv444p"
