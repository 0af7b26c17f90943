"""Typed errors: one class per API error code, unknown codes fall back by HTTP status.

Three kinds of class: one per code the server sends (``SERVER_CODES``, the table of
docs/API.md), status categories without a code of their own (``BadRequest``, ``Conflict``,
``ServerError``, ...) that catch a whole status and stand in for codes this SDK does not know,
and client-side errors (``CLIENT_CODES``) that the SDK raises itself and no server sends.
An answer without a code gets ``HTTP{status}`` as its code, as in the JS SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

_BY_CODE: dict[str, type[VassetError]] = {}


class VassetError(Exception):
    """Base of every error the SDK raises; `code` is the API's stable identifier."""

    default_code: ClassVar[str] = ""
    default_status: ClassVar[int] = 0

    def __init__(
        self,
        message: str = "",
        *,
        code: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status: int = self.default_status if status is None else status
        self.code: str = code or self.default_code or f"HTTP{self.status}"
        self.message = message or self.code
        self.request_id = request_id
        self.body: dict[str, Any] = dict(body or {})
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(self.message)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "default_code" in cls.__dict__:
            _BY_CODE.setdefault(cls.default_code, cls)

    def __str__(self) -> str:
        extra = [f"HTTP {self.status}"] if self.status else []
        if self.request_id:
            extra.append(f"request {self.request_id}")
        tail = f" ({', '.join(extra)})" if extra else ""
        return f"{self.code}: {self.message}{tail}"

    def to_dict(self) -> dict[str, Any]:
        """The error as a JSON-friendly dict (the API's error body shape)."""
        return {
            **self.body,
            "code": self.code,
            "message": self.message,
            "status": self.status,
            "request_id": self.request_id,
        }


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


# HTTP 4xx
class ClientError(VassetError):
    """An HTTP 4xx answer."""

    default_status = 400


class BadRequest(ClientError):
    """400: malformed or inconsistent input."""

    default_status = 400


class MissingParameter(BadRequest):
    """400 MissingParameter."""

    default_code = "MissingParameter"


class InvalidParameter(BadRequest):
    """400 InvalidParameter."""

    default_code = "InvalidParameter"


class InvalidDigest(BadRequest):
    """400 InvalidDigest: a part's MD5 differs from its hash parameter."""

    default_code = "InvalidDigest"


class InvalidPartSize(BadRequest):
    """400 InvalidPartSize (body.min_part_size says the smallest acceptable psize)."""

    default_code = "InvalidPartSize"


class InvalidContentRange(BadRequest):
    """400 InvalidContentRange."""

    default_code = "InvalidContentRange"


class IncompleteBody(BadRequest):
    """400 IncompleteBody: the body ended early; nothing was stored."""

    default_code = "IncompleteBody"


class InvalidSource(BadRequest):
    """400 InvalidSource: a transcode import's src is not allowed."""

    default_code = "InvalidSource"


class Unauthorized(ClientError):
    """401: authentication failed."""

    default_status = 401


class InvalidAppKey(Unauthorized):
    """401 InvalidAppKey: unknown or disabled app_key."""

    default_code = "InvalidAppKey"


class SignatureDoesNotMatch(Unauthorized):
    """401 SignatureDoesNotMatch: wrong secret or a tampered request."""

    default_code = "SignatureDoesNotMatch"


class SignatureExpired(Unauthorized):
    """401 SignatureExpired: the timestamp is too far from the server clock."""

    default_code = "SignatureExpired"

    @property
    def server_time(self) -> int | None:
        """The server's clock, when the answer says it."""
        value = self.body.get("server_time")
        return int(value) if isinstance(value, int | float) else None


class SignatureNonceUsed(Unauthorized):
    """401 SignatureNonceUsed: the random was already used."""

    default_code = "SignatureNonceUsed"


class InvalidUploadToken(Unauthorized):
    """401 InvalidUploadToken."""

    default_code = "InvalidUploadToken"


class InvalidUrlSignature(Unauthorized):
    """401 InvalidUrlSignature: a signed URL is wrong or expired."""

    default_code = "InvalidUrlSignature"


class InvalidConsoleKey(Unauthorized):
    """401 InvalidConsoleKey: a console call without a valid console session."""

    default_code = "InvalidConsoleKey"


class Forbidden(ClientError):
    """403: not used by the API; storage answers it for expired or wrong presigned URLs."""

    default_status = 403


class NotFound(ClientError):
    """404: unknown, expired, owned by another app, or an unknown route (code NotFound)."""

    default_code = "NotFound"
    default_status = 404


class VideoNotFound(NotFound):
    """404 VideoNotFound."""

    default_code = "VideoNotFound"


class UploadNotFound(NotFound):
    """404 UploadNotFound: unknown or expired upload."""

    default_code = "UploadNotFound"


class ObjectNotFound(NotFound):
    """404 ObjectNotFound: a signed URL names an object that is gone."""

    default_code = "ObjectNotFound"


class MethodNotAllowed(ClientError):
    """405 MethodNotAllowed."""

    default_code = "MethodNotAllowed"
    default_status = 405


class Conflict(ClientError):
    """409: a state conflict."""

    default_status = 409


class UploadCompleted(Conflict):
    """409 UploadCompleted: the upload is already complete (body.vid names the video)."""

    default_code = "UploadCompleted"

    @property
    def vid(self) -> int | None:
        """The completed upload's video, when the answer says it."""
        value = self.body.get("vid")
        return int(value) if isinstance(value, int) else None


class UploadAborted(Conflict):
    """409 UploadAborted: the upload was aborted or failed."""

    default_code = "UploadAborted"


class VideoNotPlayable(Conflict):
    """409 VideoNotPlayable."""

    default_code = "VideoNotPlayable"


class InvalidState(Conflict):
    """409 InvalidState."""

    default_code = "InvalidState"


class OffsetMismatch(Conflict):
    """409 OffsetMismatch (body.offset is the server's offset)."""

    default_code = "OffsetMismatch"

    @property
    def offset(self) -> int | None:
        """The upload's current offset."""
        value = self.body.get("offset")
        return int(value) if isinstance(value, int) else None


class UploadInProgress(Conflict):
    """409 UploadInProgress: another request is completing the upload (retried)."""

    default_code = "UploadInProgress"


class EntityTooLarge(ClientError):
    """413 EntityTooLarge."""

    default_code = "EntityTooLarge"
    default_status = 413


class InvalidRange(ClientError):
    """416 InvalidRange: a Range outside the object."""

    default_code = "InvalidRange"
    default_status = 416


class VerificationFailed(ClientError):
    """422: completion-time verification failed; the video is upload_failed."""

    default_status = 422


class HashMismatch(VerificationFailed):
    """422 HashMismatch."""

    default_code = "HashMismatch"


class SizeMismatch(VerificationFailed):
    """422 SizeMismatch."""

    default_code = "SizeMismatch"


class _RetryAfter:
    """Mixin: the Retry-After header in seconds."""

    headers: dict[str, str]

    @property
    def retry_after(self) -> float | None:
        """Seconds the server asked to wait, if it said."""
        return parse_retry_after(self.headers.get("retry-after"))


class Throttled(_RetryAfter, ClientError):
    """429 Throttled (retry_after from Retry-After)."""

    default_code = "Throttled"
    default_status = 429


# HTTP 5xx
class ServerError(VassetError):
    """An HTTP 5xx answer."""

    default_status = 500


class InternalError(ServerError):
    """500 InternalError: a server bug; request_id finds it in the server's logs."""

    default_code = "InternalError"


class ServiceUnavailable(_RetryAfter, ServerError):
    """503 ServiceUnavailable: a dependency is down (retry_after from Retry-After)."""

    default_code = "ServiceUnavailable"
    default_status = 503


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
    {"NetworkError", "WaitTimeout", "VideoFailed", "UploadFailed", "TranscodeFailed", "FileChanged"}
)
#: Codes of server answers that have a class of their own (docs/API.md's error table).
SERVER_CODES: frozenset[str] = frozenset(_BY_CODE) - CLIENT_CODES


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime
    from time import time

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError):
        return None


def error_class(code: str | None, status: int) -> type[VassetError]:
    """The class for an API error code, else the class for its HTTP status."""
    cls = _BY_CODE.get(code or "")
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
