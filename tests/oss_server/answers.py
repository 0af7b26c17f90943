"""How the OSS test server answers: dates, request ids, XML documents, error documents."""

from __future__ import annotations

import base64
import email.utils
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from .body import Body
from .model import DRAIN_LIMIT, ConnectionDropped, OssError

if TYPE_CHECKING:
    from .server import Handler


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def new_request_id() -> str:
    return uuid.uuid4().hex[:24].upper()


def xml_doc(root: str, body: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}>{body}</{root}>'.encode()


def el(tag: str, value: Any) -> str:
    return f"<{tag}>{escape(str(value))}</{tag}>"


def respond(
    h: Handler,
    request_id: str,
    status: int,
    headers: dict[str, str],
    payload: bytes | Iterator[bytes] | None,
    body: Body | None,
) -> None:
    if body is not None and not body.done and not body.drain(DRAIN_LIMIT):
        h.close_connection = True
    h.send_response(status)
    h.send_header("x-oss-request-id", request_id)
    h.send_header("Server", "AliyunOSS")
    h.send_header("Date", http_date(time.time()))
    for name, value in headers.items():
        h.send_header(name, value)
    if isinstance(payload, bytes) or payload is None:
        data = payload or b""
        if "Content-Length" not in headers:
            h.send_header("Content-Length", str(len(data)))
        if h.close_connection:
            h.send_header("Connection", "close")
        h.end_headers()
        if h.command != "HEAD" and data:
            h.wfile.write(data)
        return
    if h.close_connection:
        h.send_header("Connection", "close")
    h.end_headers()
    if h.command == "HEAD":
        return
    try:
        for chunk in payload:
            h.wfile.write(chunk)
    except OSError:
        h.close_connection = True
        raise ConnectionDropped("client went away while reading") from None


def respond_error(
    h: Handler,
    request_id: str,
    err: OssError,
    host: str,
    body: Body | None,
) -> None:
    fields = el("Code", err.code) + el("Message", err.message)
    fields += el("RequestId", request_id) + el("HostId", host)
    for name, value in err.extra.items():
        fields += el(name, value)
    payload = xml_doc("Error", fields)
    headers = {"Content-Type": "application/xml"}
    if h.command == "HEAD":
        # HEAD answers carry no body: OSS puts the error document in x-oss-err instead
        headers["x-oss-err"] = base64.b64encode(payload).decode()
        headers["Content-Length"] = "0"
        payload = b""
    try:
        respond(h, request_id, err.status, headers, payload, body)
    except (ConnectionDropped, OSError):
        h.close_connection = True
