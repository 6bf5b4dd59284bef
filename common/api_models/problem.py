"""The RFC 7807 problem document every error is answered with."""
from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from .base import OPTIONAL_KEY, ApiModel


class Problem(ApiModel):
    """``type`` is stable (https://corral.dev/problems/<name>); more members may say more (e.g. ``slots``)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("", description="https://corral.dev/problems/ followed by a stable name")
    title: str = ""
    status: int = 0
    detail: str = ""
    instance: Annotated[str, OPTIONAL_KEY] = ""
