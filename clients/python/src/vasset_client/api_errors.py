"""One class per error code the server answers, grouped under a class per HTTP status."""

from __future__ import annotations

from vasset_client.error_base import RetryAfter, VassetError


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


class InvalidWebhookUrl(BadRequest):
    """400 InvalidWebhookUrl: a webhook url is not allowed (scheme, credentials, address)."""

    default_code = "InvalidWebhookUrl"


class InvalidImage(BadRequest):
    """400 InvalidImage: an asset body is not a complete PNG, or is too large on a side."""

    default_code = "InvalidImage"


class UnknownTemplate(BadRequest):
    """400 UnknownTemplate: template= names no transcode template of the app."""

    default_code = "UnknownTemplate"


class ClipRangesMalformed(BadRequest):
    """400 ClipRangesMalformed: ranges of /video/clip is empty or not START-END[,...] in ms."""

    default_code = "ClipRangesMalformed"


class ClipTooManyRanges(BadRequest):
    """400 ClipTooManyRanges: more ranges than /video/clip accepts."""

    default_code = "ClipTooManyRanges"


class ClipRangeReversed(BadRequest):
    """400 ClipRangeReversed: a clip range ends before it starts."""

    default_code = "ClipRangeReversed"


class ClipRangeEmpty(BadRequest):
    """400 ClipRangeEmpty: a clip range is shorter than one frame (40 ms)."""

    default_code = "ClipRangeEmpty"


class ClipRangesOverlap(BadRequest):
    """400 ClipRangesOverlap: two clip ranges share a moment."""

    default_code = "ClipRangesOverlap"


class ClipRangeOutOfBounds(BadRequest):
    """400 ClipRangeOutOfBounds: a clip range ends after the source does."""

    default_code = "ClipRangeOutOfBounds"


class InvalidCaptions(BadRequest):
    """400 InvalidCaptions: a caption body is not UTF-8 WebVTT or SRT (message: the bad line)."""

    default_code = "InvalidCaptions"


class InvalidHeader(BadRequest):
    """400 InvalidHeader: a tus / IETF protocol header is malformed (body.header)."""

    default_code = "InvalidHeader"


class MetadataTooLarge(BadRequest):
    """400 MetadataTooLarge: Upload-Metadata is larger than the server takes."""

    default_code = "MetadataTooLarge"


class UnsupportedChecksum(BadRequest):
    """400 UnsupportedChecksum: Upload-Checksum names an unknown algorithm."""

    default_code = "UnsupportedChecksum"


class InconsistentLength(BadRequest):
    """400 InconsistentLength: the upload length differs from the one declared."""

    default_code = "InconsistentLength"


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


class InvalidMetricsToken(Unauthorized):
    """401 InvalidMetricsToken: GET /metrics without the configured bearer token."""

    default_code = "InvalidMetricsToken"


class InvalidTicket(Unauthorized):
    """401 InvalidTicket: no ticket, or one the server does not know."""

    default_code = "InvalidTicket"


class TicketExpired(Unauthorized):
    """401 TicketExpired: the upload ticket has expired."""

    default_code = "TicketExpired"


class Forbidden(ClientError):
    """403: a used-up ticket; storage also answers it for expired or wrong presigned URLs."""

    default_status = 403


class TicketUsedUp(Forbidden):
    """403 TicketUsedUp: the ticket created as many uploads as it may."""

    default_code = "TicketUsedUp"


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


class EndpointNotFound(NotFound):
    """404 EndpointNotFound: unknown, deleted or another app's webhook endpoint."""

    default_code = "EndpointNotFound"


class DeliveryNotFound(NotFound):
    """404 DeliveryNotFound: unknown or another app's webhook delivery."""

    default_code = "DeliveryNotFound"


class AssetNotFound(NotFound):
    """404 AssetNotFound: unknown, deleted or another app's image asset."""

    default_code = "AssetNotFound"


class StoryboardNotFound(NotFound):
    """404 StoryboardNotFound: the video's complete ladder has no storyboard (turned off)."""

    default_code = "StoryboardNotFound"


class AudioNotFound(NotFound):
    """404 AudioNotFound: playurl format=m4a of a video without an audio rendition."""

    default_code = "AudioNotFound"


class CaptionNotFound(NotFound):
    """404 CaptionNotFound: the video has no captions in that language."""

    default_code = "CaptionNotFound"


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


class UploadGone(ClientError):
    """410 UploadGone: a tus / IETF upload was terminated or has expired."""

    default_code = "UploadGone"
    default_status = 410


class TusVersionUnsupported(ClientError):
    """412 TusVersionUnsupported: Tus-Resumable is not 1.0.0."""

    default_code = "TusVersionUnsupported"
    default_status = 412


class UnsupportedMediaType(ClientError):
    """415 UnsupportedMediaType: a tus PATCH without offset+octet-stream."""

    default_code = "UnsupportedMediaType"
    default_status = 415


class UploadLocked(ClientError):
    """423 UploadLocked: another request is writing to the upload."""

    default_code = "UploadLocked"
    default_status = 423


class ChecksumMismatch(ClientError):
    """460 ChecksumMismatch: the body differs from Upload-Checksum; not kept."""

    default_code = "ChecksumMismatch"
    default_status = 460


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


class Throttled(RetryAfter, ClientError):
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


class ServiceUnavailable(RetryAfter, ServerError):
    """503 ServiceUnavailable: a dependency is down (retry_after from Retry-After)."""

    default_code = "ServiceUnavailable"
    default_status = 503


class ThumbnailUnavailable(ServiceUnavailable):
    """503 ThumbnailUnavailable: thumbnails are busy or FFmpeg timed out (retry_after)."""

    default_code = "ThumbnailUnavailable"
