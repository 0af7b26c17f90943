"""Image assets: PUT /video/assets (validated PNGs), list, delete, ownership; the PNG validator;
and the overlay parameters of the transcode calls (refused at the edge, parameter named)."""

from __future__ import annotations

import base64
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from tests.support.api import Api
from vasset import errors
from vasset.assets.png import validate_png


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def make_png(
    width: int = 8,
    height: int = 4,
    *,
    colour: int = 6,
    depth: int = 8,
    raw: bytes | None = None,
    extra: bytes = b"",
    palette: bool = False,
) -> bytes:
    """A PNG written by hand (RGBA unless told), every row filter 0."""
    samples = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    row = bytes(1 + (width * samples * depth + 7) // 8)
    data = raw if raw is not None else row * height
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    plte = chunk(b"PLTE", b"\x00\x00\x00\xff\xff\xff") if palette else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + plte
        + chunk(b"IDAT", zlib.compress(data))
        + chunk(b"IEND", b"")
        + extra
    )


def ffmpeg_png(path: Path, size: str = "64x32", pix_fmt: str = "rgba") -> bytes:
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"color=c=red@0.5:s={size}",
            "-frames:v",
            "1",
            "-pix_fmt",
            pix_fmt,
            str(path),
        ],
        check=True,
    )
    return path.read_bytes()


# ---- the validator, purely


def test_hand_written_and_ffmpeg_pngs_are_valid(tmp_path):
    info = validate_png(make_png(8, 4), 4096)
    assert (info.width, info.height, info.colour_type, info.interlaced) == (8, 4, 6, False)
    assert validate_png(make_png(3, 3, colour=3, depth=1, palette=True), 4096).bit_depth == 1
    for fmt in ("rgba", "rgb24", "gray", "pal8", "ya8", "rgb48be"):
        data = ffmpeg_png(tmp_path / f"{fmt}.png", pix_fmt=fmt)
        assert validate_png(data, 4096).width == 64, fmt


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "signature"),
        (b"GIF89a" + bytes(40), "signature"),
        (b"\xff\xd8\xff\xe0" + bytes(100), "signature"),
        (make_png()[:-20], "truncated"),
        (make_png()[:40], "truncated"),
        (make_png()[:8] + chunk(b"IEND", b""), "IHDR"),
        (make_png().replace(b"IHDR", b"IHDr"), "CRC"),
        (make_png(extra=b"junk"), "follow IEND"),
        (make_png(raw=bytes(33 * 3)), "truncated"),  # one row short
        (make_png(raw=bytes(33 * 5)), "longer"),
        (make_png(raw=b"\x07" + bytes(32) + bytes(33 * 3)), "filter"),
        (make_png(colour=3), "PLTE"),
        (make_png(colour=2, depth=4), "bit depth"),
        (make_png(0, 4), "zero"),
    ],
)
def test_what_is_not_a_complete_png_is_refused(data, why):
    with pytest.raises(errors.InvalidImage) as caught:
        validate_png(data, 4096)
    assert why in caught.value.message


def test_corrupt_deflate_data_is_refused():
    good = make_png(16, 16)
    start = good.index(b"IDAT") + 4
    body = bytearray(good[start : start + 20])
    body[3] ^= 0xFF
    ihdr_end = 8 + 25
    broken = good[:ihdr_end] + chunk(b"IDAT", bytes(body)) + chunk(b"IEND", b"")
    with pytest.raises(errors.InvalidImage):
        validate_png(broken, 4096)


def test_dimensions_above_the_limit_are_refused_before_any_decoding():
    # IHDR claims 5000 x 10; the image data is never inflated (it would be 20 MB).
    with pytest.raises(errors.InvalidImage) as caught:
        validate_png(make_png(5000, 10, raw=b""), 4096)
    assert "5000x10" in caught.value.message


# ---- the API


def put(api: Api, data: bytes, kind: str | None = "watermark"):
    params = {"kind": kind} if kind is not None else {}
    return api.call("PUT", "/video/assets", params, content=data)


def test_put_list_delete_and_isolation(api, other_api, tmp_path):
    data = ffmpeg_png(tmp_path / "wm.png", "120x40")
    r = put(api, data)
    assert r.status_code == 200, r.text
    asset = r.json()
    assert asset["kind"] == "watermark" and (asset["width"], asset["height"]) == (120, 40)
    assert asset["size"] == len(data) and asset["asset_id"] > 0
    listed = api.call("GET", "/video/assets").json()["assets"]
    assert asset in listed
    assert asset["asset_id"] not in [
        a["asset_id"] for a in other_api.call("GET", "/video/assets").json()["assets"]
    ]
    # another app cannot delete it, nor name it in a transcode
    r = other_api.call("POST", "/video/assets/delete", {"asset_id": asset["asset_id"]})
    assert r.status_code == 404 and r.json()["code"] == errors.AssetNotFound.code
    r = other_api.call("POST", "/video/transcode", {"vid": 1, "watermark": asset["asset_id"]})
    assert r.status_code == 404 and r.json()["code"] == errors.AssetNotFound.code
    r = api.call("POST", "/video/assets/delete", {"asset_id": asset["asset_id"]})
    assert r.status_code == 200 and r.json() == {"asset_id": asset["asset_id"], "deleted": True}
    assert asset not in api.call("GET", "/video/assets").json()["assets"]
    r = api.call("POST", "/video/assets/delete", {"asset_id": asset["asset_id"]})
    assert r.status_code == 404 and r.json()["code"] == errors.AssetNotFound.code


def test_stored_bytes_live_under_the_apps_asset_prefix_and_go_with_delete(api, test_env, tmp_path):
    storage = Path(test_env["VASSET_STORAGE_URL"].removeprefix("file://"))
    data = ffmpeg_png(tmp_path / "wm.png")
    asset = put(api, data).json()
    stored = [p for p in storage.rglob("assets/*/*.png") if p.read_bytes() == data]
    assert len(stored) == 1
    api.call("POST", "/video/assets/delete", {"asset_id": asset["asset_id"]})
    assert not stored[0].exists()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"", 400, errors.InvalidImage.code),
        (b"not a png at all", 400, errors.InvalidImage.code),
        (make_png()[:-30], 400, errors.InvalidImage.code),
        (make_png(5000, 8, raw=b""), 400, errors.InvalidImage.code),
        (b"\x89PNG\r\n\x1a\n" + bytes(3 * 1024 * 1024), 413, errors.EntityTooLarge.code),
    ],
)
def test_bad_bodies_are_refused_and_nothing_is_kept(api, test_env, body, status, code):
    before = api.call("GET", "/video/assets").json()["assets"]
    r = put(api, body)
    assert r.status_code == status and r.json()["code"] == code, r.text
    assert api.call("GET", "/video/assets").json()["assets"] == before


def test_kind_is_required_and_checked(api):
    r = put(api, make_png(), kind=None)
    assert r.status_code == 400 and r.json()["code"] == errors.MissingParameter.code
    r = put(api, make_png(), kind="logo")
    assert r.status_code == 400 and r.json()["code"] == errors.InvalidParameter.code


def test_put_needs_a_signature(api):
    r = api.http.put(f"{api.base_url}/video/assets?kind=watermark", content=make_png())
    assert r.status_code == 400 or r.status_code == 401


# ---- overlay parameters of the transcode calls


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"text": "***not base64***"}, "text"),
        ({"text": base64.b64encode(b"\xff\xfe").decode()}, "text"),
        ({"text": b64("x" * 201)}, "text"),
        ({"text": b64("a\nb\nc\nd\ne")}, "text"),
        ({"text": b64("bell\x07")}, "text"),
        ({"text": b64("   ")}, "text"),
        ({"text": b64("hi"), "text_position": "middle"}, "text_position"),
        ({"text": b64("hi"), "text_colour": "#12345"}, "text_colour"),
        ({"text": b64("hi"), "text_colour": "white:fontfile=/etc/passwd"}, "text_colour"),
        ({"text": b64("hi"), "text_size": "0.9"}, "text_size"),
        ({"text": b64("hi"), "text_start": "-5"}, "text_start"),
        ({"text": b64("hi"), "text_start": "3000", "text_end": "1000"}, "text_end"),
        ({"text_size": "0.1"}, "text_size"),
        ({"watermark": "1", "wm_position": "somewhere"}, "wm_position"),
        ({"watermark": "1", "wm_opacity": "1.5"}, "wm_opacity"),
        ({"watermark": "1", "wm_opacity": "0"}, "wm_opacity"),
        ({"watermark": "1", "wm_scale": "2"}, "wm_scale"),
        ({"watermark": "1", "wm_margin": "-0.1"}, "wm_margin"),
        ({"watermark": "x"}, "watermark"),
        ({"wm_scale": "0.2"}, "wm_scale"),
    ],
)
@pytest.mark.parametrize("path", ["/video/transcode", "/video/retranscode"])
def test_bad_overlay_parameters_are_invalid_and_named(api, path, params, parameter):
    r = api.call("POST", path, {"vid": 1, **params})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == errors.InvalidParameter.code
    assert r.json().get("parameter") == parameter, r.json()


def test_an_unknown_watermark_is_asset_not_found(api):
    for path in ("/video/transcode", "/video/retranscode"):
        r = api.call("POST", path, {"vid": 1, "watermark": 987654321})
        assert r.status_code == 404 and r.json()["code"] == errors.AssetNotFound.code


# ---- the Python SDK's calls


def test_python_sdk_asset_calls_and_overlay_params(server, app_creds, tmp_path):
    from vasset_client import Client
    from vasset_client import errors as sdk_errors
    from vasset_client.client import overlay_params

    with Client(server.url, app_creds["app_key"], app_creds["app_secret"]) as client:
        asset = client.put_asset(ffmpeg_png(tmp_path / "wm.png", "30x10"))
        assert (asset["width"], asset["height"]) == (30, 10)
        assert asset["asset_id"] in [a["asset_id"] for a in client.assets()]
        with pytest.raises(sdk_errors.InvalidImage):
            client.put_asset(b"not a png")
        params = overlay_params(asset["asset_id"], "你好: 'x'", wm_opacity=0.5, text_end=900)
        assert base64.b64decode(params["text"]).decode() == "你好: 'x'"
        assert params["watermark"] == asset["asset_id"] and params["wm_opacity"] == 0.5
        with pytest.raises(sdk_errors.VideoNotFound):
            client.transcode(987654321, overlays=params)  # the overlays passed the edge checks
        assert client.delete_asset(asset["asset_id"])["deleted"] is True
        with pytest.raises(sdk_errors.AssetNotFound):
            client.transcode(987654321, overlays=params)


def test_a_decompression_bomb_is_refused_without_inflating_it_all():
    # IHDR says 16x16 RGBA (1 KiB of pixels); the data inflates to 64 MiB of zeros.
    bomb = make_png(16, 16, raw=bytes(64 * 1024 * 1024))
    assert len(bomb) < 100 * 1024
    with pytest.raises(errors.InvalidImage) as caught:
        validate_png(bomb, 4096)
    assert "longer" in caught.value.message
