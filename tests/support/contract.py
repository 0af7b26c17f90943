"""Checks answers against the live /schema/openapi.json (every call tests/support/api.py makes).

Strict: an answer whose status the operation does not document, whose content type is not
documented, or whose JSON body does not validate fails the test that received it. Answer
objects are closed here (``additionalProperties: false``) except the open ``Error`` body, so a
field the document does not name is caught too. Unknown paths and wrong methods must answer
the ``Error`` shape with 404 / 405. Routes left out of the schema (console, /metrics) are not
checked.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from typing import Any

import httpx
from jsonschema import Draft202012Validator

#: Paths that are not part of the documented API (docs/API.md, "OpenAPI").
UNDOCUMENTED = re.compile(r"^/(console|metrics|schema|files)(/|$)")


class Contract:
    """One server's OpenAPI document, compiled for response checks."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        components = copy.deepcopy(document.get("components", {}))
        for name, schema in components.get("schemas", {}).items():
            if name != "Error" and schema.get("type") == "object":
                schema["additionalProperties"] = False
        self.components = components
        self.routes = [
            (re.compile("^" + _template(path) + "$"), path) for path in document["paths"]
        ]
        self._validators: dict[str, Draft202012Validator] = {}

    def validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        """A validator for one response schema (refs resolve into the closed components)."""
        key = repr(schema)
        found = self._validators.get(key)
        if found is None:
            found = Draft202012Validator({**schema, "components": self.components})
            self._validators[key] = found
        return found

    def operation(self, method: str, path: str) -> tuple[str | None, dict[str, Any] | None]:
        """(path template, operation) for a request; (template, None) for a wrong method."""
        for pattern, template in self.routes:
            if pattern.match(path):
                return template, self.document["paths"][template].get(method.lower())
        return None, None

    def check(self, response: httpx.Response) -> None:
        """Raise AssertionError unless the answer is one the document allows."""
        request = response.request
        path = request.url.path
        if UNDOCUMENTED.match(path):
            return
        template, operation = self.operation(request.method, path)
        status = str(response.status_code)
        where = f"{request.method} {path} -> {status}"
        if operation is None:
            expected = "405" if template else "404"
            assert status == expected, f"{where}: undocumented operation answered {status}"
            self._check_json(where, response, {"$ref": "#/components/schemas/Error"})
            return
        answers = operation.get("responses", {})
        assert status in answers, f"{where}: status not documented (has {sorted(answers)})"
        content = answers[status].get("content") or {}
        if not content or request.method == "HEAD" or not response.content:
            return
        ctype = response.headers.get("content-type", "")
        assert ctype in content, f"{where}: content type {ctype!r} not in {sorted(content)}"
        schema = content[ctype].get("schema")
        if ctype.startswith("application/json") and schema:
            self._check_json(where, response, schema)
        elif ctype == "text/event-stream":
            _check_event_stream(where, response.text)

    def _check_json(self, where: str, response: httpx.Response, schema: dict[str, Any]) -> None:
        try:
            body = response.json()
        except ValueError:
            raise AssertionError(f"{where}: not JSON: {response.text[:200]!r}") from None
        problems = sorted(self.validator(schema).iter_errors(body), key=str)
        assert not problems, f"{where}: {problems[0].message} in {body!r}"[:2000]


def _check_event_stream(where: str, text: str) -> None:
    """Every block of a finished event stream is comments, or id + event + JSON data of it."""
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in filter(None, block.split("\n")):
            if line.startswith(":"):
                continue
            name, sep, value = line.partition(": ")
            assert sep and name in ("id", "event", "data", "retry"), f"{where}: line {line!r}"
            fields[name] = value
        if "data" in fields:
            assert fields.get("id", "").isdigit(), f"{where}: event without an id: {block!r}"
            body = json.loads(fields["data"])
            assert body.get("type") == fields.get("event"), f"{where}: {block!r}"
            assert isinstance(body.get("data"), dict) and "timestamp" in body, f"{where}: {body!r}"


def _template(path: str) -> str:
    """A regex for an OpenAPI path template ({key} of /play spans slashes)."""
    out = re.escape(path)
    out = out.replace(r"\{key\}", ".+")
    return re.sub(r"\\\{[^}]+\\\}", "[^/]+", out)


@cache
def contract_for(base_url: str) -> Contract:
    """The document of the server at base_url, fetched once per server."""
    answer = httpx.get(base_url + "/schema/openapi.json", timeout=30)
    answer.raise_for_status()
    return Contract(answer.json())
