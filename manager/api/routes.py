"""One table of public routes: aiohttp wiring and the OpenAPI document both come from it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable

from aiohttp import web
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode
from pydantic_core import core_schema

from corral.common.api_models import Problem
from corral.common.errors import PROBLEM_CONTENT_TYPE

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SchemaRef = Callable[[Any, JsonSchemaMode], dict[str, Any]]

REF_TEMPLATE = "#/components/schemas/{model}"
ANY_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")  # how an any-method route (a proxy) is documented
# Media types whose body is a sequence; their route's response model describes one item.
STREAM_TYPES = frozenset({"application/x-ndjson", "text/event-stream"})


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
    # The body of every success status but 204 (a pydantic model or TypedDict); for a stream,
    # one NDJSON line or one event's data.
    response: Any = None
    query: tuple[tuple[str, str], ...] = ()  # (name, description)
    tag: str = "sessions"
    # Wiring only: the aiohttp path when it differs (a ``{tail:.*}`` pattern), and whether every
    # method is routed to the handler (a proxy); the document shows ``path`` and ``method``.
    router_path: str = ""
    any_method: bool = False

    def openapi_operation(self, schema_ref: SchemaRef) -> dict[str, Any]:
        responses = {str(code): self._response(code, text, schema_ref) for code, text in self.responses.items()}
        op: dict[str, Any] = {
            "summary": self.summary,
            "tags": [self.tag],
            "operationId": self.handler.__name__,
            "responses": responses,
        }
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _path_params(self.path)
        ] + [{"name": n, "in": "query", "required": False, "description": d, "schema": {"type": "string"}} for n, d in self.query]
        if params:
            op["parameters"] = params
        if self.body is not None:
            op["requestBody"] = {
                # A body whose fields all have defaults may be left out.
                "required": any(field.is_required() for field in self.body.model_fields.values()),
                "content": {"application/json": {"schema": schema_ref(self.body, "validation")}},
            }
        if self.body is not None or self.query:
            responses.setdefault("400", self._response(400, "Invalid request body or query parameter", schema_ref))
        if self.signed:
            responses.setdefault("401", self._response(401, "Missing, forged or expired signature", schema_ref))
        return op

    def _response(self, code: int, text: str, schema_ref: SchemaRef) -> dict[str, Any]:
        if code >= 400:
            problem = {"schema": schema_ref(Problem, "serialization")}
            return {"description": text, "content": {PROBLEM_CONTENT_TYPE: problem}}
        if code == 204 or self.response is None:
            return {"description": text}
        model = schema_ref(self.response, "serialization")
        if self.response_type in STREAM_TYPES:
            media = {"schema": {"type": "string"}, "x-item-schema": model}
        else:
            media = {"schema": model}
        return {"description": text, "content": {self.response_type: media}}

    def models(self) -> Iterable[tuple[Any, JsonSchemaMode]]:
        if self.body is not None:
            yield self.body, "validation"
        if self.response is not None:
            yield self.response, "serialization"
        if any(code >= 400 for code in self.responses) or self.signed:
            yield Problem, "serialization"


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


class _DocumentSchema(GenerateJsonSchema):
    """Pydantic's schemas, less response fields' defaults (the manager always sends those fields),
    and with the ``NotRequired`` keys of TypedDicts inside response models left optional."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> dict[str, Any]:
        if self.mode == "serialization":
            return self.generate_inner(schema["schema"])
        return super().default_schema(schema)

    def field_is_required(
        self,
        field: core_schema.ModelField | core_schema.DataclassField | core_schema.TypedDictField,
        total: bool,
    ) -> bool:
        if field["type"] == "typed-dict-field":
            return field.get("required", total)
        return super().field_is_required(field, total)


def _component_schemas(routes: list[Route]) -> tuple[dict[tuple[Any, JsonSchemaMode], dict[str, Any]], dict[str, Any]]:
    """Per (model, mode) its top-level schema (a $ref), and every named schema they refer to."""
    wanted: dict[tuple[Any, JsonSchemaMode], TypeAdapter[Any]] = {}
    for route in routes:
        for model, mode in route.models():
            wanted.setdefault((model, mode), TypeAdapter(model))
    refs, defs = TypeAdapter.json_schemas(
        [(key, key[1], adapter) for key, adapter in wanted.items()],
        ref_template=REF_TEMPLATE,
        schema_generator=_DocumentSchema,
    )
    return {key[0]: ref for key, ref in refs.items()}, defs.get("$defs", {})


def build_openapi(routes: list[Route], version: str) -> dict[str, Any]:
    refs, schemas = _component_schemas(routes)

    def schema_ref(model: Any, mode: JsonSchemaMode) -> dict[str, Any]:
        return refs[(model, mode)]

    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation = route.openapi_operation(schema_ref)
        for method in ANY_METHODS if route.any_method else (route.method,):
            suffix = f"_{method.lower()}" if route.any_method else ""
            paths.setdefault(route.path, {})[method.lower()] = {**operation, "operationId": operation["operationId"] + suffix}
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
