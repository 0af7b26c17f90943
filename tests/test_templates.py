"""Transcode templates end to end: real API, a real worker and FFmpeg, on local disk and OSS.

Templates are created, listed, replaced and deleted per app; template= on init (auto=1), tickets,
transcode and retranscode makes the template's renditions (HEVC and AV1 included, checked with
ffprobe and the master's CODECS); several templates on one transcode make several videos.
Clips stay tiny (2 s, 320x240): x265 and SVT-AV1 are slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests import media
from tests.support.api import Api
from tests.support.db import sql
from tests.support.media_flow import error_of as error
from tests.support.media_flow import oss_stack as run_oss_stack
from tests.support.media_flow import upload_answer as upload
from tests.support.tus import Tus, get_ticket
from tests.support.workers import Stack

LADDER = "240p,360p"


def tiny(directory: Path, name: str = "tiny-320x240.mp4", freq: int = 440) -> Path:
    """2 s of 320x240 with audio (another freq: other bytes, so no instant upload)."""
    return media._cached(
        directory,
        name,
        lambda p: media._ffmpeg(
            [
                *media._video_src("320x240"),
                *media._audio_src(freq),
                "-t",
                "2",
                *media._X264_FAST,
                *media._AAC,
                "-shortest",
                p,
            ]
        ),
    )


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return media.shared_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def stack(test_env, tmp_path_factory):
    stack = Stack(
        test_env, tmp_path_factory.mktemp("templates"), "templates", VASSET_LADDER=LADDER
    ).start()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def fleet(stack):
    with stack.fleet("templates-fleet") as fleet:
        fleet.start(1)
        yield fleet


@pytest.fixture
def api(stack, fleet) -> Api:
    return stack.api()


@pytest.fixture(scope="module")
def other(stack) -> Api:
    """A second app of the same deployment."""
    creds = json.loads(stack.cli("apps", "create", "other", "--json"))
    assert stack.server is not None
    return Api(stack.server.url, creds["app_key"], creds["app_secret"])


# ---- helpers


def save(api: Api, name: str, **options) -> dict:
    answer = api.call("POST", "/video/templates", {"name": name, **options})
    assert answer.status_code == 200, answer.text
    return answer.json()


def finished(api: Api, vid: int, timeout: float = 120) -> dict:
    """The status once the transcode has ended (the whole ladder, not an early partial one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = api.call("GET", "/video/status", {"vid": vid}).json()
        if now["status"] == "transcode_failed":
            raise AssertionError(f"video {vid} failed: {now}")
        if now["status"] == "playable" and now.get("ladder") == "complete":
            return now
        time.sleep(0.1)
    raise AssertionError(f"video {vid} not transcoded after {timeout}s: {now}")


def tus_upload(stack: Stack, api: Api, path: Path, **ticket) -> int:
    """Upload a file in one tus request under a fresh auto=1 ticket; its vid."""
    data = path.read_bytes()
    assert stack.server is not None
    tus = Tus(stack.server.port, get_ticket(api, auto=1, **ticket))
    created = tus.create(len(data), body=data)
    assert created.status == 201, str(created)
    return tus.info(created.header("Location") or "")["vid"]


def job_params(env, vid: int) -> dict:
    rows = sql(env, "SELECT params FROM transcode_job WHERE video_id = :v ORDER BY id", v=vid)
    return json.loads(rows[-1][0] or "{}")


def mp4s(api: Api, vid: int) -> dict[str, dict]:
    """definition -> play URL entry of every MP4 rendition."""
    answer = api.call("GET", "/video/playurl", {"vid": vid, "format": "mp4"})
    assert answer.status_code == 200, answer.text
    return {u["definition"]: u for u in answer.json()["play_urls"]}


def master(api: Api, vid: int) -> tuple[str, str]:
    """The HLS master's URL and text."""
    answer = api.call("GET", "/video/playurl", {"vid": vid, "format": "hls"})
    url = answer.json()["play_urls"][0]["url"]
    text = httpx.get(url)
    assert text.status_code == 200
    return url, text.text


def probe(url: str, tmp: Path) -> dict:
    """ffprobe of a downloaded rendition: its video stream."""
    got = httpx.get(url)
    assert got.status_code == 200
    path = tmp / f"r{time.monotonic_ns()}.mp4"
    path.write_bytes(got.content)
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    streams = json.loads(out.stdout)["streams"]
    return next(s for s in streams if s["codec_type"] == "video")


def variant_codecs(master_text: str) -> dict[str, str]:
    """variant URI -> its CODECS attribute."""
    lines = master_text.splitlines()
    out = {}
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            out[lines[i + 1]] = line.split('CODECS="')[1].split('"')[0]
    return out


def plays_hls(url: str, master_text: str, variant: str) -> None:
    """Every object of one variant (init, segments) is served."""
    playlist = httpx.get(urljoin(url, variant))
    assert playlist.status_code == 200, playlist.text
    uris = [x for x in playlist.text.splitlines() if x and not x.startswith("#")]
    uris += [x.split('URI="')[1].split('"')[0] for x in playlist.text.splitlines() if 'URI="' in x]
    assert len(uris) >= 2
    for uri in uris:
        assert httpx.get(urljoin(urljoin(url, variant), uri)).status_code == 200


def video_count(env) -> int:
    return int(sql(env, "SELECT COUNT(*) FROM video")[0][0])


# ---- templates themselves


def test_templates_are_saved_listed_replaced_and_deleted_per_app(api, other):
    made = save(api, "ad-hevc", definitions="240p", codec="hevc")
    assert made["name"] == "ad-hevc"
    assert made["options"] == {"definitions": "240p", "codec": "hevc"}
    replaced = save(api, "ad-hevc", definitions="360p,240p", codec="av1", storyboard=0)
    assert replaced["options"] == {"definitions": "240p,360p", "codec": "av1", "storyboard": False}
    assert replaced["create_time"] == made["create_time"]
    save(api, "plain")
    listed = api.call("GET", "/video/templates").json()["templates"]
    assert [t["name"] for t in listed] == ["ad-hevc", "plain"]
    assert listed[0]["options"] == replaced["options"] and listed[1]["options"] == {}

    # another app sees none of them and can neither use nor delete them
    assert other.call("GET", "/video/templates").json() == {"templates": []}
    error(other.call("POST", "/video/templates/delete", {"name": "plain"}), 400, "UnknownTemplate")
    error(
        other.call("POST", "/video/transcode", {"vid": 1, "template": "plain"}),
        400,
        "UnknownTemplate",
    )

    deleted = api.call("POST", "/video/templates/delete", {"name": "plain"})
    assert deleted.json() == {"name": "plain", "deleted": True}
    error(api.call("POST", "/video/templates/delete", {"name": "plain"}), 400, "UnknownTemplate")
    assert [t["name"] for t in api.call("GET", "/video/templates").json()["templates"]] == [
        "ad-hevc"
    ]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"name": "bad name"}, "name"),
        ({"name": "-x"}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"name": "a,b"}, "name"),
        ({"name": "ok", "codec": "vp9"}, "codec"),
        ({"name": "ok", "definitions": "999p"}, "definitions"),
        ({"name": "ok", "definitions": "1080p"}, "definitions"),  # not in this ladder
        ({"name": "ok", "storyboard": "2"}, "storyboard"),
        ({"name": "ok", "wm_opacity": "0.5"}, "wm_opacity"),  # needs watermark=
    ],
)
def test_bad_templates_are_refused_and_nothing_is_stored(api, params, parameter):
    body = error(api.call("POST", "/video/templates", params), 400, "InvalidParameter")
    assert body.get("parameter") == parameter, body
    names = [t["name"] for t in api.call("GET", "/video/templates").json()["templates"]]
    assert params["name"] not in names


def test_a_template_naming_another_apps_watermark_is_refused(api, other):
    answer = api.call("POST", "/video/templates", {"name": "wm", "watermark": 987654})
    error(answer, 404, "AssetNotFound")


def test_unknown_template_is_400_and_nothing_is_half_written(api, stack, clips):
    data = tiny(clips).read_bytes()
    before = video_count(stack.env)
    answer = api.init("x.mp4", data, 100 * 1024, auto=1, template="nope")
    error(answer, 400, "UnknownTemplate")
    body = error(api.init("x.mp4", data, 100 * 1024, template="ad-hevc"), 400, "InvalidParameter")
    assert body["parameter"] == "template"  # without auto=1 it would never apply
    error(
        api.call("POST", "/video/upload/ticket", {"auto": 1, "template": "nope"}),
        400,
        "UnknownTemplate",
    )
    assert video_count(stack.env) == before


# ---- template= on the calls, and HEVC / AV1 renditions


def test_init_with_template_makes_its_hevc_renditions(api, stack, clips, tmp_path):
    save(api, "small-hevc", definitions="240p", codec="hevc")
    done = upload(api, tiny(clips), auto=1, template="small-hevc")
    vid = done["vid"]
    finished(api, vid)
    assert job_params(stack.env, vid) == {
        "definitions": "240p",
        "codec": "hevc",
        "template": "small-hevc",
    }
    # the options rode with the video until its completion queued the job, then were used up
    kept = sql(stack.env, "SELECT COUNT(*) FROM video_transcode_options WHERE video_id = :v", v=vid)
    assert kept[0][0] == 0
    urls = mp4s(api, vid)
    assert set(urls) == {"240p", "240p-hevc"}  # H.264 stays for every player
    assert probe(urls["240p"]["url"], tmp_path)["codec_name"] == "h264"
    hevc = probe(urls["240p-hevc"]["url"], tmp_path)
    assert (hevc["codec_name"], hevc["codec_tag_string"]) == ("hevc", "hvc1")
    assert (hevc["width"], hevc["height"]) == (320, 240)
    url, text = master(api, vid)
    codecs = variant_codecs(text)
    assert codecs["240p-hevc/index.m3u8"] == "hvc1.1.6.L60.90,mp4a.40.2"
    assert codecs["240p/index.m3u8"].startswith("avc1.")
    plays_hls(url, text, "240p-hevc/index.m3u8")

    # the same bytes again: an instant upload, whose automatic transcode uses the template too
    again = upload(api, tiny(clips), auto=1, template="small-hevc")
    assert again.get("instant") is True
    finished(api, again["vid"])
    assert set(mp4s(api, again["vid"])) == {"240p", "240p-hevc"}


def test_transcode_with_codec_av1_overrides_the_template(api, stack, clips, tmp_path):
    save(api, "small-hevc", definitions="240p", codec="hevc")
    vid = upload(api, tiny(clips, "tiny-av1.mp4", 550))["vid"]
    queued = api.call(
        "POST", "/video/transcode", {"vid": vid, "template": "small-hevc", "codec": "av1"}
    )
    assert queued.json() == {"vid": vid, "status": "transcode_queued"}
    finished(api, vid)
    assert job_params(stack.env, vid)["codec"] == "av1"
    urls = mp4s(api, vid)
    assert set(urls) == {"240p", "240p-av1"}
    av1 = probe(urls["240p-av1"]["url"], tmp_path)
    assert (av1["codec_name"], av1["width"], av1["height"]) == ("av1", 320, 240)
    url, text = master(api, vid)
    assert variant_codecs(text)["240p-av1/index.m3u8"] == "av01.0.00M.08,mp4a.40.2"
    plays_hls(url, text, "240p-av1/index.m3u8")

    # retranscode with another template: its options replace the renditions atomically
    save(api, "h264-only", definitions="240p")
    r = api.call("POST", "/video/retranscode", {"vid": vid, "template": "h264-only"})
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 120
    while set(mp4s(api, vid)) != {"240p"}:
        assert time.monotonic() < deadline, mp4s(api, vid)
        time.sleep(0.2)
    finished(api, vid)
    error(
        api.call("POST", "/video/retranscode", {"vid": vid, "template": "a,b"}),
        400,
        "InvalidParameter",
    )


def test_ticket_with_template_transcodes_its_uploads(api, stack, clips):
    save(api, "t240", definitions="240p")
    vid = tus_upload(stack, api, tiny(clips, "tiny-ticket.mp4", 660), template="t240")
    finished(api, vid)
    assert job_params(stack.env, vid) == {"definitions": "240p", "template": "t240"}
    assert set(mp4s(api, vid)) == {"240p"}


def test_a_template_without_hls_makes_mp4_only(api, stack, clips):
    made = save(api, "mp4-only", definitions="240p", hls=0)
    assert made["options"] == {"definitions": "240p", "hls": False}
    vid = upload(api, tiny(clips, "tiny-mp4.mp4", 880), auto=1, template="mp4-only")["vid"]
    finished(api, vid)
    assert set(mp4s(api, vid)) == {"240p"}
    error(api.call("GET", "/video/playurl", {"vid": vid, "format": "hls"}), 409, "VideoNotPlayable")
    rows = sql(
        stack.env, "SELECT COUNT(*) FROM video WHERE parent_id = :v AND format = 'hls'", v=vid
    )
    assert rows[0][0] == 0


def test_several_templates_make_several_videos(api, stack, clips):
    save(api, "low", definitions="240p")
    save(api, "high", definitions="360p")
    vid = upload(api, tiny(clips, "tiny-fan.mp4", 770))["vid"]
    queued = api.call("POST", "/video/transcode", {"vid": vid, "template": "low,high"}).json()
    assert queued["vid"] == vid and queued["status"] == "transcode_queued"
    outputs = queued["outputs"]
    assert [o["template"] for o in outputs] == ["low", "high"]
    assert outputs[0]["vid"] == vid and outputs[1]["vid"] != vid
    second = outputs[1]["vid"]
    for v in (vid, second):
        finished(api, v)
    assert set(mp4s(api, vid)) == {"240p"}
    assert set(mp4s(api, second)) == {"360p"}  # the source is smaller: its own size
    # the new video shares the verified source bytes, like an instant upload
    first_info = api.call("GET", "/video/mediainfo", {"vid": vid}).json()
    second_info = api.call("GET", "/video/mediainfo", {"vid": second}).json()
    assert (second_info["md5"], second_info["file_size"]) == (
        first_info["md5"],
        first_info["file_size"],
    )
    # deleting the first never takes the second's source away
    assert api.call("POST", "/video/delete", {"vid": vid}).status_code == 200
    r = api.call("POST", "/video/retranscode", {"vid": second})
    assert r.status_code == 200, r.text
    finished(api, second)
    # an unknown name among several queues nothing
    before = video_count(stack.env)
    answer = api.call("POST", "/video/transcode", {"vid": second, "template": "low,nope"})
    error(answer, 400, "UnknownTemplate")
    assert video_count(stack.env) == before


def test_several_templates_on_init_and_tickets_make_several_videos(api, stack, clips):
    save(api, "low", definitions="240p")
    save(api, "high", definitions="360p")
    done = upload(api, tiny(clips, "tiny-fan-init.mp4", 660), auto=1, template="low,high")
    outputs = done["outputs"]  # created when the upload completed, listed in its answer
    assert [o["template"] for o in outputs] == ["low", "high"] and outputs[0]["vid"] == done["vid"]
    for output, definition in zip(outputs, ("240p", "360p"), strict=True):
        finished(api, output["vid"])
        assert set(mp4s(api, output["vid"])) == {definition}
    # a ticket: its uploads make both outputs too (tus answers no body: the list shows them)
    before = video_count(stack.env)
    vid = tus_upload(stack, api, tiny(clips, "tiny-fan-ticket.mp4", 550), template="low,high")
    assert video_count(stack.env) == before + 2
    assert job_params(stack.env, vid)["template"] == "low"
    # an unknown name among several refuses the init: nothing is stored
    bad = api.init("x.mp4", b"x" * 1024, 1024, auto=1, template="low,nope")
    error(bad, 400, "UnknownTemplate")
    assert video_count(stack.env) == before + 2


# ---- on the OSS-protocol test server


@pytest.fixture
def oss_stack(test_env, tmp_path, oss_server):
    yield from run_oss_stack(
        test_env,
        tmp_path / "oss",
        f"tploss{os.getpid()}",
        oss_server.endpoint,
        VASSET_LADDER=LADDER,
    )


def test_templates_and_hevc_on_oss(oss_stack, oss_server, clips, tmp_path):
    api = oss_stack.api()
    save(api, "small-hevc", definitions="240p", codec="hevc")
    with oss_stack.fleet("oss-templates") as fleet:
        fleet.start(1)
        vid = upload(api, tiny(clips), auto=1, template="small-hevc")["vid"]
        finished(api, vid)
    urls = mp4s(api, vid)
    assert set(urls) == {"240p", "240p-hevc"}
    assert urls["240p-hevc"]["url"].startswith(oss_server.endpoint)  # presigned OSS
    hevc = probe(urls["240p-hevc"]["url"], tmp_path)
    assert (hevc["codec_name"], hevc["codec_tag_string"]) == ("hevc", "hvc1")
    url, text = master(api, vid)
    assert variant_codecs(text)["240p-hevc/index.m3u8"] == "hvc1.1.6.L60.90,mp4a.40.2"
    plays_hls(url, text, "240p-hevc/index.m3u8")
    stored = set(oss_server.object_keys())
    assert any(k.endswith("/240p-hevc.mp4") and f"media/{vid}/" in k for k in stored)
