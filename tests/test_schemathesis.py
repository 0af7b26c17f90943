"""Schemathesis against a live server: generated, signed calls of every documented operation.

Every case is signed like a real client (fresh timestamp and random, HMAC per docs/API.md, via
tests/support/api.py); a case that carries an upload token is sent unsigned, as browsers do.
No answer may be a 5xx, and every answer must conform to /schema/openapi.json (status, content
type, body schema). Derandomized, so CI runs the same cases every time;
VASSET_SCHEMATHESIS_CASES sets the cases per operation and mode (default 10).
"""

from __future__ import annotations

import os
import secrets
import time
from typing import Any
from urllib.parse import unquote

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import create_app
from tests.support.api import signed_query

CASES = int(os.environ.get("VASSET_SCHEMATHESIS_CASES", "10"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
SIGNING = ("app_key", "timestamp", "random", "signature")


@pytest.fixture(scope="module")
def fuzz_app(test_env) -> dict:
    """An app of its own: generated uploads must not show up in other tests' listings."""
    return create_app(test_env, "schemathesis")


@pytest.fixture(scope="module")
def api_schema(server):
    """The live document, as clients fetch it."""
    return schemathesis.openapi.from_url(server.url + "/schema/openapi.json")


def _wire(value: Any) -> str | None:
    """A generated query value as the client sends it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def sign(case, creds: dict) -> None:
    """Replace the generated signing parameters with a valid signature of the final query."""
    names = {p.name for p in case.operation.query}
    params = {k: _wire(v) for k, v in (case.query or {}).items() if k not in SIGNING}
    params = {k: v for k, v in params.items() if v is not None}
    if case.formatted_path == "/video/events":
        _bounded_stream(params)
    if "signature" not in names or (params.get("token") and "upid" in params):
        case.query = params  # public route, or an upload-token call (no signing parameters)
        return
    query = signed_query(
        case.method.upper(),
        case.formatted_path,
        params,
        creds["app_key"],
        creds["app_secret"],
        timestamp=int(time.time()),
        random=secrets.token_hex(12),
    )
    # signed_query percent-encodes; requests encodes again, so hand it the decoded values.
    pairs = (pair.split("=", 1) for pair in query.split("&"))
    case.query = {unquote(k): unquote(v) for k, v in pairs}


def _bounded_stream(params: dict[str, str]) -> None:
    """An event stream ends only when asked: every generated call asks for at most 1 s.

    A timeout that is not a number stays (negative mode checks its 400); none, or a long one,
    becomes 0 or 1, so the stream sends what is stored and ends instead of hanging the run.
    """
    value = params.get("timeout")
    if value is None or (value.isdigit() and int(value) > 1):
        params["timeout"] = "0" if value is None else "1"


def _run(operation, mode: GenerationMode, creds: dict, base_url: str) -> None:
    session = requests.Session()

    @settings(
        max_examples=CASES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case) -> None:
        sign(case, creds)
        response = case.call(base_url=base_url, session=session, timeout=30)
        case.validate_response(response, checks=CHECKS)

    check()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_calls_of_every_operation(api_schema, server, fuzz_app, mode):
    """Zero 5xx and full conformance, operation by operation (failures are gathered)."""
    failures = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 19
    for operation in operations:
        try:
            _run(operation, mode, fuzz_app, server.url)
        except Unsatisfiable:
            # Nothing to make invalid (e.g. /health has no parameters): negative mode is empty.
            assert mode == GenerationMode.NEGATIVE, operation.label
        except Exception as exc:  # every operation's failure is reported
            failures.append(f"{operation.label}: {type(exc).__name__}: {exc}"[:3000])
    assert not failures, "\n\n".join(failures)
