"""``python -m bot convtests ...``: seed, list, export and import the saved conversation tests."""

from __future__ import annotations

from pathlib import Path

import typer

from bot.cli.output import fail
from bot.convtests.seed import import_tests, seed
from bot.convtests.store import all_tests, summaries
from bot.convtests.yaml_io import ConvTestYamlError, export_file
from bot.db import migrate, session_scope
from bot.privacy.tables import actor_name

convtests_app = typer.Typer(help="Saved conversations as regression tests: seed, list, export, import",
                            no_args_is_help=True)


@convtests_app.command("seed")
def seed_cmd() -> None:
    """Import our own test stories and the seed conversations (tests already saved by name are kept)."""
    migrate()
    with session_scope() as session:
        added = seed(session)
    typer.echo(f"{added} conversation tests added")


@convtests_app.command("list")
def list_cmd() -> None:
    """Each saved test: name, turns, source, and its last result per model version."""
    migrate()
    with session_scope() as session:
        rows = summaries(session)
    for row in rows:
        results = ", ".join(f"v{v}: {'passed' if r['passed'] else 'failed at turn ' + str(r['diverged_at'])}"
                            for v, r in row["results"].items()) or "not run"
        typer.echo(f"{row['name']}\t{len(row['turns'])} turns\t{row['source']}\t{results}")
    typer.echo(f"{len(rows)} conversation tests")


@convtests_app.command("export")
def export_cmd(file: Path) -> None:
    """Write every saved test to FILE as YAML (Rasa's test-story format)."""
    migrate()
    with session_scope() as session:
        tests = all_tests(session)
    try:
        export_file(tests, file)
    except OSError as exc:
        fail(f"{file}: cannot be written ({exc.strerror or exc})")
    typer.echo(f"{len(tests)} conversation tests written to {file}")


@convtests_app.command("import")
def import_cmd(file: Path) -> None:
    """Save the tests of the YAML FILE; names already saved are skipped (and counted)."""
    migrate()
    try:
        with session_scope() as session:
            added, skipped = import_tests(session, file, created_by=actor_name())
    except (ConvTestYamlError, ValueError) as exc:
        fail(str(exc))
    typer.echo(f"{added} conversation tests added, {skipped} skipped (a test of that name exists)")
