"""Captions: WebVTT / SRT parsing (pure), the API's refusals, and end to end through a real
transcode on local disk and on the OSS test server (master SUBTITLES group, playurl, delete)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests import media
from tests.support.api import Api
from tests.support.db import sql
from tests.support.media_flow import oss_stack as run_oss_stack
from tests.support.workers import Stack, long_clip, medium_clip
from vasset import errors
from vasset.captions import formats
from vasset.captions.hls import subtitle_playlist, with_subtitles
from vasset.captions.repository import CaptionRow

VTT = (
    "WEBVTT - English\n\nSTYLE\n::cue { color: yellow }\n\nNOTE a comment\n\n"
    "intro\n00:00.000 --> 00:01.500 line:90%\nHello, <b>world</b>\n\n"
    "00:01.500 --> 00:02.900\nSecond line\n"
)
SRT = (
    "1\r\n00:00:00,000 --> 00:00:01,200\r\n你好，世界\r\n\r\n"
    "2\r\n00:00:01,200 --> 00:00:02,800 X1:10 X2:20\r\n<i>second</i>\r\nand more\r\n"
)


# ---- pure: formats and playlists


def test_vtt_is_kept_as_sent_and_its_cues_counted():
    parsed = formats.parse_captions(VTT.encode(), 100)
    assert (parsed.source_format, parsed.cues) == ("vtt", 2)
    assert parsed.vtt == VTT
    # a BOM and CRLF line ends are normalised
    crlf = formats.parse_captions(b"\xef\xbb\xbf" + VTT.replace("\n", "\r\n").encode(), 100)
    assert crlf.vtt == VTT


def test_srt_becomes_webvtt():
    parsed = formats.parse_captions(SRT.encode(), 100)
    assert (parsed.source_format, parsed.cues) == ("srt", 2)
    assert parsed.vtt == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.200\n你好，世界\n\n"
        "00:00:01.200 --> 00:00:02.800\n<i>second</i>\nand more\n"
    )
    assert formats.parse_captions(parsed.vtt.encode(), 100).cues == 2


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"WEBVTT\n\n00:00.000 -> 00:01.000\nx\n", "line 3"),
        (b"WEBVTT\n\n00:02.000 --> 00:01.000\nx\n", "ends before"),
        (b"WEBVTT\n\n00:00.000 --> 00:61.000\nx\n", "bad cue timing"),
        (b"WEBVTT\n\nan id\nno timing here\n", "bad cue timing"),
        (b"WEBVTT\n\n00:00.000 --> 00:01.000\nx --> y\n", "'-->' inside"),
        (b"WEBVTT\n\nNOTE only a note\n", "no cues"),
        (b"WEBVTTX\n\n00:00.000 --> 00:01.000\nx\n", "WEBVTT line"),
        (b"1\n00:00:01,000 -> 00:00:02,000\nx\n", "line 2: bad SRT timing"),
        (b"1\n00:00:03,000 --> 00:00:02,000\nx\n", "ends before"),
        (b"hello there\n", "bad SRT timing"),
        (b"", "empty"),
        (b"WEBVTT\n\n00:00.000 --> 00:01.000\n\xff\xfe\n", "UTF-8"),
        (b"WEBVTT\n\n00:00.000 --> 00:01.000\na\x00b\n", "NUL"),
    ],
)
def test_malformed_captions_are_refused_with_the_reason(body, needle):
    with pytest.raises(errors.InvalidCaptions) as caught:
        formats.parse_captions(body, 100)
    assert needle in caught.value.message


def test_cue_count_is_capped():
    body = "WEBVTT\n\n" + "".join(f"00:00.{i:03d} --> 00:01.000\nc{i}\n\n" for i in range(11))
    with pytest.raises(errors.InvalidCaptions, match="more than 10 cues"):
        formats.parse_captions(body.encode(), 10)


@pytest.mark.parametrize(
    ("given", "canonical"),
    [("en", "en"), ("EN-us", "en-US"), ("zh-hans", "zh-Hans"), ("es-419", "es-419")],
)
def test_language_tags_take_their_conventional_case(given, canonical):
    assert formats.canonical_lang(given) == canonical


@pytest.mark.parametrize(
    "bad", ["e", "english", "en_US", "en-", "1a", "en-toolongsubtag", "x" * 40]
)
def test_bad_language_tags_are_refused(bad):
    with pytest.raises(errors.InvalidParameter):
        formats.canonical_lang(bad)


def test_labels_default_from_the_language_and_refuse_quotes():
    assert formats.label_for("en-GB", None) == "English"
    assert formats.label_for("zh-Hans", "") == "简体中文"
    assert formats.label_for("xx", None) == "xx"
    assert formats.label_for("en", "English (CC)") == "English (CC)"
    for bad in ['a"b', "a\nb", " edge", "x" * 129]:
        with pytest.raises(errors.InvalidParameter):
            formats.label_for("en", bad)


def test_master_gets_a_subtitles_group_named_by_every_variant():
    master = (
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=426x240,CODECS="avc1.64001e,mp4a.40.2"\n'
        "240p/index.m3u8\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=2,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2"\n'
        "360p/index.m3u8\n"
    )
    rows = [CaptionRow("en", "English", "captions/1/a.vtt", 1, 1, 0)]
    out = with_subtitles(master, rows).splitlines()
    assert out[3] == (
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",LANGUAGE="en",NAME="English",'
        'DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,URI="subs/en.m3u8"'
    )
    stream_infs = [line for line in out if line.startswith("#EXT-X-STREAM-INF")]
    assert len(stream_infs) == 2 and all(s.endswith(',SUBTITLES="subs"') for s in stream_infs)
    assert with_subtitles(master, []) == master
    playlist = subtitle_playlist("https://x/y.vtt", 2500)
    assert (
        "#EXT-X-TARGETDURATION:3\n" in playlist and "#EXTINF:2.500,\nhttps://x/y.vtt\n" in playlist
    )
    assert playlist.rstrip().endswith("#EXT-X-ENDLIST")


# ---- the API's refusals (a video that is still uploading can have captions)


def put(api: Api, vid: int, lang: str, body: bytes, **params):
    return api.call("PUT", "/video/captions", {"vid": vid, "lang": lang, **params}, content=body)


def listing(api: Api, vid: int) -> list[dict]:
    r = api.call("GET", "/video/captions", {"vid": vid})
    assert r.status_code == 200, r.text
    return r.json()["captions"]


@pytest.fixture
def uploading_vid(api: Api) -> int:
    r = api.init("clip.mp4", b"x" * 200_000, 100 * 1024)
    assert r.status_code == 200, r.text
    return r.json()["vid"]


def test_bad_input_gets_a_clear_code_and_stores_nothing(api, other_api, uploading_vid, server):
    vid = uploading_vid
    cases = [
        (put(api, vid, "en", b"WEBVTT\n\n00:00.000 --> nope\nx\n"), 400, "InvalidCaptions"),
        (put(api, vid, "en", b"1\n00:00:01 --> 00:00:02\nx\n"), 400, "InvalidCaptions"),
        (put(api, vid, "en", "WEBVTT\n\n".encode("utf-16")), 400, "InvalidCaptions"),
        (put(api, vid, "en", b"WEBVTT\n\n" + b"x" * (1024 * 1024)), 413, "EntityTooLarge"),
        (put(api, vid, "en-", VTT.encode()), 400, "InvalidParameter"),
        (put(api, vid, "english", VTT.encode()), 400, "InvalidParameter"),
        (put(api, vid, "en", VTT.encode(), label='say "hi"'), 400, "InvalidParameter"),
        (put(api, 987654321, "en", VTT.encode()), 404, "VideoNotFound"),
        (put(other_api, vid, "en", VTT.encode()), 404, "VideoNotFound"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert cases[3][0].json()["max_size"] == 1024 * 1024
    assert "line 3" in cases[0][0].json()["message"]
    assert listing(api, vid) == []
    assert other_api.call("GET", "/video/captions", {"vid": vid}).status_code == 404
    r = api.call("POST", "/video/captions/delete", {"vid": vid, "lang": "en"})
    assert (r.status_code, r.json()["code"]) == (404, "CaptionNotFound")
    # the refused bodies left no object behind
    store = Path(server.env["VASSET_STORAGE_URL"][len("file://") :]) / "objects" / "captions"
    assert not (store / str(vid)).exists() or not any((store / str(vid)).iterdir())


def test_a_chunked_body_past_the_limit_is_refused_without_storing(api, uploading_vid, server):
    # no Content-Length: the limit is enforced while the body streams in
    def chunks():
        yield b"WEBVTT\n\n00:00.000 --> 00:01.000\n"
        for _ in range(40):
            yield b"y" * 32 * 1024

    r = api.http.put(
        api.url("PUT", "/video/captions", {"vid": uploading_vid, "lang": "de"}), content=chunks()
    )
    assert (r.status_code, r.json()["code"]) == (413, "EntityTooLarge")
    assert listing(api, uploading_vid) == []
    store = Path(server.env["VASSET_STORAGE_URL"][len("file://") :]) / "objects" / "captions"
    assert not (store / str(uploading_vid)).exists()


def test_a_refused_body_keeps_the_connection_usable(api, uploading_vid):
    # an unsigned PUT is refused before its body is read; the next call on the same client works
    r = api.http.put(
        f"{api.base_url}/video/captions?vid={uploading_vid}&lang=en", content=VTT.encode()
    )
    assert r.status_code == 400 and r.json()["code"] == "MissingParameter"
    assert put(api, uploading_vid, "en", VTT.encode()).status_code == 200
    assert [c["lang"] for c in listing(api, uploading_vid)] == ["en"]


def test_the_janitor_removes_captions_a_deletion_left_behind(api, uploading_vid, server, test_env):
    import asyncio

    from vasset.context import build_context, close_context
    from vasset.janitor import sweep
    from vasset.settings import load_settings

    vid = uploading_vid
    assert put(api, vid, "it", VTT.encode()).status_code == 200
    store = Path(server.env["VASSET_STORAGE_URL"][len("file://") :]) / "objects" / "captions"
    assert len(list((store / str(vid)).iterdir())) == 1
    # a deletion whose byte removal failed: the row stays, pointing at a deleted video
    sql(test_env, "UPDATE video SET deleted_at = 1 WHERE id = :v", v=vid)

    async def sweep_once() -> dict:
        ctx = build_context(load_settings(test_env))
        try:
            return await sweep(ctx)
        finally:
            await close_context(ctx)

    assert asyncio.run(sweep_once())["captions_removed"] >= 1
    assert not (store / str(vid)).exists() or not any((store / str(vid)).iterdir())
    assert sql(test_env, "SELECT COUNT(*) FROM video_caption WHERE video_id = :v", v=vid)[0][0] == 0


# ---- end to end: upload -> transcode -> captions -> HLS and playurl, local disk and OSS


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return media.shared_dir(tmp_path_factory)


def wait_playable(api: Api, vid: int, timeout: float = 90) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = api.call("GET", "/video/status", {"vid": vid}).json()
        if st["status"] == "playable" and st["ladder"] == "complete":
            return
        assert st["status"] != "transcode_failed", st
        time.sleep(0.2)
    raise AssertionError(f"video {vid} not playable: {st}")


def check_hls(master_url: str, expected: dict[str, str]) -> None:
    """The master names a SUBTITLES group of expected {lang: label}; each loads to its VTT."""
    master = httpx.get(master_url)
    assert master.status_code == 200, master.text
    lines = master.text.splitlines()
    media_lines = [x for x in lines if x.startswith("#EXT-X-MEDIA:TYPE=SUBTITLES")]
    found = {}
    for line in media_lines:
        attrs = dict(re.findall(r'([A-Z-]+)="([^"]*)"', line))
        assert attrs["GROUP-ID"] == "subs"
        found[attrs["LANGUAGE"]] = attrs["NAME"]
        playlist = httpx.get(urljoin(master_url, attrs["URI"]))
        assert playlist.status_code == 200, playlist.text
        assert "mpegurl" in playlist.headers["content-type"]
        assert "#EXT-X-ENDLIST" in playlist.text
        assert re.search(r"#EXTINF:\d+\.\d{3},", playlist.text)
        uris = [x for x in playlist.text.splitlines() if x and not x.startswith("#")]
        assert len(uris) == 1
        vtt = httpx.get(urljoin(master_url, uris[0]))
        assert vtt.status_code == 200 and vtt.headers["content-type"].startswith("text/vtt")
        assert formats.parse_captions(vtt.content, 100).cues >= 1
    assert found == expected
    variants = [x for x in lines if x.startswith("#EXT-X-STREAM-INF")]
    assert variants
    if expected:
        assert all('SUBTITLES="subs"' in v for v in variants)
    else:
        assert not any("SUBTITLES" in v for v in variants)


def captions_walk(api: Api, vid: int, stored_keys) -> None:
    """PUT VTT and SRT, see them in captions, playurl and HLS; replace; delete; retranscode."""
    r = put(api, vid, "en", VTT.encode())
    assert r.status_code == 200, r.text
    assert r.json() == {
        "vid": vid,
        "lang": "en",
        "label": "English",
        "source_format": "vtt",
        "cues": 2,
        "size": len(VTT.encode()),
    }
    r = put(api, vid, "zh-hans", SRT.encode(), label="中文（简体）")
    assert r.status_code == 200, r.text
    assert (r.json()["lang"], r.json()["source_format"]) == ("zh-Hans", "srt")
    tracks = listing(api, vid)
    assert [(c["lang"], c["label"]) for c in tracks] == [
        ("en", "English"),
        ("zh-Hans", "中文（简体）"),
    ]
    assert httpx.get(tracks[0]["url"]).text == VTT
    assert httpx.get(tracks[1]["url"]).text.startswith(
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.200\n你好"
    )
    pu = api.call("GET", "/video/playurl", {"vid": vid}).json()
    assert [(c["lang"], c["label"]) for c in pu["captions"]] == [
        ("en", "English"),
        ("zh-Hans", "中文（简体）"),
    ]
    assert httpx.get(pu["captions"][1]["url"]).status_code == 200
    mp4 = api.call("GET", "/video/playurl", {"vid": vid, "format": "mp4"}).json()
    assert len(mp4["captions"]) == 2
    master_url = next(u["url"] for u in pu["play_urls"] if u["format"] == "hls")
    check_hls(master_url, {"en": "English", "zh-Hans": "中文（简体）"})

    # replacing a language swaps the file: new text served, the old object removed
    before = {k for k in stored_keys() if "captions/" in k}
    replaced = VTT.replace("Second line", "Replaced line")
    assert put(api, vid, "EN", replaced.encode(), label="English (CC)").status_code == 200
    tracks = listing(api, vid)
    assert (tracks[0]["label"], httpx.get(tracks[0]["url"]).text) == ("English (CC)", replaced)
    after = {k for k in stored_keys() if "captions/" in k}
    assert len(after) == 2 and len(after & before) == 1

    # deleting one language removes it from the list, playurl and the master
    r = api.call("POST", "/video/captions/delete", {"vid": vid, "lang": "zh-Hans"})
    assert r.json() == {"vid": vid, "lang": "zh-Hans", "deleted": True}
    assert [c["lang"] for c in listing(api, vid)] == ["en"]
    check_hls(master_url, {"en": "English (CC)"})
    assert len({k for k in stored_keys() if "captions/" in k}) == 1

    # captions survive a retranscode: the new ladder's master names them too
    assert api.call("POST", "/video/retranscode", {"vid": vid}).status_code == 200
    import time

    time.sleep(0.5)
    wait_playable(api, vid)
    pu2 = api.call("GET", "/video/playurl", {"vid": vid}).json()
    new_master = next(u["url"] for u in pu2["play_urls"] if u["format"] == "hls")
    assert [c["lang"] for c in pu2["captions"]] == ["en"]
    check_hls(new_master, {"en": "English (CC)"})

    # deleting the video removes its captions, rows and objects
    assert api.call("POST", "/video/delete", {"vid": vid}).status_code == 200
    assert not [k for k in stored_keys() if "captions/" in k]
    assert api.call("GET", "/video/captions", {"vid": vid}).status_code == 404


@pytest.fixture(scope="module")
def stack(test_env, tmp_path_factory):
    stack = Stack(
        test_env, tmp_path_factory.mktemp("captions"), "captions", VASSET_LADDER="240p,360p"
    ).start()
    yield stack
    stack.stop()


def upload_and_transcode(api: Api, clip: Path) -> int:
    data = clip.read_bytes()
    done = api.upload(clip.name, data, max(len(data), 100 * 1024), auto=1)
    assert done["status"] == "uploaded", done
    wait_playable(api, done["vid"])
    return done["vid"]


def test_captions_end_to_end_on_local_disk(stack, clips):
    api = stack.api()
    with stack.fleet("captions-fleet") as fleet:
        fleet.start(1)
        vid = upload_and_transcode(api, medium_clip(clips))
        root = stack.storage

        def stored_keys() -> list[str]:
            return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]

        captions_walk(api, vid, stored_keys)
    rows = sql(stack.env, "SELECT COUNT(*) FROM video_caption WHERE video_id = :v", v=vid)
    assert rows[0][0] == 0


def test_a_partial_master_names_the_captions_too(stack, clips):
    import time

    api = stack.api()
    # real-time reading keeps the 15 s ladder running while its first segments are playable
    with stack.fleet("captions-partial", VASSET_FFMPEG_READRATE="1") as fleet:
        fleet.start(1)
        data = long_clip(clips).read_bytes()
        done = api.upload("long.mp4", data, max(len(data), 100 * 1024), auto=1)
        vid = done["vid"]
        assert put(api, vid, "en", VTT.encode()).status_code == 200
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = api.call("GET", "/video/status", {"vid": vid}).json()
            if st["ladder"] is not None:
                break
            time.sleep(0.2)
        assert st["ladder"] == "partial", st
        pu = api.call("GET", "/video/playurl", {"vid": vid}).json()
        assert [c["lang"] for c in pu["captions"]] == ["en"]
        check_hls(
            next(u["url"] for u in pu["play_urls"] if u["format"] == "hls"), {"en": "English"}
        )
        api.call("POST", "/video/delete", {"vid": vid})


@pytest.fixture
def oss_stack(test_env, tmp_path, oss_server):
    yield from run_oss_stack(
        test_env,
        tmp_path / "oss",
        f"ossc{os.getpid()}",
        oss_server.endpoint,
        VASSET_LADDER="240p,360p",
    )


def test_captions_end_to_end_on_oss(oss_stack, oss_server, clips):
    api = oss_stack.api()
    with oss_stack.fleet("oss-captions") as fleet:
        fleet.start(1)
        vid = upload_and_transcode(api, medium_clip(clips))
        # on OSS too the WebVTT files come through the API's /play (same origin as the
        # console, CORS for other pages), read from OSS with their content type
        assert put(api, vid, "fr", VTT.encode()).status_code == 200
        url = listing(api, vid)[0]["url"]
        assert oss_stack.server is not None
        assert url.startswith(oss_stack.server.url + "/play/")
        got = httpx.get(url, headers={"Origin": "https://player.example"})
        assert got.status_code == 200 and got.text == VTT
        assert got.headers["content-type"].startswith("text/vtt")
        assert got.headers["access-control-allow-origin"] == "*"
        assert (
            api.call("POST", "/video/captions/delete", {"vid": vid, "lang": "fr"}).status_code
            == 200
        )

        def stored_keys() -> list[str]:
            return [k for k in oss_server.object_keys() if k.startswith("vasset/")]

        captions_walk(api, vid, stored_keys)
    rows = sql(oss_stack.env, "SELECT COUNT(*) FROM video_caption WHERE video_id = :v", v=vid)
    assert rows[0][0] == 0
