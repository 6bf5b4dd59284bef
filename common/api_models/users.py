"""Users and their keypairs (admin endpoints)."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .base import ApiModel, Timestamp, one_of
from .cluster import WhoAmI

Role = Annotated[str, one_of("user", "admin")]


class User(ApiModel):
    id: str = ""
    username: str = ""
    role: Role = ""
    created_at: Timestamp | None = None
    keypairs: int = 0
    is_active: bool = Field(True, description="false: disabled; neither keypairs nor web sessions work")
    has_password: bool = Field(False, description="whether the user can sign in to the web UI")
    resource_policy: str | None = Field(None, description="the resource policy they are held to; null: none")
    default_group: str | None = Field(None, description="where their sessions go when they name no group; "
                                                        "null: \"default\"")
    default_project: str | None = Field(None, description="the project (name) their sessions count against "
                                                          "when they name none; null: none")
    fair_share: float = Field(1.0, description="their fair-share weight")


class UserList(ApiModel):
    items: list[User] = []


class NewUser(ApiModel):
    """A user just created, with the only copy of their secret key."""

    id: str = ""
    username: str = ""
    role: Role = ""
    created_at: Timestamp | None = None
    access_key: str = ""
    secret_key: str = ""


class SshKey(ApiModel):
    """A public key that every session of its user accepts for SSH."""

    id: str = ""
    name: str = ""
    fingerprint: str = Field("", description="SHA256:..., as ssh-keygen -l prints it")
    public_key: str = ""
    created_at: Timestamp | None = None


class SshKeyList(ApiModel):
    items: list[SshKey] = []


class WebSignIn(ApiModel):
    """A signed-in browser (``corral_session`` cookie): who it is, and the token its requests other than
    GET/HEAD/OPTIONS must send in the ``X-CSRF-Token`` header."""

    user: WhoAmI = WhoAmI()
    csrf_token: str = ""
