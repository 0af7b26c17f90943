"""Run tasks on a thread pool where the first failure stops the rest and is the one reported."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TypeVar

__all__ = ["Stopped", "run_parallel"]

T = TypeVar("T")


class Stopped(Exception):
    """A task given up because another task failed (never the error to report)."""


def run_parallel(
    tasks: Sequence[Callable[[], T]], workers: int, stop: threading.Event, name: str
) -> list[T]:
    """Every task's result, in order; on a failure, set `stop`, cancel the rest and raise it.

    Running tasks are expected to watch `stop` and give up (raising Stopped, or returning).
    """

    def guarded(task: Callable[[], T]) -> T:
        try:
            return task()
        except BaseException:
            stop.set()  # before this thread takes the next queued task
            raise

    pool = ThreadPoolExecutor(workers, thread_name_prefix=name)
    futures: list[Future[T]] = [pool.submit(guarded, task) for task in tasks]
    try:
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        if any(f.exception() is not None for f in done):
            stop.set()
            for f in futures:
                f.cancel()
            wait(futures)
            failures = [
                exc for f in futures if not f.cancelled() and (exc := f.exception()) is not None
            ]
            # Report the failure that stopped the others, not a task it cut short.
            failures.sort(key=lambda exc: isinstance(exc, Stopped))
            raise failures[0]
    except BaseException:
        # Stop queued tasks and cut the ones in flight (also on Ctrl-C in the main thread).
        stop.set()
        for f in futures:
            f.cancel()
        raise
    finally:
        pool.shutdown(wait=True)
    return [f.result() for f in futures]
