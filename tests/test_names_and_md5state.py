"""File name decoding and the resumable MD5."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from vasset.errors import InvalidParameter
from vasset.upload.md5state import ResumableMD5
from vasset.upload.names import decode_file_name


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_names_are_sanitized():
    assert decode_file_name(b64("../../etc/passwd")) == "passwd"
    assert decode_file_name(b64("C:\\Users\\x\\clip.mp4")) == "clip.mp4"
    assert decode_file_name(b64("a\x00b\x01.mp4")) == "ab.mp4"
    long = decode_file_name(b64("x" * 10_000 + ".mp4"))
    assert len(long) == 200 and long.endswith(".mp4")
    assert decode_file_name(b64("/")) == "untitled"


def test_urlsafe_and_unpadded_base64_are_accepted():
    raw = "视频?>.mp4".encode()
    assert decode_file_name(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == "视频?>.mp4"


@pytest.mark.parametrize("bad", ["%%%", "not base64!", base64.b64encode(b"\xff\xfe").decode(), ""])
def test_garbage_fn_is_invalid(bad):
    with pytest.raises(InvalidParameter):
        decode_file_name(bad)


def test_resumable_md5_survives_save_and_restore():
    data = os.urandom(3_000_001)
    first = ResumableMD5()
    first.update(data[:1_234_567])
    saved = first.save()
    second = ResumableMD5(saved)
    second.update(data[1_234_567:])
    assert second.hexdigest() == hashlib.md5(data).hexdigest()
    # hexdigest does not finalize the running state
    second.update(b"more")
    assert second.hexdigest() == hashlib.md5(data + b"more").hexdigest()
