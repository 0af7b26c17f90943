"""Upload tickets: a signed call mints one; protocol requests present it as a bearer token.

A ticket is 32 random bytes; the database keeps only its SHA-256, so a leaked table grants
nothing. It creates at most ``uses`` uploads of at most ``max_size`` bytes each, until it expires.
"""

from __future__ import annotations

import secrets
import time

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from vasset import errors
from vasset.auth.verify import App, token_digest
from vasset.db import transaction
from vasset.settings import Settings
from vasset.upload.resumable import repository as repo
from vasset.upload.resumable.repository import TicketRow

PREFIX = "vt_"
MAX_USES = 1000


class TicketRequest(msgspec.Struct, frozen=True):
    """What a signed ticket call asks for (already range-checked by the HTTP layer)."""

    max_size: int | None = None
    auto: bool = False
    priority: int = 0
    expires: int | None = None
    uses: int = 1
    #: Seconds each video it creates lives (None: the app's default).
    ttl: int | None = None
    #: Stored TranscodeOptions (JSON) of its uploads' automatic transcode (template=).
    options: str | None = None
    #: Playback policy of the videos it creates (None: signed).
    playback_policy: str | None = None


class Tickets:
    """Minting and checking tickets."""

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    async def issue(self, app: App, asked: TicketRequest) -> dict:
        """Mint a ticket for app; returns the ticket (shown once) and its expiry."""
        s = self.settings
        max_size = min(asked.max_size or s.max_file_size, s.max_file_size)
        ttl = min(asked.expires or s.ticket_ttl, s.ticket_max_ttl)
        uses = max(1, min(asked.uses, MAX_USES))
        ticket = PREFIX + secrets.token_urlsafe(32)
        expires_at = int(time.time()) + ttl
        async with transaction(self.engine) as conn:
            await repo.insert_ticket(
                conn,
                ticket_hash=token_digest(ticket),
                app_id=app.id,
                max_size=max_size,
                auto_transcode=int(asked.auto),
                task_priority=asked.priority,
                uses=uses,
                expires_at=expires_at,
                ttl=asked.ttl,
                transcode_options=asked.options,
                playback_policy=asked.playback_policy,
            )
        return {"ticket": ticket, "expires_at": expires_at, "endpoint": s.tus_path}

    async def check(self, authorization: str | None) -> TicketRow:
        """The live ticket of an `Authorization: Bearer` header, or InvalidTicket/TicketExpired."""
        ticket = bearer(authorization)
        if ticket is None:
            raise errors.InvalidTicket()
        async with transaction(self.engine) as conn:
            row = await repo.get_ticket(conn, token_digest(ticket))
        if row is None:
            raise errors.InvalidTicket("the ticket is not known")
        if row.expires_at < time.time():
            raise errors.TicketExpired()
        return row

    async def drop_expired(self) -> int:
        """Forget tickets a day past their expiry (the janitor's sweep)."""
        async with transaction(self.engine) as conn:
            return await repo.drop_expired_tickets(conn, int(time.time()))


def bearer(authorization: str | None) -> str | None:
    """The ticket of an `Authorization: Bearer vt_...` header, or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value.startswith(PREFIX) or len(value) > 100:
        return None
    return value
