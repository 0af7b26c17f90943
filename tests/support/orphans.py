"""No orphan servers: the vasset processes tests start get SIGTERM when the test process dies."""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl() -> Callable[..., int]:
    # Looked up in the parent: between fork and exec the child only calls it (no dlopen there).
    return ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent() -> Callable[[], None] | None:
    """A Popen preexec_fn giving the child PR_SET_PDEATHSIG = SIGTERM; None where it cannot."""
    if not sys.platform.startswith("linux"):
        return None
    # The signal fires when the *thread* that forked exits: a child started from a short-lived
    # thread (test_downloads starts API instances in parallel threads) would die at once.
    if threading.current_thread() is not threading.main_thread():
        return None
    prctl = _prctl()
    parent = os.getpid()

    def preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM)) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        # The parent died before prctl ran: no signal will come, so send it now.
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec
