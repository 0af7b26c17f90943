"""The answer of an upload's init, shared by a new upload and a source replacement."""

from __future__ import annotations

from vasset.metrics.registry import metrics


def init_answer(
    *,
    upload_id: str,
    vid: int,
    size: int,
    md5: str | None,
    part_size: int,
    part_count: int,
    expires_at: int,
    upload_token: str,
) -> dict:
    """Count the created upload and return its init answer (status uploading)."""
    metrics().uploads_created.inc()
    return {
        "upload_id": upload_id,
        "vid": vid,
        "status": "uploading",
        "size": size,
        "md5": md5,
        "part_size": part_size,
        "part_count": part_count,
        "expires_at": expires_at,
        "upload_token": upload_token,
    }


def with_outputs(answer: dict, outputs: list[dict]) -> dict:
    """An upload's completing answer, plus its template outputs when it named several."""
    return {**answer, "outputs": outputs} if outputs else answer
