"""Usage accounting: resource-hours per day and per user or project."""
from __future__ import annotations

from datetime import date

from pydantic import Field

from .base import ApiModel


class UsageRow(ApiModel):
    day: date | None = None
    holder: str = Field("", description="the user name (by=user) or project name (by=project)")
    resource_group: str = ""
    cpu_core_hours: float = 0.0
    gpu_hours: float = Field(0.0, description="whole GPUs count 1 each, a share its fraction")
    mem_gib_hours: float = 0.0
    sessions: int = Field(0, description="sessions that ran that day")


class UsageTotals(ApiModel):
    cpu_core_hours: float = 0.0
    gpu_hours: float = 0.0
    mem_gib_hours: float = 0.0
    sessions: int = Field(0, description="distinct sessions that ran in the window")


class UsageReport(ApiModel):
    first_day: date | None = Field(None, description="the `from` day (UTC)")
    last_day: date | None = Field(None, description="the `to` day (UTC), included")
    by: str = "user"
    rows: list[UsageRow] = []
    totals: UsageTotals = UsageTotals()
