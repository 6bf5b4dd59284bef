"""``corral usage``: resource-hours per day and per user or project."""
from __future__ import annotations

import sys

import click
from rich.markup import escape
from rich.table import Table

from .context import call_api, note
from .options import json_option
from .output import console, print_json


@click.command("usage")
@click.option("--from", "first_day", metavar="YYYY-MM-DD", help="First day (UTC; default: 6 days before --to).")
@click.option("--to", "last_day", metavar="YYYY-MM-DD", help="Last day, included (default: today).")
@click.option("--by", type=click.Choice(["user", "project"]), default="user", show_default=True)
@click.option("--group", default=None, help="Only this resource group.")
@click.option("--user", default=None, help="Only this user (admins: anyone; --by user).")
@click.option("--project", default=None, help="Only this project (--by project).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (a header row, one row per day, holder and group).")
@json_option
def usage_command(first_day: str | None, last_day: str | None, by: str, group: str | None, user: str | None,
                  project: str | None, as_csv: bool, as_json: bool) -> None:
    """CPU-core-hours, GPU-hours (a GPU share counts its fraction) and memory-GiB-hours per day.

    Yours and your projects'; admins see everyone's.
    """
    filters = {"first_day": first_day, "last_day": last_day, "by": by, "group": group, "user": user,
               "project": project}
    if as_csv and as_json:
        raise click.UsageError("use --csv or --json, not both")
    if as_csv:
        sys.stdout.write(call_api(lambda client: client.usage_csv(**filters)))
        return
    report = call_api(lambda client: client.usage(**filters))
    if as_json:
        print_json(report.raw)
        return
    if not report.rows:
        note(f"no usage from {report.first_day} to {report.last_day} (UTC)")
        return
    table = Table(title=f"usage {report.first_day} to {report.last_day} (UTC) by {report.by}",
                  title_justify="left", box=None, pad_edge=False, header_style="bold")
    for column, justify in (("DAY", "left"), (by.upper(), "left"), ("GROUP", "left"), ("CPU-CORE-H", "right"),
                            ("GPU-H", "right"), ("MEM-GIB-H", "right"), ("SESSIONS", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in report.rows:
        table.add_row(str(row.day), escape(row.holder), escape(row.resource_group), f"{row.cpu_core_hours:.2f}",
                      f"{row.gpu_hours:.2f}", f"{row.mem_gib_hours:.2f}", str(row.sessions))
    totals = report.totals
    table.add_row("total", "", "", f"{totals.cpu_core_hours:.2f}", f"{totals.gpu_hours:.2f}",
                  f"{totals.mem_gib_hours:.2f}", str(totals.sessions), style="bold")
    console().print(table)
