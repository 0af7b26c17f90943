"""How protocol answers look: tus and IETF headers, CORS as tusd's defaults, error bodies."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response

from vasset import errors
from vasset.http.responses import error_response, request_id_of
from vasset.upload.resumable.headers import http_date
from vasset.upload.resumable.repository import ResumableRow

TUS_VERSION = "1.0.0"
EXTENSIONS = (
    "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination,"
    "concatenation"
)
METHODS = "POST, HEAD, PATCH, OPTIONS, GET, DELETE"
PROTOCOL_HEADERS = (
    "Authorization, Origin, X-Requested-With, X-Request-ID, X-HTTP-Method-Override,"
    " Content-Type, Upload-Length, Upload-Offset, Tus-Resumable, Upload-Metadata,"
    " Upload-Defer-Length, Upload-Concat, Upload-Complete, Upload-Incomplete,"
    " Upload-Draft-Interop-Version, Upload-Checksum, Upload-Expires, Upload-Limit, Location,"
    " Tus-Version, Tus-Max-Size, Tus-Extension, Tus-Checksum-Algorithm, Vasset-Vid, Vasset-Md5,"
    " Vasset-Status"
)
PROBLEM = "https://iana.org/assignments/http-problem-types#"
#: RFC 9457 problem types of the IETF draft, by vasset code.
PROBLEM_TYPES = {
    errors.OffsetMismatch.code: "mismatching-upload-offset",
    errors.UploadCompleted.code: "completed-upload",
    errors.InconsistentLength.code: "inconsistent-upload-length",
}
_encoder = msgspec.json.Encoder()


def cors(request: Request) -> dict[str, str]:
    """CORS headers for any answer to a browser (tusd's defaults: any origin, every header)."""
    origin = request.headers.get("origin")
    if not origin:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": PROTOCOL_HEADERS,
        "Vary": "Origin",
    }


def preflight(request: Request) -> dict[str, str]:
    """The answer headers of a CORS preflight."""
    return {
        **cors(request),
        "Access-Control-Allow-Methods": METHODS,
        "Access-Control-Allow-Headers": PROTOCOL_HEADERS,
        "Access-Control-Max-Age": "86400",
    }


def base_headers(request: Request, version: int | None) -> dict[str, str]:
    """What every answer of one protocol carries."""
    headers = cors(request)
    if version is None:
        headers["Tus-Resumable"] = TUS_VERSION
    else:
        headers["Upload-Draft-Interop-Version"] = str(version)
    return headers


def complete_header(version: int, complete: bool) -> dict[str, str]:
    """Upload-Complete (v4+) or its inverse Upload-Incomplete (v3)."""
    if version <= 3:
        return {"Upload-Incomplete": "?0" if complete else "?1"}
    return {"Upload-Complete": "?1" if complete else "?0"}


def state_headers(row: ResumableRow, version: int | None) -> dict[str, str]:
    """Offset, length, expiry and the video of an upload, as HEAD and PATCH report them."""
    headers = {
        "Upload-Offset": str(row.offset),
        "Cache-Control": "no-store",
    }
    if row.length is not None:
        headers["Upload-Length"] = str(row.length)
    elif version is None:
        headers["Upload-Defer-Length"] = "1"
    if row.upload.status in ("uploading", "completing"):
        headers["Upload-Expires"] = http_date(row.upload.expires_at)
    if row.upload.video_id:
        headers["Vasset-Vid"] = str(row.upload.video_id)
    if row.upload.status == "uploaded":
        headers["Vasset-Status"] = "uploaded"
        if row.upload.client_md5:
            headers["Vasset-Md5"] = row.upload.client_md5
    if version is not None:
        headers.update(
            complete_header(
                version,
                row.upload.status == "uploaded" or (row.concat == "partial" and row.complete),
            )
        )
    elif row.metadata:
        headers["Upload-Metadata"] = row.metadata
    if version is None and row.concat == "partial":
        headers["Upload-Concat"] = "partial"
    elif version is None and row.concat == "final" and row.concat_parts:
        headers["Upload-Concat"] = "final;" + " ".join(row.concat_parts.split())
    return headers


def empty(status: int, headers: dict[str, str]) -> Response:
    """An answer without a body."""
    return Response(content=b"", status_code=status, headers=headers, media_type=None)


def failure(request: Request, exc: errors.VassetError, version: int | None) -> Response:
    """A refusal: vasset's JSON error (tus), or RFC 9457 problem details (IETF draft)."""
    headers = {**base_headers(request, version), **exc.headers()}
    if version is None:
        response = error_response(request, exc)
        response.headers.update(headers)
        return response
    body: dict[str, Any] = {
        "type": PROBLEM + PROBLEM_TYPES[exc.code] if exc.code in PROBLEM_TYPES else "about:blank",
        "title": exc.default_message if exc.code in PROBLEM_TYPES else exc.code,
        "status": exc.status,
        "detail": exc.message,
        "code": exc.code,
        "request_id": request_id_of(request),
    }
    if exc.code == errors.OffsetMismatch.code:
        body["expected-offset"] = exc.extra.get("offset")
        body["provided-offset"] = exc.extra.get("provided")
    for key, value in exc.extra.items():
        body.setdefault(key, value)
    return Response(
        content=_encoder.encode(body),
        status_code=exc.status,
        headers=headers,
        media_type="application/problem+json",
    )
