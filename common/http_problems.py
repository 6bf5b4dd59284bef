"""Every error a Corral service answers with is RFC 7807 ``application/problem+json``."""
from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable

from aiohttp import web

from .errors import PROBLEM_BASE, PROBLEM_CONTENT_TYPE, CorralError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

_HTTP_TYPES = {
    400: "invalid-request",
    401: "authentication-failed",
    403: "permission-denied",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    411: "length-required",
    413: "payload-too-large",
    415: "unsupported-media-type",
}


def problem_response(doc: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=int(doc["status"]), body=json.dumps(doc).encode(), content_type=PROBLEM_CONTENT_TYPE, headers=headers
    )


def error_response(exc: CorralError, request: web.Request) -> web.Response:
    return problem_response(exc.to_problem(instance=request.path), getattr(exc, "headers", None))


def make_problem_middleware(service: str) -> Middleware:
    """A middleware turning CorralError, aiohttp HTTP errors and crashes into problems."""

    @web.middleware
    async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except CorralError as exc:
            if exc.status >= 500:
                log.error("%s %s failed: %s", request.method, request.path, exc.detail)
            return error_response(exc, request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            doc = {
                "type": PROBLEM_BASE + _HTTP_TYPES.get(exc.status, f"http-{exc.status}"),
                "title": exc.reason,
                "status": exc.status,
                "detail": exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason,
                "instance": request.path,
            }
            return problem_response(doc, {k: v for k, v in exc.headers.items() if k.lower() == "allow"})
        except ConnectionResetError:
            raise  # the client went away; nobody to answer
        except Exception:
            log.exception("unhandled error in %s %s", request.method, request.path)
            internal = CorralError(f"internal error; see the {service} log")
            return problem_response(internal.to_problem(instance=request.path))

    return problem_middleware
