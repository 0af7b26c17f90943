"""JSON responses and the error body of API.md."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from vasset import errors

log = structlog.get_logger(__name__)

JSON = "application/json; charset=utf-8"
_encoder = msgspec.json.Encoder()


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Serialize with msgspec (fast, snake_case keys as given)."""
    return Response(
        content=_encoder.encode(data), status_code=status, media_type=JSON, headers=headers
    )


def request_id_of(request: Request) -> str:
    """The request id the middleware assigned."""
    return request.scope.get("state", {}).get("request_id", "")


def error_body(exc: errors.VassetError, request_id: str, path: str) -> bytes:
    """The API.md error body for a VassetError, logged as request_failed."""
    body = {"code": exc.code, "message": exc.message, "request_id": request_id}
    for key, value in exc.extra.items():
        body.setdefault(key, value)
    level = log.warning if exc.status >= 500 else log.info
    level("request_failed", code=exc.code, status=exc.status, path=path)
    return _encoder.encode(body)


def error_response(request: Request, exc: errors.VassetError) -> Response:
    """The API.md error answer for a VassetError."""
    body = error_body(exc, request_id_of(request), request.url.path)
    return Response(content=body, status_code=exc.status, media_type=JSON, headers=exc.headers())


_LITESTAR_CODES = {
    404: errors.NotFound.code,
    405: errors.MethodNotAllowed.code,
    413: errors.EntityTooLarge.code,
    400: errors.InvalidParameter.code,
}


def handle_vasset_error(request: Request, exc: errors.VassetError) -> Response:
    """Exception handler for every VassetError."""
    return error_response(request, exc)


def _invalid_input(exc: ValidationException) -> errors.VassetError:
    """Litestar's own validation failure (a path parameter) as MissingParameter/InvalidParameter."""
    problems = exc.extra if isinstance(exc.extra, list) else []
    first = problems[0] if problems and isinstance(problems[0], dict) else {}
    name = str(first.get("key") or "parameter")
    text = str(first.get("message") or exc.detail)
    if "missing" in text.lower():
        return errors.MissingParameter(f"missing required parameter: {name}", parameter=name)
    return errors.InvalidParameter(f"invalid {name}: {text}", parameter=name)


def handle_http_exception(request: Request, exc: HTTPException) -> Response:
    """Framework errors (unknown route, wrong method, invalid input) in the same error shape."""
    if isinstance(exc, ValidationException):
        return error_response(request, _invalid_input(exc))
    code = _LITESTAR_CODES.get(exc.status_code, errors.InvalidParameter.code)
    wrapped = errors.VassetError(str(exc.detail))
    wrapped.code = code  # type: ignore[misc]
    wrapped.status = exc.status_code  # type: ignore[misc]
    # e.g. Allow on 405: the framework's headers describe the refusal.
    wrapped.extra_headers.update(exc.headers or {})
    return error_response(request, wrapped)


def handle_unexpected(request: Request, exc: Exception) -> Response:
    """Anything else: logged with its traceback, answered without one."""
    log.exception("request_crashed", path=request.url.path, error=type(exc).__name__)
    return error_response(
        request, errors.VassetError("internal error; the request id identifies it")
    )
