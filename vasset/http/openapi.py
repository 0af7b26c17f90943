"""The OpenAPI 3.1 document: parameters from the query Structs, signing, errors, examples.

Litestar builds the document from the route handlers; `doc()` gives each handler what Litestar
cannot see: its query (parsed by vasset/http/params.py, not by Litestar), how it authenticates,
the error codes it answers and an example answer. The interactive page is Swagger UI, served
from files inside the package (vasset/static/vendor/swagger-ui), so it works offline.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import msgspec
from litestar import Response, get
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import (
    Components,
    Example,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Parameter,
    RequestBody,
    Schema,
    SecurityScheme,
    Tag,
)
from litestar.params import FromPath

from vasset import errors
from vasset.http.responses import JSON
from vasset.http.schemas import Error

SIGNED = "signed"
TOKEN = "signed_or_token"
PUBLIC = "public"

STRING_TO_SIGN = (
    "Every signed call carries `app_key`, `timestamp` (Unix seconds, within 300 s of the "
    "server's clock), `random` (16-64 characters of `[A-Za-z0-9_-]`, never reused within "
    "900 s) and `signature`:\n\n"
    '    string_to_sign = METHOD + "\\n" + PATH + "\\n" + CANONICAL_QUERY\n'
    "    signature      = lowercase hex(HMAC-SHA256(key=app_secret, msg=string_to_sign))\n\n"
    "PATH is the path as sent, without the query. CANONICAL_QUERY is every query parameter "
    "except `signature`, names and values percent-encoded per RFC 3986 (`A-Z a-z 0-9 - _ . ~` "
    "stay, everything else `%XX` of its UTF-8 bytes, space `%20`), sorted by encoded name, then "
    "encoded value, joined as `name=value` with `&`."
)
TOKEN_HELP = (
    "The `upload_token` that init answered: `?upid=..&token=..` authorizes PUT "
    "/video/upload/upload and GET /video/upload/resume of that one upload, until it expires, "
    "with no other signing parameters."
)

_SIGNING_PARAMS = (
    ("app_key", "the app's key", {"type": "string", "minLength": 1}, "ak_3f9c2e1b"),
    (
        "timestamp",
        "Unix seconds, within 300 s of the server's clock",
        {"type": "string", "pattern": "^[0-9]{1,12}$"},
        "1700000000",
    ),
    (
        "random",
        "a nonce, never reused by this app_key within 900 s",
        {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,64}$"},
        "4b1d9c2f7a0e48d3b6c5",
    ),
    (
        "signature",
        "lowercase hex HMAC-SHA256 of the string_to_sign (see the `signature` security scheme)",
        {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "0" * 64,
    ),
)

#: An error a route documents: the class that stands for its code in vasset/errors.py.
ErrorClass = type[errors.VassetError]

#: Codes every signed call may answer, besides its own.
SIGNED_CODES: tuple[ErrorClass, ...] = (
    errors.MissingParameter,
    errors.InvalidParameter,
    errors.InvalidAppKey,
    errors.SignatureDoesNotMatch,
    errors.SignatureExpired,
    errors.SignatureNonceUsed,
    errors.Throttled,
)
#: Codes any call may answer (VassetError itself is InternalError).
COMMON_CODES: tuple[ErrorClass, ...] = (errors.VassetError, errors.ServiceUnavailable)

_DESCRIPTIONS = {
    400: "Malformed or inconsistent input",
    401: "Authentication failed",
    404: "Not found (or another app's)",
    405: "Method not allowed",
    409: "State conflict",
    413: "Too large",
    416: "Range not satisfiable",
    422: "Completion-time verification failed",
    429: "Throttled (see Retry-After)",
    500: "Internal error (the request id finds it in the logs)",
    503: "A dependency is down; retry after Retry-After",
}


def signing_parameters(required: bool) -> list[Parameter]:
    """The four signing parameters (optional where an upload token may replace them)."""
    return [
        Parameter(
            name=name,
            param_in="query",
            required=required,
            description=text,
            schema={**schema, "examples": [example]},  # type: ignore[arg-type]
        )
        for name, text, schema, example in _SIGNING_PARAMS
    ]


@cache
def query_parameters(model: type) -> tuple[Parameter, ...]:
    """OpenAPI query parameters of a query Struct: the schema its parsing enforces."""
    root = msgspec.json.schema(model)
    defs = root.get("$defs", {})
    schema = defs[root["$ref"].rsplit("/", 1)[1]] if "$ref" in root else root
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        prop.pop("default", None)
        params.append(
            Parameter(
                name=name,
                param_in="query",
                required=name in required,
                description=description,
                schema=prop,  # type: ignore[arg-type]
            )
        )
    return tuple(params)


def error_responses(codes: tuple[ErrorClass, ...]) -> dict[int, ResponseSpec]:
    """One response per status: the shared Error schema with an example per code."""
    by_status: dict[int, list[ErrorClass]] = {}
    for cls in codes:
        if "code" not in vars(cls) or vars(cls).get("category", False):
            raise TypeError(f"{cls.__name__} does not stand for a code of its own")
        by_status.setdefault(cls.status, []).append(cls)
    return {
        status: ResponseSpec(
            data_container=Error,
            generate_examples=False,
            media_type=JSON,
            description=f"{_DESCRIPTIONS.get(status, 'Error')}: "
            + ", ".join(cls.code for cls in classes),
            examples=[
                Example(
                    summary=cls.code,
                    value={
                        "code": cls.code,
                        "message": vars(cls).get(
                            "default_message", _DESCRIPTIONS.get(status, "error").lower()
                        ),
                        "request_id": "5f2b7c0d9e8a4b1c3d6e7f80",
                    },
                )
                for cls in classes
            ],
        )
        for status, classes in sorted(by_status.items())
    }


def _binary_response(description: str, types: tuple[str, ...]) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=description,
        content={t: OpenAPIMediaType(schema=Schema(content_media_type=t)) for t in types},
    )


def _operation_class(
    query: type | None, auth: str, body: str | None, example: Any, binary: tuple[str, ...]
) -> type[Operation]:
    """An Operation that adds what Litestar cannot see to the one it generated."""

    class VassetOperation(Operation):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            params: list[Parameter] = list(self.parameters or [])  # type: ignore[arg-type]
            if auth != PUBLIC:
                params += signing_parameters(required=auth == SIGNED)
            if query is not None:
                params += query_parameters(query)
            self.parameters = params or None  # type: ignore[assignment]
            if body is not None:
                self.request_body = RequestBody(
                    description=body,
                    required=False,
                    content={
                        "application/octet-stream": OpenAPIMediaType(
                            schema=Schema(content_media_type="application/octet-stream")
                        )
                    },
                )
            if binary:
                responses = dict(self.responses or {})
                responses["200"] = _binary_response("The object", binary)
                responses["206"] = _binary_response("One byte range of the object", binary)
                responses["304"] = OpenAPIResponse(description="Not modified (If-None-Match)")
                self.responses = dict(sorted(responses.items()))
            ok = (self.responses or {}).get("200")
            if example is not None and ok is not None and getattr(ok, "content", None):
                for media in ok.content.values():  # type: ignore[union-attr]
                    media.examples = {"example": Example(value=example)}

    return VassetOperation


def doc(
    *,
    tag: str,
    auth: str = SIGNED,
    query: type | None = None,
    codes: tuple[ErrorClass, ...] = (),
    body: str | None = None,
    example: Any = None,
    binary: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Route-decorator keyword arguments that document one handler."""
    codes = tuple(dict.fromkeys(((*SIGNED_CODES,) if auth != PUBLIC else ()) + codes))
    security: list[dict[str, list[str]]] = []
    if auth == SIGNED:
        security = [{"signature": []}]
    elif auth == TOKEN:
        security = [{"signature": []}, {"uploadToken": []}]
    kwargs: dict[str, Any] = {
        "tags": [tag],
        "security": security or None,
        "responses": error_responses((*codes, *COMMON_CODES)),
        "operation_class": _operation_class(query, auth, body, example, binary),
    }
    if not binary:
        kwargs["media_type"] = JSON  # the charset of docs/API.md on every JSON answer
    return kwargs


SWAGGER_DIR = Path(__file__).resolve().parent.parent / "static" / "vendor" / "swagger-ui"
SWAGGER_FILES = {
    # Litestar adds "; charset=utf-8" to text types itself.
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "swagger-ui.css": "text/css",
}


@get("/schema/assets/{name:str}", include_in_schema=False, sync_to_thread=False)
def swagger_asset(name: FromPath[str]) -> Response[bytes]:
    """A Swagger UI file shipped in the package (the page needs no internet)."""
    media_type = SWAGGER_FILES.get(name)
    if media_type is None:
        raise errors.NotFound(f"no schema asset {name!r}")
    data = (SWAGGER_DIR / name).read_bytes()
    return Response(data, media_type=media_type, headers={"Cache-Control": "max-age=86400"})


def openapi_config(version: str) -> OpenAPIConfig:
    """OpenAPI 3.1 at /schema/openapi.json, Swagger UI at /schema."""
    return OpenAPIConfig(
        title="vasset",
        version=version,
        description=(
            "Video asset service: verified resumable uploads, transcoding, signed playback. "
            "Errors share the `Error` schema; branch on `code` (docs/API.md)."
        ),
        path="/schema",
        render_plugins=[
            SwaggerRenderPlugin(
                path=["/", "/swagger"],
                js_url="/schema/assets/swagger-ui-bundle.js",
                css_url="/schema/assets/swagger-ui.css",
                standalone_preset_js_url="/schema/assets/swagger-ui-standalone-preset.js",
                favicon="",  # Litestar's default favicon is fetched from a CDN
            )
        ],
        use_handler_docstrings=True,
        create_examples=False,
        components=Components(
            security_schemes={
                "signature": SecurityScheme(
                    type="apiKey",
                    name="signature",
                    security_scheme_in="query",
                    description=STRING_TO_SIGN,
                ),
                "uploadToken": SecurityScheme(
                    type="apiKey",
                    name="token",
                    security_scheme_in="query",
                    description=TOKEN_HELP,
                ),
            }
        ),
        tags=[
            Tag(name="uploads", description="Resumable, verified uploads"),
            Tag(name="videos", description="Status, media info, listing, deletion"),
            Tag(name="transcode", description="The transcode queue and imports"),
            Tag(name="playback", description="Signed play URLs and the /play file route"),
            Tag(name="captions", description="WebVTT / SRT captions of a video"),
            Tag(name="assets", description="Image assets (watermarks) for transcode overlays"),
            Tag(name="direct", description="Direct-to-OSS uploads (OSS storage only)"),
            Tag(name="webhooks", description="Webhook endpoints and their deliveries"),
            Tag(name="service", description="Liveness"),
        ],
    )
