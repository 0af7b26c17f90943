"""Media faults with stable codes: what a probe, a transcode or an output check can find wrong."""

from __future__ import annotations

from vasset.errors import FailureCode


class MediaError(Exception):
    """A media problem with a stable code; permanent ones fail the job without a retry."""

    # Plain attributes, not ClassVars: FfmpegError sets them per instance from its result.
    code: str = "MediaError"
    permanent: bool = False

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class ProbeFailed(MediaError):
    """The probe itself could not run (tool missing, timeout): may work on another attempt."""

    code = FailureCode.PROBE_FAILED


class NotAVideo(MediaError):
    """Readable media without a video stream: audio only, a still image, cover art only."""

    code = FailureCode.NOT_A_VIDEO
    permanent = True


class UnsupportedMedia(MediaError):
    """Not media FFmpeg will read: text, a refused container (playlists), an unknown codec."""

    code = FailureCode.UNSUPPORTED_MEDIA
    permanent = True


class CorruptMedia(MediaError):
    """A media container that is damaged or truncated."""

    code = FailureCode.CORRUPT_MEDIA
    permanent = True


class InvalidOutput(MediaError):
    """FFmpeg exited 0 but an output is missing or malformed (e.g. a failed tee slave)."""

    code = FailureCode.INVALID_OUTPUT
