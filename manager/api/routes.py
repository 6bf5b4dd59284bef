"""One table of public routes: aiohttp wiring and the OpenAPI document both come from it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    signed: bool = True
    body: type[BaseModel] | None = None
    responses: dict[int, str] = field(default_factory=lambda: {200: "OK"})
    response_type: str = "application/json"
    query: tuple[tuple[str, str], ...] = ()  # (name, description)
    tag: str = "sessions"

    def openapi_operation(self) -> dict[str, Any]:
        op: dict[str, Any] = {
            "summary": self.summary,
            "tags": [self.tag],
            "operationId": self.handler.__name__,
            "responses": {
                str(code): {
                    "description": text,
                    "content": {
                        (self.response_type if code < 400 else "application/problem+json"): {"schema": {"type": "object"}}
                    },
                }
                for code, text in self.responses.items()
            },
        }
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _path_params(self.path)
        ] + [{"name": n, "in": "query", "required": False, "description": d, "schema": {"type": "string"}} for n, d in self.query]
        if params:
            op["parameters"] = params
        if self.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{self.body.__name__}"}}},
            }
        if self.signed:
            op["security"] = [{"corralHmac": []}]
            op["responses"].setdefault("401", {"description": "Missing, forged or expired signature"})
        return op


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def build_openapi(routes: list[Route], version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = route.openapi_operation()
        if route.body is not None:
            schema = route.body.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
            for name, sub in schema.pop("$defs", {}).items():
                schemas[name] = sub
            schemas[route.body.__name__] = schema
    return {
        "openapi": "3.1.0",
        "info": {"title": "Corral API", "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "corralHmac": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "Corral-HMAC-SHA256 Credential=<access key>, Signature=<hex>; with X-Corral-Date, X-Corral-Nonce and X-Corral-Content-SHA256 headers",
                }
            },
        },
    }
