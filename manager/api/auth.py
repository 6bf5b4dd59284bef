"""The web UI's sign-in: login (a ``corral_session`` cookie), the current session, logout."""
from __future__ import annotations

import hmac

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from corral.common import api_models as api
from corral.common.api_models.users import WebSignIn
from corral.common.errors import AuthenticationFailed, PermissionDenied
from corral.common.request_body import parse_body

from ..auth import CSRF_MESSAGE
from ..db.models import User
from ..passwords import MAX_LENGTH
from ..web_sessions import COOKIE_NAME, CSRF_HEADER, WEB_ACCESS_KEY, SignedIn
from .context_access import ctx_of
from .responses import to_json


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=4 * MAX_LENGTH)


def _whoami(user: User) -> api.WhoAmI:
    return api.WhoAmI(user_id=user.id, username=user.username, access_key=WEB_ACCESS_KEY, role=user.role)


def _answer(signed_in: SignedIn) -> web.Response:
    body = WebSignIn(user=_whoami(signed_in.user), csrf_token=signed_in.session.csrf_token)
    return web.json_response(to_json(WebSignIn, body))


async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, LoginRequest)
    web_sessions = ctx_of(request).web_sessions
    signed_in = await web_sessions.login(body.username, body.password, request.remote or "")
    response = _answer(signed_in)
    response.set_cookie(
        COOKIE_NAME, signed_in.token, path="/", httponly=True, samesite="Strict", secure=request.secure,
        max_age=int(web_sessions.config.session_max_s),
    )
    return response


async def current_session(request: web.Request) -> web.Response:
    found = await ctx_of(request).web_sessions.lookup(request.cookies.get(COOKIE_NAME, ""))
    if found is None or not found.user.is_active:
        raise AuthenticationFailed("not signed in")
    return _answer(found)


async def logout(request: web.Request) -> web.Response:
    """Ends the cookie's web session (idempotent: with no valid session there is nothing to end)."""
    web_sessions = ctx_of(request).web_sessions
    found = await web_sessions.lookup(request.cookies.get(COOKIE_NAME, ""))
    if found is not None:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), found.session.csrf_token.encode()):
            raise PermissionDenied(CSRF_MESSAGE)
        await web_sessions.logout(found.session.id)
    response = web.Response(status=204)
    response.del_cookie(COOKIE_NAME, path="/")
    return response
