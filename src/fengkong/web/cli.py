"""`fengkong user ...`: console logins. The password is generated, printed once and stored only as an scrypt hash."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from fengkong.cli import AsJson, DatabaseUrl, _engine, _fail, err, out
from fengkong.domain import Role
from fengkong.errors import FengkongError

user_app: typer.Typer = typer.Typer(help="Console users (sign-in to /console).", no_args_is_help=True)


@user_app.command("create")
def user_create(
    name: Annotated[str, typer.Argument(help="login name: 2-64 letters, digits, '.', '_' or '-'")],
    role: Annotated[Role, typer.Option(help="what the user may see and do (see fengkong.security)")],
    database_url: DatabaseUrl = None,
) -> None:
    """Create a console user. The generated password is printed once, as the last line."""
    try:
        password = _engine(database_url).console.create_user(name, role, actor="cli")
    except FengkongError as exc:
        _fail(exc)
    err.print(f"created console user {name.strip().lower()} ({role.value}); the password cannot be shown again:")
    print(password)  # the contract: the password alone on the last line of standard output


@user_app.command("password")
def user_password(
    name: Annotated[str, typer.Argument(help="the user whose password is replaced")],
    database_url: DatabaseUrl = None,
) -> None:
    """Replace a user's password with a new generated one (printed as the last line); their sessions end."""
    try:
        password = _engine(database_url).console.reset_password(name, actor="cli")
    except FengkongError as exc:
        _fail(exc)
    err.print("new password (cannot be shown again):")
    print(password)  # printed once, as for create


@user_app.command("disable")
def user_disable(
    name: Annotated[str, typer.Argument(help="the user to disable")],
    database_url: DatabaseUrl = None,
) -> None:
    """Disable a user: they cannot sign in, and their open sessions end at once."""
    try:
        _engine(database_url).console.disable_user(name, actor="cli")
    except FengkongError as exc:
        _fail(exc)
    out.print(f"disabled {name.strip().lower()}")


@user_app.command("list")
def user_list(as_json: AsJson = False, database_url: DatabaseUrl = None) -> None:
    """List console users (never their passwords)."""
    users = _engine(database_url).console.list_users()
    if as_json:
        rows = [
            {"name": u.name, "role": u.role.value, "created_at": u.created_at.isoformat(), "disabled": u.disabled}
            for u in users
        ]
        out.print_json(json.dumps(rows))
        return
    table = Table("name", "role", "created", "disabled")
    for u in users:
        table.add_row(u.name, u.role.value, u.created_at.strftime("%Y-%m-%d %H:%M"), "yes" if u.disabled else "")
    out.print(table)
