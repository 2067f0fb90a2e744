"""``python -m bot users ...``: the agent inbox accounts."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bot.auth import users
from bot.cli.output import fail
from bot.db import migrate, session_scope

users_app = typer.Typer(help="Agent inbox accounts (agents and leads)", no_args_is_help=True)


@users_app.command("add")
def users_add(
    username: str,
    role: Annotated[str, typer.Option(help="agent | lead (a lead can also transfer and resolve others' tickets)")],
    name: Annotated[str | None, typer.Option(help="display name the shopper sees (default: the username)")] = None,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="read the password from the first line of stdin instead of prompting")] = False,
) -> None:
    """Create an inbox account; the password is hashed with argon2id (at least 10 characters)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    migrate()
    try:
        with session_scope() as session:
            user = users.create_user(session, username, password, role, name)
    except ValueError as exc:  # UserExists too
        fail(str(exc), 2)
    typer.echo(f"user {user.username} ({user.role}, shown as {user.name!r}) created")


@users_app.command("list")
def users_list() -> None:
    """Print every inbox account: username, role, display name, active, created."""
    migrate()
    with session_scope() as session:
        accounts = users.list_users(session)
    if not accounts:
        typer.echo("no users yet: python -m bot users add USERNAME --role agent")
        return
    typer.echo(f"{'username':<24} {'role':<6} {'name':<28} {'active':<6} created")
    for u in accounts:
        typer.echo(f"{u.username:<24} {u.role:<6} {u.name:<28} {'yes' if u.active else 'no':<6} "
                   f"{u.created_at:%Y-%m-%d %H:%M}")
