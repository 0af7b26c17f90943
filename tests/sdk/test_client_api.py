"""Every SDK call against a real server, and the typed errors it raises."""

from __future__ import annotations

import hashlib
import os
import time

import pytest
from vasset_client import Client, errors
from vasset_client.models import InitResult

from tests.sdk.conftest import make_client, skip_unless_route

KIB = 1024
PSIZE = 100 * KIB


def upload_bytes(client: Client, data: bytes, psize: int = PSIZE, **kw) -> int:
    """Upload data part by part through the SDK; returns the vid."""
    init = client.init_upload(
        "clip.mp4", len(data), psize, hash=hashlib.md5(data).hexdigest(), **kw
    )
    if init.instant:
        assert init.vid is not None
        return init.vid
    assert init.upload_id and init.part_count
    answer = None
    for i in range(init.part_count):
        answer = client.upload_part(init.upload_id, i + 1, data[i * psize : (i + 1) * psize])
    assert answer is not None and answer.completed
    return int(answer.vid or 0)


def test_limits(client):
    lim = client.limits()
    assert lim.max_part_count == 10_000 and lim.min_part_size == 100 * KIB
    assert lim.max_file_size > 0 and lim.max_part_size >= lim.min_part_size


def test_upload_calls_resume_and_video_calls(client):
    data = os.urandom(250 * KIB)
    md5 = hashlib.md5(data).hexdigest()
    init = client.init_upload("视频 a+b.mp4", len(data), PSIZE, hash=md5)
    assert isinstance(init, InitResult) and not init.instant
    assert (init.status, init.size, init.md5, init.part_size, init.part_count) == (
        "uploading",
        len(data),
        md5,
        PSIZE,
        3,
    )
    assert init.upload_id and init.upload_token and init.expires_at
    first = client.upload_part(init.upload_id, 3, data[2 * PSIZE :])
    assert (first.received, first.part_count, first.completed) == (1, 3, False)
    state = client.resume(init.upload_id)
    assert state.status == "uploading" and state.missing == [1, 2] and state.offset == 0
    # the upload token authorizes resume and parts of this upload without signing
    assert client.resume(init.upload_id, token=init.upload_token).missing == [1, 2]
    client.upload_part(init.upload_id, 1, data[:PSIZE], token=init.upload_token)
    done = client.upload_part(init.upload_id, 2, data[PSIZE : 2 * PSIZE])
    assert done.completed and done.md5 == md5 and done.size == len(data)
    vid = int(done.vid or 0)
    assert client.resume(init.upload_id).status == "uploaded"
    again = client.upload_part(init.upload_id, 1, data[:PSIZE])  # its answer was lost
    assert again.completed and again.vid == done.vid and again.md5 == md5
    with pytest.raises(errors.UploadCompleted):
        client.upload_part(init.upload_id, 1, os.urandom(PSIZE))

    st = client.status(vid)
    assert (st.vid, st.status, st.playable) == (vid, "uploaded", False)
    info = client.mediainfo(vid)
    assert (info.source_name, info.file_size, info.md5) == ("视频 a+b.mp4", len(data), md5)
    assert client.wait(vid, until="uploaded", timeout=5).status == "uploaded"
    with pytest.raises(errors.WaitTimeout):
        client.wait(vid, until="playable", timeout=0.3, interval=0.1)

    gone = client.delete(vid)
    assert gone.vid == vid and gone.deleted is True
    with pytest.raises(errors.VideoNotFound) as info_exc:
        client.status(vid)
    assert info_exc.value.body.get("status") == "not_found"


def test_whole_file_mode(client):
    data = os.urandom(300 * KIB)
    init = client.init_upload("w.mp4", len(data), PSIZE, hash=hashlib.md5(data).hexdigest())
    assert init.upload_id
    half = client.upload_range(init.upload_id, 0, data[: 150 * KIB], len(data))
    assert half.offset == PSIZE  # offset advances by whole parts
    with pytest.raises(errors.OffsetMismatch) as exc:
        client.upload_range(init.upload_id, 0, data[:PSIZE], len(data))
    assert exc.value.offset == PSIZE
    done = client.upload_range(init.upload_id, PSIZE, data[PSIZE:], len(data))
    assert done.completed and done.md5 == hashlib.md5(data).hexdigest()


def test_instant_upload_through_init(client):
    data = os.urandom(120 * KIB)
    vid = upload_bytes(client, data)
    again = client.init_upload("again.mp4", len(data), PSIZE, hash=hashlib.md5(data).hexdigest())
    assert again.instant and again.vid and again.vid != vid and again.status == "uploaded"


def test_wrong_secret_is_signature_does_not_match(server, app_creds):
    bad = make_client(server.url, {**app_creds, "app_secret": "wrong"})
    with pytest.raises(errors.SignatureDoesNotMatch) as info:
        bad.limits()
    e = info.value
    assert e.status == 401 and e.code == "SignatureDoesNotMatch" and e.request_id
    bad = make_client(server.url, {**app_creds, "app_key": "nope"})
    with pytest.raises(errors.InvalidAppKey):
        bad.limits()
    bad.close()


def test_other_apps_video_and_upload_are_not_found(client, other_client):
    data = os.urandom(110 * KIB)
    vid = upload_bytes(client, data)
    with pytest.raises(errors.VideoNotFound) as info:
        other_client.status(vid)
    assert info.value.status == 404
    with pytest.raises(errors.VideoNotFound):
        other_client.delete(vid)
    init = client.init_upload("x.mp4", len(data) + 1, PSIZE)
    assert init.upload_id
    with pytest.raises(errors.UploadNotFound):
        other_client.resume(init.upload_id)
    with pytest.raises(errors.UploadNotFound):
        client.resume("no-such-upload")
    assert client.status(vid).status == "uploaded"


def test_input_errors_are_typed(client):
    with pytest.raises(errors.InvalidPartSize) as info:
        client.init_upload("a.mp4", 1 << 20, 1000)
    assert info.value.body.get("min_part_size") == 100 * KIB
    init = client.init_upload("a.mp4", 200 * KIB, PSIZE)
    assert init.upload_id
    with pytest.raises(errors.InvalidDigest):
        client.upload_part(init.upload_id, 1, os.urandom(PSIZE), hash="0" * 32)
    with pytest.raises(errors.InvalidPartSize):
        client.upload_part(init.upload_id, 1, os.urandom(10))
    with pytest.raises(errors.InvalidParameter):
        client.status(0)


def test_hash_mismatch_marks_the_video_failed(client):
    data = os.urandom(150 * KIB)
    init = client.init_upload("bad.mp4", len(data), PSIZE, hash="0" * 32)
    assert init.upload_id
    client.upload_part(init.upload_id, 1, data[:PSIZE])
    with pytest.raises(errors.HashMismatch) as info:
        client.upload_part(init.upload_id, 2, data[PSIZE:])
    vid = info.value.body["vid"]
    with pytest.raises(errors.UploadFailed):
        client.wait(vid, until="uploaded", timeout=5)


# ---- transcode and playback (skipped while the server lacks the route)


def test_transcode_and_retranscode(client):
    skip_unless_route(client, "POST", "/video/transcode")
    vid = upload_bytes(client, os.urandom(130 * KIB))
    queued = client.transcode(vid, priority=5, definitions=["480p", "720p"])
    assert queued.vid == vid and queued.status == "transcode_queued"
    assert client.status(vid).status in ("transcode_queued", "transcoding", "transcode_failed")
    try:
        again = client.retranscode(vid)
    except errors.Conflict:
        pass  # a queued video may refuse a second transcode: typed, not a crash
    else:
        assert again.vid == vid and again.status == "transcode_queued"
    with pytest.raises(errors.VideoNotFound):
        client.transcode(2_000_000_000)


def test_transcode_from_uri(client):
    skip_unless_route(client, "POST", "/video/transcode")
    try:
        made = client.transcode_from("http://127.0.0.1:9/none.mp4", priority=1)
    except errors.ClientError as exc:
        assert exc.code not in ("NotFound", "SignatureDoesNotMatch")
    else:
        assert made.vid > 0 and made.status == "transcode_queued"


def test_playurl_of_unplayable_video(client):
    skip_unless_route(client, "GET", "/video/playurl")
    vid = upload_bytes(client, os.urandom(140 * KIB))
    with pytest.raises(errors.VideoNotPlayable) as info:
        client.playurl(vid, definition="480p", format="mp4", expires=60)
    assert info.value.status == 409
    with pytest.raises(errors.VideoNotFound):
        client.playurl(2_000_000_000)


def test_snapshot(client):
    skip_unless_route(client, "GET", "/video/snapshot")
    vid = upload_bytes(client, os.urandom(160 * KIB))
    try:
        snaps = client.snapshot(vid)
    except errors.Conflict:
        pass  # no snapshots before transcoding: a typed state conflict
    else:
        assert snaps.vid == vid and isinstance(snaps.snapshots, list)
    with pytest.raises(errors.VideoNotFound):
        client.snapshot(2_000_000_000)


def test_storyboard(client):
    skip_unless_route(client, "GET", "/video/storyboard")
    vid = upload_bytes(client, os.urandom(150 * KIB))
    with pytest.raises(errors.VideoNotPlayable):
        client.storyboard(vid)  # not transcoded: a typed state conflict
    with pytest.raises(errors.VideoNotFound):
        client.storyboard(2_000_000_000)


def test_upload_ticket_drives_a_tus_upload_and_its_errors_are_typed(client, server):
    import base64
    import http.client
    import json
    from urllib.parse import urlsplit

    ticket = client.upload_ticket(max_size=1000, uses=1, expires=60)
    assert ticket.ticket.startswith("vt_") and ticket.endpoint == "/files/"
    host = urlsplit(server.url)
    meta = ",".join(
        f"{k} {base64.b64encode(v.encode()).decode()}"
        for k, v in (("filename", "t.mp4"), ("lang", "fr"))
    )
    headers = {"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {ticket.ticket}"}
    conn = http.client.HTTPConnection(host.hostname, host.port)
    data = os.urandom(999)
    conn.request(
        "POST",
        ticket.endpoint,
        body=data,
        headers={
            **headers,
            "Upload-Length": "999",
            "Upload-Metadata": meta,
            "Content-Type": "application/offset+octet-stream",
        },
    )
    answer = conn.getresponse()
    answer.read()
    assert answer.status == 201 and answer.getheader("Upload-Offset") == "999"
    info = client.mediainfo(int(answer.getheader("Vasset-Vid") or 0))
    assert info.source_name == "t.mp4" and info.metadata == {"lang": "fr"}
    assert info.md5 == hashlib.md5(data).hexdigest()
    conn.request("POST", ticket.endpoint, headers={**headers, "Upload-Length": "5"})
    refused = conn.getresponse()
    body = refused.read()
    assert refused.status == 403
    error = errors.from_response(refused.status, json.loads(body), dict(refused.getheaders()))
    assert isinstance(error, errors.TicketUsedUp) and isinstance(error, errors.Forbidden)
    with pytest.raises(errors.InvalidParameter):
        client.upload_ticket(uses=0)


def test_ttl_on_init_and_tickets(client):
    vid = upload_bytes(client, os.urandom(150 * KIB), ttl=3600)
    deadline = client.status(vid).delete_at
    assert deadline is not None and abs(deadline - (time.time() + 3600)) < 60
    assert client.mediainfo(vid).delete_at == deadline
    assert client.status(upload_bytes(client, os.urandom(150 * KIB))).delete_at is None
    assert client.upload_ticket(ttl=60).ticket
    with pytest.raises(errors.InvalidParameter):
        client.upload_ticket(ttl=0)
    with pytest.raises(errors.InvalidParameter):
        client.init_upload("a.mp4", 1000, 1000, ttl=-1)
    with pytest.raises(errors.InvalidParameter):
        client.transcode_from("http://localhost:9/a.mp4", ttl=10**10)
