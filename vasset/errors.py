"""Every error vasset answers with: a stable code, an HTTP status and a message.

The whole tree lives here so that the API reference (docs/API.md) and this file list the
same codes. Clients branch on ``code``, never on ``message``. A class that sets ``code`` in
its own body stands for that code (one class per code); a category (``category = True``)
only groups codes by status and is never raised. ``FailureCode`` lists the codes that appear
only in the ``error`` of ``/video/status`` (a failed upload or transcode), never as HTTP errors.
tests/test_error_parity.py keeps this file, docs/API.md and both SDKs in step.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar


class VassetError(Exception):
    """Base of every error that reaches a client; raised itself, it is a 500 InternalError."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "InternalError"
    default_message: ClassVar[str] = "internal error"
    category: ClassVar[bool] = False

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        if vars(type(self)).get("category", False):
            # A category has no code of its own: raising it would answer its parent's code.
            raise TypeError(f"{type(self).__name__} is a category; raise one of its codes")
        self.message = message or self.default_message
        self.extra = extra
        self.extra_headers: dict[str, str] = {}
        super().__init__(self.message)

    def headers(self) -> dict[str, str]:
        """Extra response headers this error carries."""
        return dict(self.extra_headers)


# 400: malformed or inconsistent input
class BadRequest(VassetError):
    status = 400
    category = True


class MissingParameter(BadRequest):
    code = "MissingParameter"


class InvalidParameter(BadRequest):
    code = "InvalidParameter"


class InvalidDigest(BadRequest):
    code = "InvalidDigest"
    default_message = "the body's MD5 does not match the hash parameter"


class InvalidPartSize(BadRequest):
    code = "InvalidPartSize"


class InvalidHeader(BadRequest):
    """A protocol header (tus, IETF draft) is missing or malformed; ``header`` names it."""

    code = "InvalidHeader"


class MetadataTooLarge(BadRequest):
    code = "MetadataTooLarge"
    default_message = "Upload-Metadata is larger than the server accepts"


class UnsupportedChecksum(BadRequest):
    code = "UnsupportedChecksum"
    default_message = "the Upload-Checksum algorithm is not one of md5, sha1, sha256"


class InconsistentLength(BadRequest):
    code = "InconsistentLength"
    default_message = "the upload length differs from the one declared before"


class InvalidContentRange(BadRequest):
    code = "InvalidContentRange"


class IncompleteBody(BadRequest):
    code = "IncompleteBody"
    default_message = "the body ended before Content-Length bytes arrived"


class InvalidSource(BadRequest):
    code = "InvalidSource"
    default_message = "src of a transcode import is not allowed"


class InvalidWebhookUrl(BadRequest):
    code = "InvalidWebhookUrl"
    default_message = "the webhook url is not allowed"


class InvalidCaptions(BadRequest):
    """A caption body that is not valid UTF-8 WebVTT or SRT; the message names the bad line."""

    code = "InvalidCaptions"
    default_message = "the body is not a valid WebVTT or SRT file"


class InvalidImage(BadRequest):
    code = "InvalidImage"
    default_message = "the body is not a PNG this service accepts"


class UnknownTemplate(BadRequest):
    """template= names no transcode template of the app (unknown, deleted or another app's)."""

    code = "UnknownTemplate"
    default_message = "the app has no transcode template of that name"


class ClipRangesMalformed(BadRequest):
    """ranges of POST /video/clip is empty or not START-END[,START-END...] in ms."""

    code = "ClipRangesMalformed"


class ClipTooManyRanges(BadRequest):
    code = "ClipTooManyRanges"


class ClipRangeReversed(BadRequest):
    code = "ClipRangeReversed"


class ClipRangeEmpty(BadRequest):
    code = "ClipRangeEmpty"


class ClipRangesOverlap(BadRequest):
    code = "ClipRangesOverlap"


class ClipRangeOutOfBounds(BadRequest):
    code = "ClipRangeOutOfBounds"


# 401: authentication
class Unauthorized(VassetError):
    status = 401
    category = True


class InvalidAppKey(Unauthorized):
    code = "InvalidAppKey"
    default_message = "unknown or disabled app_key"


class SignatureDoesNotMatch(Unauthorized):
    code = "SignatureDoesNotMatch"
    default_message = "the signature does not match the request"


class SignatureExpired(Unauthorized):
    code = "SignatureExpired"


class SignatureNonceUsed(Unauthorized):
    code = "SignatureNonceUsed"
    default_message = "this random was already used"


class InvalidUploadToken(Unauthorized):
    code = "InvalidUploadToken"
    default_message = "the upload token is not valid for this upload"


class InvalidUrlSignature(Unauthorized):
    code = "InvalidUrlSignature"
    default_message = "the URL signature is invalid or has expired"


class InvalidTicket(Unauthorized):
    code = "InvalidTicket"
    default_message = "send Authorization: Bearer <ticket> from POST /video/upload/ticket"


class TicketExpired(Unauthorized):
    code = "TicketExpired"
    default_message = "the upload ticket has expired"


class InvalidConsoleKey(Unauthorized):
    code = "InvalidConsoleKey"
    default_message = "console login required"


class InvalidMetricsToken(Unauthorized):
    code = "InvalidMetricsToken"
    default_message = "GET /metrics needs Authorization: Bearer <VASSET_METRICS_TOKEN>"

    def headers(self) -> dict[str, str]:
        return {**self.extra_headers, "WWW-Authenticate": 'Bearer realm="metrics"'}


# 404: unknown, expired, or owned by another app
class NotFound(VassetError):
    status = 404
    code = "NotFound"
    default_message = "not found"


class VideoNotFound(NotFound):
    code = "VideoNotFound"
    default_message = "no such video"

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        super().__init__(message, status="not_found", **extra)


class UploadNotFound(NotFound):
    code = "UploadNotFound"
    default_message = "no such upload, or it has expired"


class ObjectNotFound(NotFound):
    code = "ObjectNotFound"
    default_message = "no such object"


class EndpointNotFound(NotFound):
    code = "EndpointNotFound"
    default_message = "no such webhook endpoint"


class DeliveryNotFound(NotFound):
    code = "DeliveryNotFound"
    default_message = "no such webhook delivery"


class CaptionNotFound(NotFound):
    code = "CaptionNotFound"
    default_message = "the video has no captions in that language"


class AssetNotFound(NotFound):
    code = "AssetNotFound"
    default_message = "no such asset (unknown, deleted or another app's)"


class StoryboardNotFound(NotFound):
    code = "StoryboardNotFound"
    default_message = "the video has no storyboard (turned off when it was transcoded)"


class AudioNotFound(NotFound):
    code = "AudioNotFound"
    default_message = "the video has no audio rendition (no audio in its source, or turned off)"


# 403 / 410 / 412 / 415 / 423 / 460: the resumable-upload protocols' own statuses
class TicketUsedUp(VassetError):
    status = 403
    code = "TicketUsedUp"
    default_message = "the ticket has created as many uploads as it allows"


class UploadGone(VassetError):
    status = 410
    code = "UploadGone"
    default_message = "the upload was terminated or has expired"


class TusVersionUnsupported(VassetError):
    status = 412
    code = "TusVersionUnsupported"
    default_message = "Tus-Resumable must be 1.0.0 (or send Upload-Draft-Interop-Version)"

    def headers(self) -> dict[str, str]:
        return {**self.extra_headers, "Tus-Version": "1.0.0"}


class UnsupportedMediaType(VassetError):
    status = 415
    code = "UnsupportedMediaType"
    default_message = "PATCH bodies must be sent as application/offset+octet-stream"


class UploadLocked(VassetError):
    status = 423
    code = "UploadLocked"
    default_message = "another request is writing to this upload; retry shortly"

    def headers(self) -> dict[str, str]:
        return {**self.extra_headers, "Retry-After": "1"}


class ChecksumMismatch(VassetError):
    status = 460
    code = "ChecksumMismatch"
    default_message = "the body does not match Upload-Checksum; nothing of it was kept"


# 405: the path exists, the method does not (Litestar raises it; the class names the code)
class MethodNotAllowed(VassetError):
    status = 405
    code = "MethodNotAllowed"
    default_message = "method not allowed"


# 409: state conflicts
class Conflict(VassetError):
    status = 409
    category = True


class UploadCompleted(Conflict):
    code = "UploadCompleted"
    default_message = "the upload is already complete"


class UploadAborted(Conflict):
    code = "UploadAborted"
    default_message = "the upload was aborted or failed"


class VideoNotPlayable(Conflict):
    code = "VideoNotPlayable"
    default_message = "the video has no playable rendition yet"


class InvalidState(Conflict):
    code = "InvalidState"


class OffsetMismatch(Conflict):
    code = "OffsetMismatch"


class UploadInProgress(Conflict):
    code = "UploadInProgress"
    default_message = "the upload is completing; retry shortly"

    def headers(self) -> dict[str, str]:
        return {**self.extra_headers, "Retry-After": "2"}


# 413 / 416 / 422 / 429 / 503
class EntityTooLarge(VassetError):
    status = 413
    code = "EntityTooLarge"


class InvalidRange(VassetError):
    status = 416
    code = "InvalidRange"
    default_message = "the requested range is not satisfiable"


class VerificationFailed(VassetError):
    status = 422
    category = True


class HashMismatch(VerificationFailed):
    code = "HashMismatch"
    default_message = "the uploaded file's MD5 does not match the declared hash"


class SizeMismatch(VerificationFailed):
    code = "SizeMismatch"
    default_message = "the uploaded parts do not add up to the declared size"


class Throttled(VassetError):
    status = 429
    code = "Throttled"
    default_message = "too many requests"

    def __init__(self, message: str | None = None, retry_after: int = 1, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {**self.extra_headers, "Retry-After": str(self.retry_after)}


class ServiceUnavailable(VassetError):
    status = 503
    code = "ServiceUnavailable"
    default_message = "a dependency is unavailable; retry later"

    def __init__(self, message: str | None = None, retry_after: int = 2, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {**self.extra_headers, "Retry-After": str(self.retry_after)}


class ThumbnailUnavailable(ServiceUnavailable):
    code = "ThumbnailUnavailable"
    default_message = "thumbnails are busy or FFmpeg timed out; retry later"

    def __init__(self, message: str | None = None, retry_after: int = 1, **extra: Any) -> None:
        super().__init__(message, retry_after=retry_after, **extra)


class StorageError(ServiceUnavailable):
    """The BlobStore failed in a way that a retry may fix."""

    default_message = "object storage is unavailable; retry later"


def http_codes() -> dict[str, type[VassetError]]:
    """Every HTTP error code, mapped to the one class that stands for it."""
    found: dict[str, type[VassetError]] = {}
    pending: list[type[VassetError]] = [VassetError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "code" in vars(cls):
            if cls.code in found:
                raise TypeError(f"{cls.__name__} and {found[cls.code].__name__} share {cls.code}")
            found[cls.code] = cls
    return found


class FailureCode(StrEnum):
    """Codes that start the ``error`` of a failed upload or transcode in /video/status.

    ``error`` is ``Code`` or ``Code: message``. Code is one of these, or an HTTP code above
    when the failure is the same refusal a call would answer (HashMismatch, SizeMismatch at
    completion; InvalidSource, EntityTooLarge, ServiceUnavailable for an import's source;
    VideoNotFound, InternalError).
    """

    UPLOAD_EXPIRED = "UploadExpired"  # the upload passed its TTL unfinished
    VIDEO_DELETED = "VideoDeleted"  # the upload's video was deleted while it was open
    PROBE_FAILED = "ProbeFailed"  # the probe could not run (retried)
    NOT_A_VIDEO = "NotAVideo"  # readable media without a video stream
    UNSUPPORTED_MEDIA = "UnsupportedMedia"  # not media FFmpeg will read
    CORRUPT_MEDIA = "CorruptMedia"  # damaged or truncated media
    INVALID_OUTPUT = "InvalidOutput"  # FFmpeg exited 0 but an output is missing or malformed
    TRANSCODE_FAILED = "TranscodeFailed"  # FFmpeg failed for a reason other than the input
    TRANSCODE_OUT_OF_MEMORY = "TranscodeOutOfMemory"  # FFmpeg hit its memory limit
    TRANSCODE_TIMEOUT = "TranscodeTimeout"  # FFmpeg ran longer than the duration allows
    TRANSCODE_STALLED = "TranscodeStalled"  # FFmpeg made no progress
    TRANSCODE_CANCELLED = "TranscodeCancelled"  # the job was cancelled while FFmpeg ran
    TRANSCODE_KILLED = "TranscodeKilled"  # FFmpeg died of a signal
    TRANSCODE_ABANDONED = "TranscodeAbandoned"  # the worker's lease expired (crash, kill -9)
    FONT_MISSING = "FontMissing"  # text overlay asked for, VASSET_FONT_FILE is not on the worker
