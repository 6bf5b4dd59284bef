"""Turns every error into RFC 7807 application/problem+json."""
from __future__ import annotations

import json
import logging
from typing import Awaitable, Callable

from aiohttp import web

from corral.common.errors import PROBLEM_CONTENT_TYPE, CorralError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_TYPES = {
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
}


def problem_response(error: CorralError, instance: str | None = None) -> web.Response:
    return web.Response(
        status=error.status,
        text=json.dumps(error.to_problem(instance)),
        content_type=PROBLEM_CONTENT_TYPE,
    )


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except CorralError as error:
        if error.status >= 500:
            log.error("%s %s failed: %s", request.method, request.path, error.detail)
        return problem_response(error, request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        suffix = _HTTP_TYPES.get(exc.status, "http-error")
        doc = {
            "type": f"https://corral.dev/problems/{suffix}",
            "title": exc.reason,
            "status": exc.status,
            "detail": exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason,
            "instance": request.path,
        }
        return web.Response(status=exc.status, text=json.dumps(doc), content_type=PROBLEM_CONTENT_TYPE, headers={
            k: v for k, v in exc.headers.items() if k.lower() == "allow"
        })
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return problem_response(CorralError("internal server error; see the manager log"), request.path)
