"""Typed errors: one class per API error code, unknown codes fall back by HTTP status.

Three kinds of class: one per code the server sends (``SERVER_CODES``, the table of
docs/API.md), status categories without a code of their own (``BadRequest``, ``Conflict``,
``ServerError``, ...) that catch a whole status and stand in for codes this SDK does not know,
and client-side errors (``CLIENT_CODES``) that the SDK raises itself and no server sends.
An answer without a code gets ``HTTP{status}`` as its code, as in the JS SDK.

Import every class from here: the base lives in ``error_base``, the server codes and status
categories in ``api_errors``, the client-side errors and the mapping of answers in this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vasset_client.api_errors import (
    AssetNotFound,
    AudioNotFound,
    BadRequest,
    CaptionNotFound,
    ChecksumMismatch,
    ClientError,
    ClipRangeEmpty,
    ClipRangeOutOfBounds,
    ClipRangeReversed,
    ClipRangesMalformed,
    ClipRangesOverlap,
    ClipTooManyRanges,
    Conflict,
    DeliveryNotFound,
    EndpointNotFound,
    EntityTooLarge,
    Forbidden,
    HashMismatch,
    IncompleteBody,
    InconsistentLength,
    InternalError,
    InvalidAppKey,
    InvalidCaptions,
    InvalidConsoleKey,
    InvalidContentRange,
    InvalidDigest,
    InvalidHeader,
    InvalidImage,
    InvalidMetricsToken,
    InvalidParameter,
    InvalidPartSize,
    InvalidRange,
    InvalidSource,
    InvalidState,
    InvalidTicket,
    InvalidUploadToken,
    InvalidUrlSignature,
    InvalidWebhookUrl,
    MetadataTooLarge,
    MethodNotAllowed,
    MissingParameter,
    NotFound,
    ObjectNotFound,
    OffsetMismatch,
    ServerError,
    ServiceUnavailable,
    SignatureDoesNotMatch,
    SignatureExpired,
    SignatureNonceUsed,
    SizeMismatch,
    StoryboardNotFound,
    Throttled,
    ThumbnailUnavailable,
    TicketExpired,
    TicketUsedUp,
    TusVersionUnsupported,
    Unauthorized,
    UnknownTemplate,
    UnsupportedChecksum,
    UnsupportedMediaType,
    UploadAborted,
    UploadCompleted,
    UploadGone,
    UploadInProgress,
    UploadLocked,
    UploadNotFound,
    VerificationFailed,
    VideoNotFound,
    VideoNotPlayable,
)
from vasset_client.error_base import BY_CODE, VassetError, parse_retry_after

__all__ = [
    "CLIENT_CODES",
    "SERVER_CODES",
    "AssetNotFound",
    "AudioNotFound",
    "BadRequest",
    "CaptionNotFound",
    "ChecksumMismatch",
    "ClientError",
    "ClipRangeEmpty",
    "ClipRangeOutOfBounds",
    "ClipRangeReversed",
    "ClipRangesMalformed",
    "ClipRangesOverlap",
    "ClipTooManyRanges",
    "Conflict",
    "DeliveryNotFound",
    "EndpointNotFound",
    "EntityTooLarge",
    "FileChanged",
    "Forbidden",
    "HashMismatch",
    "IncompleteBody",
    "InconsistentLength",
    "InternalError",
    "InvalidAppKey",
    "InvalidCaptions",
    "InvalidConsoleKey",
    "InvalidContentRange",
    "InvalidDigest",
    "InvalidHeader",
    "InvalidImage",
    "InvalidMetricsToken",
    "InvalidParameter",
    "InvalidPartSize",
    "InvalidRange",
    "InvalidSource",
    "InvalidState",
    "InvalidTicket",
    "InvalidUploadToken",
    "InvalidUrlSignature",
    "InvalidWebhookUrl",
    "MetadataTooLarge",
    "MethodNotAllowed",
    "MissingParameter",
    "NetworkError",
    "NotFound",
    "ObjectNotFound",
    "OffsetMismatch",
    "ServerError",
    "ServiceUnavailable",
    "SignatureDoesNotMatch",
    "SignatureExpired",
    "SignatureNonceUsed",
    "SizeMismatch",
    "StoryboardNotFound",
    "Throttled",
    "ThumbnailUnavailable",
    "TicketExpired",
    "TicketUsedUp",
    "TranscodeFailed",
    "TusVersionUnsupported",
    "Unauthorized",
    "UnknownTemplate",
    "UnsupportedChecksum",
    "UnsupportedMediaType",
    "UploadAborted",
    "UploadCompleted",
    "UploadFailed",
    "UploadGone",
    "UploadInProgress",
    "UploadLocked",
    "UploadNotFound",
    "VassetError",
    "VerificationFailed",
    "VideoFailed",
    "VideoNotFound",
    "VideoNotPlayable",
    "WaitTimeout",
    "error_class",
    "from_response",
    "parse_retry_after",
]


# client-side failures (no HTTP answer, or a condition the SDK detected)
class NetworkError(VassetError):
    """The request failed without an HTTP answer, after every retry."""

    default_code = "NetworkError"


class WaitTimeout(VassetError, TimeoutError):
    """wait() gave up before the video reached the wanted state."""

    default_code = "WaitTimeout"


class VideoFailed(VassetError):
    """wait() saw the video fail; failure_code is the server's reason (API.md, job failures)."""

    default_code = "VideoFailed"

    @property
    def failure_code(self) -> str | None:
        """The code that starts the status answer's ``error``, e.g. NotAVideo."""
        error = self.body.get("error")
        if not isinstance(error, str) or not error:
            return None
        return error.split(":", 1)[0].strip() or None


class UploadFailed(VideoFailed):
    """The video is upload_failed."""

    default_code = "UploadFailed"


class TranscodeFailed(VideoFailed):
    """The video is transcode_failed."""

    default_code = "TranscodeFailed"


class FileChanged(VassetError):
    """The local file changed while it was being uploaded."""

    default_code = "FileChanged"


_BY_STATUS: dict[int, type[VassetError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: EntityTooLarge,
    416: InvalidRange,
    422: VerificationFailed,
    429: Throttled,
    503: ServiceUnavailable,
}

#: Codes the SDK raises itself; no server answer carries them.
CLIENT_CODES: frozenset[str] = frozenset(
    cls.default_code
    for cls in (NetworkError, WaitTimeout, VideoFailed, UploadFailed, TranscodeFailed, FileChanged)
)
#: Codes of server answers that have a class of their own (docs/API.md's error table).
SERVER_CODES: frozenset[str] = frozenset(BY_CODE) - CLIENT_CODES


def error_class(code: str | None, status: int) -> type[VassetError]:
    """The class for an API error code, else the class for its HTTP status."""
    cls = BY_CODE.get(code or "")
    if cls is not None and (issubclass(cls, ClientError | ServerError)):
        return cls
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if 400 <= status < 500:
        return ClientError
    return ServerError


def from_response(
    status: int, body: Mapping[str, Any] | None, headers: Mapping[str, str]
) -> VassetError:
    """The typed error for an HTTP error answer."""
    body = dict(body or {})
    code = body.get("code") if isinstance(body.get("code"), str) else None
    cls = error_class(code, status)
    request_id = body.get("request_id") or headers.get("x-request-id")
    message = body.get("message") if isinstance(body.get("message"), str) else ""
    return cls(
        message or f"HTTP {status}",
        code=code or cls.default_code,
        status=status,
        request_id=request_id,
        body=body,
        headers={k.lower(): v for k, v in headers.items()},
    )
