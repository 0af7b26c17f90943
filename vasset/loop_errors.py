"""How a background loop (worker duties, webhook delivery) logs a failed round."""

from __future__ import annotations

import structlog
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from vasset import errors
from vasset.redis_client import REDIS_DOWN

log = structlog.get_logger(__name__)

# Failures of a dependency that comes back by itself (MySQL restarted, a deadlock, Redis full
# or failing over): a loop logs them, backs off and carries on; they never end the process.
TRANSIENT: tuple[type[BaseException], ...] = (
    errors.ServiceUnavailable,
    SQLAlchemyError,
    RedisError,
    *REDIS_DOWN,
)


def loop_error(
    event: str,
    exc: BaseException,
    transient: tuple[type[BaseException], ...] = TRANSIENT,
    **fields: object,
) -> None:
    """Log a failed round of a loop: a dependency hiccup as a warning, a bug with its traceback."""
    if isinstance(exc, transient):
        log.warning(event, error=type(exc).__name__, detail=str(exc)[:200], **fields)
    else:
        log.error(event, error=type(exc).__name__, exc_info=exc, **fields)
