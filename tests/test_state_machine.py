"""The video lifecycle state machine."""

from __future__ import annotations

import itertools

import pytest

from vasset.errors import InvalidState
from vasset.videos.state import VideoStatus, can_transition, check_transition, sources_allowed


def test_happy_path_walks_the_api_order():
    path = [
        "uploading",
        "uploaded",
        "transcode_queued",
        "transcoding",
        "transcode_succeeded",
        "playable",
    ]
    for current, target in itertools.pairwise(path):
        assert can_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("upload_failed", "uploaded"),
        ("uploading", "playable"),
        ("uploaded", "playable"),
        ("playable", "uploading"),
        ("transcode_failed", "playable"),
    ],
)
def test_forbidden_moves(current, target):
    assert not can_transition(current, target)
    with pytest.raises(InvalidState):
        check_transition(current, target)


def test_retry_and_retranscode_moves():
    assert can_transition("transcoding", "transcode_queued")
    assert can_transition("playable", "transcode_queued")
    assert can_transition("transcode_failed", "transcode_queued")
    assert "uploaded" in sources_allowed("transcode_queued")


def test_statuses_are_the_api_values():
    assert [s.value for s in VideoStatus] == [
        "uploading",
        "uploaded",
        "upload_failed",
        "transcode_queued",
        "transcoding",
        "transcode_succeeded",
        "transcode_failed",
        "playable",
    ]
