"""The OpenAPI 3.1 document of what we serve, generated from the route table and models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from bots.api.routes import ROUTES
from bots.web import Route, is_public
from core.errors import PROBLEM_CONTENT_TYPE

_REF = "#/components/schemas/{model}"
_PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "instance", "error", "retryable"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "error": {"type": "string"},
        "retryable": {"type": "boolean"},
        "trace_id": {"type": "string"},
    },
    "additionalProperties": True,
}


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": route.summary,
        "operationId": route.handler.__name__ + ("_legacy" if route.path.endswith("/agent/run") else ""),
        "responses": {
            "default": {"description": "Error", "content": {PROBLEM_CONTENT_TYPE: {"schema": _PROBLEM}}},
        },
    }
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", route.path)
    ]
    if route.query is not None:
        for name, field in route.query.model_fields.items():
            params.append(
                {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": str(field.annotation),
                }
            )
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _REF.format(model=route.body.__name__)}}},
        }
    ok: dict[str, Any] = {"description": "OK"}
    if route.response is not None:
        ok["content"] = {"application/json": {"schema": {"$ref": _REF.format(model=route.response.__name__)}}}
    elif route.text_response:
        ok["content"] = {"text/plain": {"schema": {"type": "string"}}}
    op["responses"][str(route.response_status)] = ok
    if not is_public(route.handler):
        op["security"] = [{"bearer": []}]
    return op


def openapi_document() -> dict[str, Any]:
    models = {m for r in ROUTES for m in (r.body, r.response) if m is not None}
    pairs: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (m, "validation" if any(r.body is m for r in ROUTES) else "serialization") for m in models
    ]
    _, schema = models_json_schema(sorted(pairs, key=lambda p: p[0].__name__), ref_template=_REF)
    paths: dict[str, dict] = {}
    for route in (r for r in ROUTES if r.path.startswith("/api/v1/")):
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "oz-gateway", "version": "1", "description": "Oz-compatible agent run API"},
        "servers": [{"url": "/api/v1"}],
        "paths": {p.removeprefix("/api/v1"): ops for p, ops in paths.items()},
        "components": {
            "schemas": schema.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
