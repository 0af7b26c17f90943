"""The OpenAPI document: complete, signed, offline, and the contract checker really checks."""

from __future__ import annotations

import re

import httpx
import pytest
from litestar.exceptions import ValidationException
from litestar.routes import HTTPRoute

from tests.support.contract import UNDOCUMENTED, Contract

SIGNING = {"app_key", "timestamp", "random", "signature"}


@pytest.fixture(scope="module")
def document(server) -> dict:
    """/schema/openapi.json of the live server."""
    answer = httpx.get(server.url + "/schema/openapi.json", timeout=30)
    assert answer.status_code == 200
    return answer.json()


def _operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_document_is_openapi_3_1_with_both_security_schemes(document):
    assert document["openapi"].startswith("3.1")
    schemes = document["components"]["securitySchemes"]
    assert schemes["signature"] == {
        "type": "apiKey",
        "name": "signature",
        "in": "query",
        "description": schemes["signature"]["description"],
    }
    assert "string_to_sign" in schemes["signature"]["description"]
    assert schemes["uploadToken"]["name"] == "token"
    assert schemes["uploadToken"]["in"] == "query"


def test_every_route_of_the_app_is_documented(document, test_settings):
    from vasset.app import create_app

    app = create_app(test_settings)
    documented = {(path, method.upper()) for path, method, _ in _operations(document)}
    missing = []
    left_out = set()
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        for method in route.methods - {"OPTIONS"}:
            if UNDOCUMENTED.match(path):
                left_out.add(path.split("/")[1])
            elif (path, method) not in documented:
                missing.append(f"{method} {path}")
    assert not missing
    # What is left out is exactly what docs/API.md says: the console, /metrics, /schema itself,
    # and the tus / IETF routes (a header contract of their own, docs/TUS.md).
    assert left_out == {"console", "metrics", "schema", "files"}


def test_every_operation_documents_its_errors_with_the_error_schema(document):
    for path, method, operation in _operations(document):
        answers = operation["responses"]
        assert "200" in answers, (method, path)
        for status in ("500", "503"):
            assert status in answers, (method, path, status)
        for status, answer in answers.items():
            if (path, status) == ("/ready", "503"):
                # Not ready is an answer, not an error: the same Readiness body, naming the checks.
                (media,) = answer["content"].values()
                assert media["schema"] == {"$ref": "#/components/schemas/Readiness"}
                continue
            if int(status) >= 400:
                (media,) = answer["content"].values()
                assert media["schema"] == {"$ref": "#/components/schemas/Error"}
                assert media["examples"], (method, path, status)
    error = document["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"code", "message", "request_id"}


def test_signed_operations_declare_the_signing_parameters(document):
    for path, method, operation in _operations(document):
        params = {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "query"}
        security = operation.get("security")
        if path in ("/health", "/ready") or path.startswith(("/play/", "/pub/")):
            assert not security and not SIGNING & params.keys(), path
            continue
        assert params.keys() >= SIGNING, (method, path)
        assert "401" in operation["responses"], (method, path)
        if path in ("/video/upload/upload", "/video/upload/resume"):
            assert security == [{"signature": []}, {"uploadToken": []}]
            assert not any(params[n]["required"] for n in SIGNING)
            assert "token" in params
        else:
            assert security == [{"signature": []}]
            assert all(params[n]["required"] for n in SIGNING)


def test_query_parameters_carry_their_bounds(document):
    init = document["paths"]["/video/upload/init"]["post"]
    params = {p["name"]: p for p in init["parameters"]}
    assert params["fn"]["required"] and params["fsize"]["required"]
    assert not params["hash"]["required"]
    assert params["priority"]["schema"]["minimum"] == -(2**31)
    status = document["paths"]["/video/status"]["get"]
    (vid,) = [p for p in status["parameters"] if p["name"] == "vid"]
    assert vid["schema"]["minimum"] == 1 and vid["required"]


def test_part_bodies_are_octet_streams_and_play_is_binary(document):
    upload = document["paths"]["/video/upload/upload"]["put"]
    assert "application/octet-stream" in upload["requestBody"]["content"]
    play = document["paths"]["/play/{expires_at}/{signature}/{key}"]
    assert set(play) == {"get", "head"}
    assert {"200", "206", "304", "401", "404", "416", "429"} <= set(play["get"]["responses"])
    assert "video/mp4" in play["get"]["responses"]["200"]["content"]


def test_examples_are_in_the_document(document):
    init = document["paths"]["/video/upload/init"]["post"]["responses"]["200"]
    (media,) = init["content"].values()
    assert media["examples"]["example"]["value"]["status"] == "uploading"


def test_interactive_page_needs_no_internet(server):
    page = httpx.get(server.url + "/schema", timeout=30)
    assert page.status_code == 200
    assert "SwaggerUIBundle" in page.text
    assert not re.search(r"(src|href)=['\"]https?://", page.text), "the page loads a remote file"
    for asset in re.findall(r"(?:src|href)=['\"](/schema/assets/[^'\"]+)", page.text):
        answer = httpx.get(server.url + asset, timeout=30)
        assert answer.status_code == 200 and len(answer.content) > 10_000, asset
    assert httpx.get(server.url + "/schema/assets/nope.js", timeout=30).status_code == 404


def _answer(method: str, path: str, status: int, body: dict) -> httpx.Response:
    request = httpx.Request(method, "http://127.0.0.1" + path)
    return httpx.Response(
        status,
        json=body,
        request=request,
        headers={"content-type": "application/json; charset=utf-8"},
    )


def test_the_contract_check_refuses_drift(document):
    contract = Contract(document)
    good = {"vid": 1, "status": "playable", "playable": True, "progress": 100, "error": None}
    good["delete_at"] = None
    good["ladder"] = "complete"
    contract.check(_answer("GET", "/video/status", 200, good))
    drifted = [
        (200, {**good, "surprise": 1}),  # a field the document does not name
        (200, {**good, "progress": "100"}),  # a wrong type
        (200, {**good, "status": "done"}),  # not a status value
        (418, {"code": "Teapot", "message": "", "request_id": ""}),  # undocumented status
        (404, {"code": "VideoNotFound"}),  # an error body without message and request_id
    ]
    for status, body in drifted:
        with pytest.raises(AssertionError):
            contract.check(_answer("GET", "/video/status", status, body))
    with pytest.raises(AssertionError):  # an unknown path must answer 404 Error
        contract.check(_answer("GET", "/video/nope", 200, {}))
    error = {"code": "MethodNotAllowed", "message": "m", "request_id": "r"}
    contract.check(_answer("DELETE", "/video/status", 405, error))


def test_litestar_validation_failures_name_the_parameter():
    from vasset.http.responses import _invalid_input

    invalid = ValidationException(
        "Validation failed", extra=[{"message": "Expected `int`", "key": "vid", "source": "path"}]
    )
    exc = _invalid_input(invalid)
    assert (exc.code, exc.extra["parameter"]) == ("InvalidParameter", "vid")
    missing = ValidationException(
        "Validation failed",
        extra=[{"message": "Missing required path parameter 'vid'", "key": "vid"}],
    )
    exc = _invalid_input(missing)
    assert (exc.code, exc.extra["parameter"]) == ("MissingParameter", "vid")


def test_missing_and_invalid_query_parameters_name_the_parameter(api):
    missing = api.call("GET", "/video/status", {})
    assert missing.status_code == 400
    assert missing.json()["code"] == "MissingParameter"
    assert missing.json()["parameter"] == "vid"
    invalid = api.call("GET", "/video/status", {"vid": "x"})
    assert (invalid.json()["code"], invalid.json()["parameter"]) == ("InvalidParameter", "vid")


def test_signing_parameters_are_named_when_missing_or_malformed(api):
    base = f"{api.base_url}/video/status?vid=1&app_key={api.app_key}&signature=00"
    missing = httpx.get(base + "&random=0123456789abcdef", timeout=30).json()
    assert (missing["code"], missing["parameter"]) == ("MissingParameter", "timestamp")
    bad = httpx.get(base + "&random=short&timestamp=1", timeout=30).json()
    assert (bad["code"], bad["parameter"]) == ("InvalidParameter", "random")
