"""``GET /api/v1/queue``: pending sessions in the order the scheduler will consider them."""
from __future__ import annotations

from aiohttp import web

from corral.common import api_models as api
from corral.common.errors import InvalidRequest
from corral.common.resource_groups import GROUP_NAME_RE

from .context_access import ctx_of, user_of
from .responses import json_response


async def queue(request: web.Request) -> web.Response:
    user_of(request)  # signed in
    group = request.query.get("group")
    if group is not None and not GROUP_NAME_RE.match(group):
        raise InvalidRequest(f"not a resource group name: {group!r}")
    services = ctx_of(request)
    if group is not None:
        await services.resource_groups.info(user_of(request), group)  # 404 unless one the caller may use
    return json_response(api.QueueView, {"groups": await services.queue.view(group)})
