"""Lifecycle moves shared by videos, uploads and transcode jobs: the machine check and the seam.

Each table family's repository owns the guarded UPDATE of its rows (``move_video``,
``move_upload``, ``move_job``); every one of them checks its machine here first and hands
the move to ``record`` last, inside the caller's transaction. ``record`` is the one place
where the events outbox row will be written, so an event commits with its change or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, Generic, TypeVar

import msgspec
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from vasset.events import outbox

log = structlog.get_logger(__name__)

S = TypeVar("S", bound=StrEnum)


class IllegalTransition(Exception):
    """A move the state machine does not allow: a bug in the caller, never a client's fault."""

    def __init__(self, entity: str, sources: Iterable[str], target: str) -> None:
        self.entity = entity
        self.sources = tuple(str(s) for s in sources)
        self.target = str(target)
        super().__init__(f"{entity}: {' | '.join(self.sources)} -> {self.target} is not a move")


class LostRace(Exception):
    """The row was no longer in a source status (or gone): someone else moved it first."""

    def __init__(
        self, entity: str, row_id: int, sources: Iterable[str], target: str, found: str | None
    ) -> None:
        self.entity = entity
        self.row_id = row_id
        self.sources = tuple(str(s) for s in sources)
        self.target = str(target)
        self.found = found
        super().__init__(
            f"{entity} {row_id}: expected {' | '.join(self.sources)} to become {self.target},"
            f" found {found or 'no row'}"
        )


class Transition(msgspec.Struct, frozen=True):
    """One move that happened: what moved, from where to where, and the columns it set."""

    entity: str
    id: int
    old: str
    new: str
    payload: dict[str, Any] = {}


class Machine(Generic[S]):
    """A lifecycle's allowed moves (pure); ``check`` refuses anything else loudly."""

    def __init__(self, entity: str, moves: Mapping[S, frozenset[S]]) -> None:
        self.entity = entity
        self.moves = moves

    def allows(self, source: S, target: S) -> bool:
        """Whether source -> target is a move of this lifecycle."""
        return target in self.moves[source]

    def check(self, sources: S | Iterable[S], target: S) -> tuple[S, ...]:
        """The sources as a tuple, or IllegalTransition if any of them cannot reach target."""
        found = (sources,) if isinstance(sources, StrEnum) else tuple(sources)
        if not found or not all(self.allows(s, target) for s in found):
            raise IllegalTransition(self.entity, found, target)
        return found


async def record(conn: AsyncConnection, transition: Transition) -> Transition:
    """Every committed-with-the-caller move passes here: the outbox row goes in with it."""
    if transition.entity == "video":
        # Same transaction as the move: rolled back, it emits nothing; committed, it is kept.
        await outbox.on_video_move(
            conn, transition.id, transition.old, transition.new, transition.payload
        )
    log.debug(
        "state_moved",
        entity=transition.entity,
        id=transition.id,
        old=transition.old,
        new=transition.new,
    )
    return transition
