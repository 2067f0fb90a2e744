"""``python -m bot topics ...``: full recluster (with progress) and incremental assignment."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.output import fail
from bot.config import get_settings
from bot.db import migrate, session_scope
from bot.topics.messages import ScopeError, check_scope
from bot.topics.tables import SCOPES

topics_app = typer.Typer(help="Topics: shopper messages clustered by meaning, for the lead console",
                         no_args_is_help=True)


def _scopes(scope: str | None) -> list[str]:
    try:
        return [check_scope(scope)] if scope else list(SCOPES)
    except ScopeError as exc:
        fail(str(exc), 2)


@topics_app.command("recluster")
def recluster_cmd(scope: Annotated[str | None, typer.Option(
        "--scope", help="all | fallback (default: both)")] = None) -> None:
    """Cluster every shopper message of the scope again and replace its topics (shows progress on a terminal)."""
    from bot.search.index import console_progress  # FAISS and NumPy, as the clustering
    from bot.topics.recluster import recluster

    settings = get_settings()
    scopes = _scopes(scope)
    migrate()
    for name in scopes:
        with console_progress() as progress, session_scope() as session:
            def report(step: str, name: str = name) -> None:
                progress.step(f"{name}: {step}")

            result = recluster(session, settings.tracker_url, name, settings.inbox_confidence_threshold,
                               progress=report)
        typer.echo(f"topics {result.scope}: {result.messages} messages, {result.topics} topics, "
                   f"{result.noise} noise (run {result.run_id})")


@topics_app.command("assign")
def assign_cmd(scope: Annotated[str | None, typer.Option("--scope", help="all | fallback (default: both)")]
               = None) -> None:
    """Join messages that arrived since the last run to the nearest topic (no recluster)."""
    from bot.topics.assign import NoRun, assign_new  # NumPy

    settings = get_settings()
    scopes = _scopes(scope)
    migrate()
    for name in scopes:
        try:
            with session_scope() as session:
                result = assign_new(session, settings.tracker_url, name, settings.inbox_confidence_threshold)
        except NoRun as exc:
            fail(str(exc))
        typer.echo(f"topics {result.scope}: {result.messages} new messages, {result.assigned} joined a topic, "
                   f"{result.unassigned} left for the next recluster")
