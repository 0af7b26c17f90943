"""The resume state file: what an interrupted upload needs to carry on after a crash."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_STATE_DIR", "STATE_VERSION", "StateFile"]

DEFAULT_STATE_DIR = "~/.cache/vasset"
STATE_VERSION = 1


class StateFile:
    """The resume state of one local file, keyed by its absolute path, size and mtime."""

    def __init__(self, state_dir: Path | None, path: Path) -> None:
        self.state_dir = state_dir
        self.path = path

    def location(self, size: int, mtime_ns: int) -> Path | None:
        """Where the state of this version of the file lives (None: state is not kept)."""
        if self.state_dir is None:
            return None
        # Keyed by the file alone: an upload_id the server does not know (another server or
        # app) answers UploadNotFound, and the uploader then starts over with the saved MD5.
        key = f"{self.path}\n{size}\n{mtime_ns}"
        return self.state_dir / f"upload-{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"

    def load(self, size: int, mtime_ns: int) -> dict[str, Any] | None:
        """The saved state, or None when there is none for this version of the file."""
        path = self.location(size, mtime_ns)
        if path is None:
            return None
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            return None
        if (
            state.get("path") != str(self.path)
            or state.get("size") != size
            or state.get("mtime_ns") != mtime_ns
        ):
            return None
        expires = state.get("expires_at")
        if isinstance(expires, int) and expires <= time.time():
            state.pop("upload_id", None)  # expired: the MD5 is still good
        return state

    def save(self, size: int, mtime_ns: int, **fields: Any) -> None:
        """Write the state atomically (base_url, upload_id, part_size, md5, direct, expires_at)."""
        path = self.location(size, mtime_ns)
        if path is None:
            return
        state = {
            "version": STATE_VERSION,
            "path": str(self.path),
            "size": size,
            "mtime_ns": mtime_ns,
            **fields,
            "created_at": int(time.time()),
        }
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, path)

    def remove(self, size: int, mtime_ns: int) -> None:
        """Forget the state (the upload finished, or cannot be resumed)."""
        path = self.location(size, mtime_ns)
        if path is not None:
            path.unlink(missing_ok=True)
