"""JSON responses built through the API models, so what is sent is what the OpenAPI document says."""
from __future__ import annotations

from functools import cache
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter


@cache
def _adapter(model: Any) -> TypeAdapter[Any]:
    return TypeAdapter(model)


def to_json(model: Any, body: Any) -> Any:
    """``body`` (an instance of ``model``, or plain data validated by it) as JSON-ready data."""
    adapter = _adapter(model)
    is_instance = isinstance(model, type) and issubclass(model, BaseModel) and isinstance(body, model)
    value = body if is_instance else adapter.validate_python(body)
    return adapter.dump_python(value, mode="json")


def json_response(model: Any, body: Any, *, status: int = 200) -> web.Response:
    return web.json_response(to_json(model, body), status=status)
