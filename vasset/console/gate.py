"""Who may use the console: the login key, the session secret and the app it acts for."""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncEngine

from vasset import errors
from vasset.auth.verify import App, Authenticator
from vasset.console import session
from vasset.playback.secret import url_secret
from vasset.settings import Settings


class ConsoleGate:
    """The console's login state for one process (built once at startup)."""

    def __init__(self, settings: Settings, engine: AsyncEngine, auth: Authenticator) -> None:
        self.settings = settings
        self.engine = engine
        self.auth = auth
        self._secret: bytes | None = None

    @property
    def enabled(self) -> bool:
        """Whether VASSET_CONSOLE_KEY is set."""
        return bool(self.settings.console_key)

    def require_enabled(self) -> None:
        """A disabled console is indistinguishable from an unknown path."""
        if not self.enabled:
            raise errors.NotFound("the console is disabled (VASSET_CONSOLE_KEY is not set)")

    async def secret(self) -> bytes:
        """The session-signing secret, read from MySQL once per process."""
        if self._secret is None:
            self._secret = await url_secret(self.engine, "console_session")
        return self._secret

    async def logged_in(self, cookie: str | None) -> bool:
        """Whether cookie is a valid, unexpired session of the current console key."""
        if not self.enabled or not cookie:
            return False
        return session.valid(await self.secret(), self.settings.console_key, cookie, time.time())

    async def issue(self) -> str:
        """A new session cookie value."""
        return session.issue(await self.secret(), self.settings.console_key, int(time.time()))

    async def app(self) -> App:
        """The enabled app the console acts for, or InvalidState when none is configured."""
        key = self.settings.console_app_key
        app = await self.auth.current_app(key) if key else None
        if app is None or not app.enabled:
            raise errors.InvalidState(
                "the console is not configured: VASSET_CONSOLE_APP_KEY names no enabled app"
            )
        return app
