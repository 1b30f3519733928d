"""The OpenAPI document: FastAPI's, with our one error shape documented on every operation.

FastAPI documents 422 as its own ``HTTPValidationError`` (a list under ``detail``); our handler answers
``{"detail": str, "errors": [...]}`` instead, so the document is corrected here, and the other 4xx an
operation can answer are listed, so that generated clients and Schemathesis see the truth.

The live stream's frames (web.stream.StreamEvent) are no operation's body, yet the frontend's types come
from this document too: they are added under ``components/schemas``, with ``StreamEvent`` the union of
them all, told apart by ``type``.

``python -c 'from tradewind.web.openapi import openapi_document'`` serves the frontend's client generator.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from tradewind.web.stream import StreamEvent

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["detail", "errors"],
    "properties": {
        "detail": {"type": "string", "description": "What is wrong, for a person."},
        "errors": {
            "type": "array",
            "items": {
                "title": "FieldError",
                "type": "object",
                "required": ["field", "message"],
                "properties": {
                    "field": {
                        "type": "string",
                        "description": "The field at fault, dotted for nested ones (params.fast).",
                    },
                    "message": {"type": "string"},
                    "line": {
                        "anyOf": [{"type": "integer"}, {"type": "null"}],
                        "description": "Strategy code errors: the line.",
                    },
                },
            },
        },
    },
}
REASONS = {
    "401": "Not logged in, or the session has ended",
    "403": "A cookie-authenticated write without the X-CSRF-Token header",
    "404": "Not found (also: another user's object)",
    "409": "Conflicts with the current state",
    "413": "Request body too large",
    "422": "Invalid input; `errors` names the fields",
    "429": "Too many requests or failed logins; see Retry-After",
    "502": "The exchange answered with an error",
    "503": "A component (exchange adapter, message bus, database) is not reachable",
}
PUBLIC = {"/api/auth/register", "/api/health"}  # never a 401 (login is: a wrong password)
HEADERS = {"401": "WWW-Authenticate", "429": "Retry-After"}


def _error_response(code: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": REASONS[code],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if code in HEADERS:
        response["headers"] = {HEADERS[code]: {"schema": {"type": "string"}}}
    return response


def _codes(path: str, method: str) -> list[str]:
    codes = ["404", "422", "429"] if path in PUBLIC else ["401", "404", "422", "429"]
    if method in ("post", "put", "patch", "delete"):
        codes += ["403", "409", "413"]
    if path.startswith("/api/traders") or path.startswith("/api/backtests") or path == "/api/health":
        codes += ["502", "503"]
    if method in ("post", "put", "patch") and path.startswith(("/api/strategies", "/api/assignments")):
        codes += ["503"]  # strategy code is checked, and its declaration read, in the validation processes
    if path.endswith("/close") or path == "/api/flatten":
        codes += ["503"]  # core not reachable: nothing was sold
    if path.startswith("/api/studies") or path == "/api/runs/{kind}/{run_id}/export.json":
        codes += ["503"]  # Optuna's storage not reachable
    return codes


def stream_schemas() -> dict[str, Any]:
    """JSON Schemas of the live stream's frames, by name, and ``StreamEvent``: one of them, by ``type``."""
    (union,), schemas = msgspec.json.schema_components(
        [StreamEvent], ref_template="#/components/schemas/{name}"
    )
    schemas["StreamEvent"] = {
        "title": "StreamEvent",
        "description": "One frame of the live stream (/api/stream), as JSON; ``type`` says which.",
        "oneOf": union["anyOf"],  # exactly one: the tags differ
        "discriminator": union["discriminator"],
    }
    return dict(sorted(schemas.items()))


def build_openapi(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for name, schema in stream_schemas().items():
        if name in schemas:  # one name for two shapes: the generated types would mix them up
            raise RuntimeError(f"OpenAPI schema {name!r} is both an API body and a stream frame")
        schemas[name] = schema
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = op.setdefault("responses", {})
            for code in _codes(path, method):
                responses[code] = _error_response(code)
    return doc


def install_openapi(app: FastAPI) -> None:
    """Serve ``build_openapi`` (computed once) at the app's openapi_url."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document without a running server (for the frontend's generated client)."""
    from pathlib import Path

    from cryptography.fernet import Fernet

    from tradewind.config import Settings
    from tradewind.secrets import SecretBox
    from tradewind.web.app import create_app

    settings = Settings(data_dir=Path("/nonexistent"))
    app = create_app(settings, None, None, SecretBox([Fernet.generate_key().decode()]))  # type: ignore[arg-type]
    return app.openapi()
