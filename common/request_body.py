"""Parse and validate JSON request bodies into pydantic models (400 on anything off)."""
from __future__ import annotations

import json
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from .errors import InvalidRequest

ModelT = TypeVar("ModelT", bound=BaseModel)

MAX_BODY = 2 << 20


async def parse_body(request: web.Request, model: type[ModelT]) -> ModelT:
    body = await request.read()
    if len(body) > MAX_BODY:
        raise InvalidRequest(f"request body larger than {MAX_BODY} bytes")
    try:
        data = json.loads(body or b"{}")
    except ValueError as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]} for err in exc.errors()
        ]
        summary = "; ".join(f"{p['field'] or 'body'}: {p['message']}" for p in problems)
        raise InvalidRequest(f"invalid request body: {summary}", errors=problems) from None
