"""``python -m bot privacy ...``: export and erase a customer's data, apply the retention period."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.output import fail
from bot.clock import utcnow
from bot.config import get_settings
from bot.db import migrate, session_scope
from bot.privacy.erase import erase_customer, reclaim_space
from bot.privacy.export import UnknownSubject, export_customer, find_subject
from bot.privacy.retention import apply_retention
from bot.privacy.tables import EXPORT, record

privacy_app = typer.Typer(help="Customers' personal data: export, erasure, retention", no_args_is_help=True)


def _reclaim(*urls: str) -> dict[str, str]:
    """SQLite: checkpoint and vacuum each database once, so deleted personal data leaves the files; a warning
    for each that could not be (PostgreSQL: what the operator must run). Database name -> what was done."""
    reclaimed = [reclaim_space(url) for url in dict.fromkeys(urls)]
    for item in reclaimed:
        if not item.done:
            typer.echo(f"warning: {item.database}: {item.note}", err=True)
    return {item.database: item.note for item in reclaimed}


@privacy_app.command("export")
def export_cmd(
    email: str,
    out: Annotated[Path | None, typer.Option("--out", help="write the JSON here (default: standard output)")] = None,
) -> None:
    """Write everything held about the customer with EMAIL as JSON (logged, without the email)."""
    settings = get_settings()
    migrate()
    try:
        with session_scope() as session:
            document = export_customer(session, email, settings.tracker_url)
            counts = {"orders": len(document["orders"]), "tickets": len(document["tickets"]),
                      "conversations": len(document["conversations"]),
                      "events": sum(len(c["events"]) for c in document["conversations"])}
            text = json.dumps(document, ensure_ascii=False, indent=2, sort_keys=False) + "\n"
            if out is not None:
                tmp = out.with_name(out.name + ".tmp")
                out.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # personal data: owner only
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(text)
                tmp.replace(out)
            record(session, EXPORT, counts, at=utcnow(), email=email)
    except (UnknownSubject, ValueError) as exc:
        fail(str(exc))
    if out is None:
        sys.stdout.write(text)
    else:
        typer.echo(f"exported {counts['orders']} order(s), {counts['tickets']} ticket(s), "
                   f"{counts['conversations']} conversation(s) ({counts['events']} events) to {out}", err=True)


@privacy_app.command("erase")
def erase_cmd(
    email: str,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
) -> None:
    """Erase the personal data of the customer with EMAIL (orders stay, anonymised); logged."""
    settings = get_settings()
    migrate()
    if not yes:
        try:
            with session_scope() as session:
                subject = find_subject(session, email, settings.tracker_url)
                summary = (f"{'an account, ' if subject.customer else ''}{len(subject.orders)} order(s), "
                           f"{len(subject.tickets)} ticket(s), {len(subject.conversations)} conversation(s)")
        except UnknownSubject:
            summary = "nothing found (perhaps erased before)"
        except ValueError as exc:
            fail(str(exc))
        typer.confirm(f"Erase the personal data of {email.strip()}: {summary}? This cannot be undone",
                      abort=True)
    try:
        with session_scope() as session:
            result = erase_customer(session, email, settings.tracker_url)
    except (UnknownSubject, ValueError) as exc:
        fail(str(exc))
    # the deleted rows' bytes: out of SQLite's free pages and write-ahead log (also after a repeated erase,
    # which finishes what an interrupted or busy earlier one left)
    reclaimed = _reclaim(settings.database_url, settings.tracker_url)
    if result.already_erased:
        typer.echo("already erased: nothing is held about that address any more (logged)")
        return
    typer.echo(json.dumps({"erased": result.counts,
                           "reclaimed": reclaimed}, sort_keys=True))


@privacy_app.command("retention")
def retention_cmd(
    days: Annotated[int | None, typer.Option(
        "--days", min=0, help="age in days (default: SHOP_RETENTION_DAYS; 0 keeps everything)")] = None,
) -> None:
    """Delete conversations, unlabelled NLU inbox messages and resolved tickets older than the retention period."""
    settings = get_settings()
    days = settings.retention_days if days is None else days
    migrate()
    with session_scope() as session:
        result = apply_retention(session, settings.tracker_url, days)
    if result.cutoff is None:
        typer.echo("retention is off (0 days): nothing deleted")
        return
    # what retention deleted is personal data too: out of SQLite's free pages and write-ahead log
    reclaimed = _reclaim(settings.database_url, settings.tracker_url) if any(result.counts.values()) else {}
    typer.echo(json.dumps({"cutoff": result.cutoff.isoformat(timespec="seconds"), "days": days,
                           "deleted": result.counts, "reclaimed": reclaimed}, sort_keys=True))
