"""``python -m bot crm ...``: customer profiles (RFM segment, lifetime value, preferences)."""

from __future__ import annotations

from collections import Counter

import typer
from sqlalchemy import select

from bot.cli.output import fail
from bot.db import migrate, session_scope
from bot.shop import crm
from bot.shop.tables import CrmProfile

crm_app = typer.Typer(help="Customer profiles: RFM segment, lifetime value, preferences", no_args_is_help=True)


@crm_app.command("show")
def crm_show(email: str) -> None:
    """Print a customer's profile: contact, segment, R/F/M, lifetime value, orders, preferences, consent."""
    migrate()
    try:
        with session_scope() as session:
            view = crm.profile_by_email(session, email)
    except crm.UnknownCustomer as exc:
        fail(str(exc), 2)
    typer.echo(crm.format_profile(view))


@crm_app.command("refresh")
def crm_refresh() -> None:
    """Recompute every customer's RFM scores, segment and lifetime value from their orders."""
    migrate()
    with session_scope() as session:
        count = crm.refresh_profiles(session)
        segments = Counter(session.scalars(select(CrmProfile.segment)))
    summary = ", ".join(f"{name} {segments[name]}" for name in crm.SEGMENTS if segments[name])
    typer.echo(f"crm profiles: {count} refreshed ({summary or 'no customers'})")
