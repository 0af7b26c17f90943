"""The upload lifecycle as one explicit state machine (pure)."""

from __future__ import annotations

from enum import StrEnum

from vasset.lifecycle import Machine


class UploadStatus(StrEnum):
    """upload.status values (stored as these strings)."""

    UPLOADING = "uploading"
    COMPLETING = "completing"
    UPLOADED = "uploaded"
    FAILED = "failed"
    ABORTED = "aborted"
    EXPIRED = "expired"


U = UploadStatus

TRANSITIONS: dict[UploadStatus, frozenset[UploadStatus]] = {
    # aborted: the video was deleted; expired: the janitor found it past its TTL.
    U.UPLOADING: frozenset({U.COMPLETING, U.ABORTED, U.EXPIRED}),
    # completing -> uploading: a completion gave up (crash, lost parts) so a retry can finish;
    # completing -> completing: a request takes over a completion whose lease ran out.
    U.COMPLETING: frozenset(
        {U.UPLOADED, U.FAILED, U.UPLOADING, U.COMPLETING, U.ABORTED, U.EXPIRED}
    ),
    U.UPLOADED: frozenset(),
    U.FAILED: frozenset(),
    U.ABORTED: frozenset(),
    U.EXPIRED: frozenset(),
}

UPLOAD = Machine("upload", TRANSITIONS)

#: Statuses of an upload that may still receive parts or finish.
OPEN = (U.UPLOADING, U.COMPLETING)
#: Statuses of an upload that ended without a video (answered as upload_failed).
ENDED_BADLY = (U.FAILED, U.ABORTED)
