"""Python SDK of the vasset video asset API: signed calls, typed answers, resumable uploads."""

from vasset_client import errors
from vasset_client.client import Client
from vasset_client.errors import (
    HashMismatch,
    NotFound,
    ServiceUnavailable,
    SignatureDoesNotMatch,
    Throttled,
    UploadCompleted,
    UploadNotFound,
    VassetError,
    VideoNotFound,
)
from vasset_client.events import Event
from vasset_client.models import (
    Deleted,
    InitResult,
    Limits,
    MediaInfo,
    PartResult,
    PlayInfo,
    PlayUrl,
    Rendition,
    ResumeState,
    Snapshot,
    Snapshots,
    TranscodeResult,
    UploadResult,
    UploadTicket,
    VideoPage,
    VideoStatus,
    VideoSummary,
)
from vasset_client.signing import canonical_query, sign, string_to_sign
from vasset_client.uploader import Uploader, upload_file
from vasset_client.webhooks import WebhookVerificationError, verify_webhook

__version__ = "0.1.0"

__all__ = [
    "Client",
    "Deleted",
    "Event",
    "HashMismatch",
    "InitResult",
    "Limits",
    "MediaInfo",
    "NotFound",
    "PartResult",
    "PlayInfo",
    "PlayUrl",
    "Rendition",
    "ResumeState",
    "ServiceUnavailable",
    "SignatureDoesNotMatch",
    "Snapshot",
    "Snapshots",
    "Throttled",
    "TranscodeResult",
    "UploadCompleted",
    "UploadNotFound",
    "UploadResult",
    "UploadTicket",
    "Uploader",
    "VassetError",
    "VideoNotFound",
    "VideoPage",
    "VideoStatus",
    "VideoSummary",
    "WebhookVerificationError",
    "canonical_query",
    "errors",
    "sign",
    "string_to_sign",
    "upload_file",
    "verify_webhook",
]
