"""The folder prometheus_client's multiprocess mode keeps its per-process files in.

Imported by `vasset serve`'s supervisor, which stays light: nothing here imports
prometheus_client (its value class is chosen from the environment when it is first imported).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir(port: int) -> tuple[Path, bool]:
    """Set a fresh PROMETHEUS_MULTIPROC_DIR for the server workers; (dir, whether we made it).

    An operator's own PROMETHEUS_MULTIPROC_DIR is kept but emptied of old ``*.db`` files (the
    counters of a previous run would otherwise be summed into this one's).
    """
    given = os.environ.get(ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob("*.db"):
            old.unlink(missing_ok=True)
        return path, False
    # Not under VASSET_TEMP_DIR: the janitor removes day-old entries there.
    path = Path(tempfile.mkdtemp(prefix=f"vasset-metrics-{port}-"))
    os.environ[ENV] = str(path)
    return path, True


def remove_multiprocess_dir(path: Path, made: bool) -> None:
    """Remove the folder prepare_multiprocess_dir made (an operator's own one stays)."""
    if made:
        shutil.rmtree(path, ignore_errors=True)
        os.environ.pop(ENV, None)
