"""``corral project …`` (membership) and ``corral admin project …`` (creating projects).

Members of a project read and write its vfolders (``corral vfolder create NAME
--project P``); its managers also rename, delete and share them and manage
the members.
"""
from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from ..api import AsyncCorralClient
from ..models import Project
from .context import call_api, cli_state, note, run_async
from .options import json_option
from .output import console, print_json
from .resource_policy_cmd import positive_weight, settings_body


def _client() -> AsyncCorralClient:
    return cli_state().client()


def _when(project: Project) -> str:
    return project.created_at.astimezone().strftime("%Y-%m-%d %H:%M") if project.created_at else "-"


@click.group("project")
def project_group() -> None:
    """Projects: members share the project's vfolders (`corral vfolder create NAME --project P`)."""


@project_group.command("ls")
@json_option
def ls_command(as_json: bool) -> None:
    """Your projects (every project, for admins)."""
    projects = call_api(lambda client: client.list_projects())
    if as_json:
        print_json([p.raw for p in projects])
        return
    if not projects:
        note("you are in no project (an admin adds you: `corral project add-member PROJECT USER`)")
        return
    table = Table(box=None, header_style="bold")
    for column in ("NAME", "YOUR ROLE", "MEMBERS", "DESCRIPTION", "CREATED"):
        table.add_column(column)
    for project in projects:
        table.add_row(escape(project.name), project.role or "-", str(project.member_count),
                      escape(project.description) or "-", _when(project))
    console().print(table)


@project_group.command("info")
@click.argument("name")
@json_option
def info_command(name: str, as_json: bool) -> None:
    """A project's members and vfolders."""
    project = call_api(lambda client: client.get_project(name))
    if as_json:
        print_json(project.raw)
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("name", escape(project.name))
    grid.add_row("id", project.id)
    if project.description:
        grid.add_row("description", escape(project.description))
    grid.add_row("your role", project.role or "- (admin)")
    grid.add_row("created", _when(project))
    members = ", ".join(f"{m.username} ({m.role})" for m in project.members) or "nobody"
    grid.add_row("members", escape(members))
    grid.add_row("vfolders", escape(", ".join(v.get("name", "") for v in project.vfolders) or "none"))
    console().print(grid)


@project_group.command("add-member")
@click.argument("name")
@click.argument("username")
@click.option("--manager", is_flag=True, help="Also manages the project's vfolders and members.")
def add_member_command(name: str, username: str, manager: bool) -> None:
    """Add USERNAME to project NAME (admins and the project's managers)."""
    role = "manager" if manager else "member"

    project = call_api(lambda client: client.add_project_member(name, username, role))
    click.echo(f"{username} is now a {role} of project {project.name}")


@project_group.command("set-role")
@click.argument("name")
@click.argument("username")
@click.argument("role", type=click.Choice(["member", "manager"]))
def set_role_command(name: str, username: str, role: str) -> None:
    """Make a member of project NAME a plain `member` or a `manager`."""
    project = call_api(lambda client: client.set_project_member_role(name, username, role))
    click.echo(f"{username} is now a {role} of project {project.name}")


@project_group.command("remove-member")
@click.argument("name")
@click.argument("username")
def remove_member_command(name: str, username: str) -> None:
    """Remove USERNAME from project NAME (or, as that user, leave it).

    They lose access to the project's vfolders at once; storage tokens
    already issued expire within minutes, running sessions keep their mounts.
    """
    async def remove() -> None:
        async with _client() as client:
            await client.remove_project_member(name, username)

    run_async(remove())
    click.echo(f"{username} is no longer a member of project {name}")


@click.group("project")
def admin_project_group() -> None:
    """Create projects (then add members with `corral project add-member`)."""


@admin_project_group.command("create")
@click.argument("name")
@click.option("--description", default="", help="What the project is for.")
@json_option
def admin_create_command(name: str, description: str, as_json: bool) -> None:
    """Create project NAME."""
    project = call_api(lambda client: client.create_project(name, description))
    if as_json:
        print_json(project.raw)
        return
    click.echo(f"project {project.name} ({project.id}) created; add members with "
               f"`corral project add-member {project.name} USER [--manager]`")


@admin_project_group.command("set")
@click.argument("name")
@click.option("--policy", default=None, metavar="POLICY|none", help="The resource policy its sessions are held to.")
@click.option("--fair-share", default=None, callback=positive_weight, metavar="WEIGHT",
              help="Its fair-share weight, > 0 (1 by default).")
@click.option("--description", default=None, help="What the project is for.")
@json_option
def admin_set_command(name: str, policy: str | None, fair_share: float | None, description: str | None,
                      as_json: bool) -> None:
    """Set project NAME's resource policy (`none` clears it), fair-share weight or description."""
    body = settings_body(resource_policy=policy)
    if fair_share is not None:
        body["fair_share"] = fair_share
    if description is not None:
        body["description"] = description
    if not body:
        raise click.UsageError("nothing to change: give --policy, --fair-share or --description")
    project = call_api(lambda client: client.update_project(name, **body))
    if as_json:
        print_json(project.raw)
        return
    click.echo(f"project {project.name}: policy {project.resource_policy or 'none'}, "
               f"fair share {project.fair_share:g}")


@admin_project_group.command("ls")
@json_option
def admin_ls_command(as_json: bool) -> None:
    """Every project (same as `corral project ls` for an admin)."""
    ctx = click.get_current_context()
    ctx.invoke(ls_command, as_json=as_json)
