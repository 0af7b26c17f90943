"""Fault injection: the next requests of an operation fail with a status, a delay or a drop."""

from __future__ import annotations

import time

from .body import Body
from .model import ConnectionDropped, Fault, OssError, ServerState


class FaultsMixin(ServerState):
    """Faults that tests queue with fail_next; each request takes the first that matches."""

    def fail_next(
        self,
        op: str = "*",
        status: int = 500,
        count: int = 1,
        code: str | None = None,
        message: str | None = None,
        drop: bool = False,
        after_bytes: int = 0,
        delay: float = 0.0,
    ) -> Fault:
        """Make the next ``count`` requests of ``op`` ("*": any) fail as asked."""
        # By default the fault answers ``status`` with an OSS error document after reading the
        # body (so the client sees the answer); ``drop`` cuts the connection after
        # ``after_bytes`` body bytes instead; ``delay`` sleeps first (for client timeouts).
        default_code = {503: "ServiceUnavailable", 500: "InternalError"}.get(status, "Injected")
        fault = Fault(
            op=op,
            status=status,
            code=code or default_code,
            message=message or "Injected fault.",
            count=count,
            drop=drop,
            after_bytes=after_bytes,
            delay=delay,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Forget faults not yet triggered."""
        with self._lock:
            self._faults.clear()

    def _take_fault(self, op: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.op in ("*", op) and fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _apply_fault(self, fault: Fault, body: Body) -> None:
        if fault.delay:
            time.sleep(fault.delay)
        if fault.drop:
            body.limit = fault.after_bytes
            while body.read():
                pass
            raise ConnectionDropped("fault: connection dropped")
        raise OssError(fault.status, fault.code, fault.message)
