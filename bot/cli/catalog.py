"""``python -m bot catalog ...``: the demo catalog, product imports and Rasa's lookup tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from bot import PROJECT_ROOT
from bot.catalog import importers
from bot.catalog.store import UpsertStats, upsert_products
from bot.catalog.vocabulary import LOOKUPS_FILE, catalog_vocabulary, write_rasa_lookups
from bot.cli.output import fail
from bot.config import get_settings
from bot.db import migrate, session_scope
from bot.demo import catalog as demo

catalog_app = typer.Typer(help="Product catalog", no_args_is_help=True)


@catalog_app.command("demo")
def catalog_demo(count: Annotated[int | None, typer.Option(help="number of products")] = None,
                 seed: int = 7) -> None:
    """Generate the deterministic demo catalog and upsert it (safe to run again)."""
    migrate()
    with session_scope() as session:
        stats = upsert_products(session, demo.generate(count or get_settings().demo_products, seed))
    typer.echo(f"demo catalog: {stats.inserted} inserted, {stats.updated} updated, {stats.unchanged} unchanged")


@catalog_app.command("import")
def catalog_import(
    path: Path,
    fmt: Annotated[str, typer.Option("--format", help="shopify | csv | jsonl")] = "jsonl",
    mapping: Annotated[list[str] | None, typer.Option(
        "--map", help="COLUMN=FIELD, repeatable. Several columns may map to one text field (title, description, "
                      "brand, category, color, material, gender): their non-empty values are joined in --map order, "
                      "e.g. --map short_description=description --map long_description=description")] = None,
    csv_escape: Annotated[str | None, typer.Option(
        "--csv-escape", help="csv/shopify: the character that escapes a quote inside a quoted field, "
                             "e.g. '\\' for files written with \\\" instead of \"\"")] = None,
    batch: int = 500,
) -> None:
    """Import products (upsert by SKU). Bad rows are reported with their line; good rows still go in.

    A row that cannot be read whole (a short row, an unclosed quote) is rejected with the lines it spans and
    nothing of it goes in; the summary lists the lines rejected. Shopify: a product's rows become its variants
    (size, color, SKU, price, stock); the sizes and colors in stock are offered.

    Prices are optional: a row without one is imported, shown as "Price on request", not addable to a cart.
    """
    try:
        reader = importers.read(path, importers.Format(fmt), importers.parse_mapping(mapping or []), csv_escape)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc), 2)
    migrate()
    total = UpsertStats()
    rejected: list[str] = []  # the lines of each rejected record: "5", "3-5"
    pending: list[dict[str, Any]] = []

    def flush() -> None:
        with session_scope() as session:
            stats = upsert_products(session, pending)
        total.inserted += stats.inserted
        total.updated += stats.updated
        total.unchanged += stats.unchanged
        pending.clear()

    with path.open("rb") as raw:
        lines = sum(1 for _ in raw)
    # On the terminal (stderr): the line reached of the file's lines, products read and rejected so far.
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("line {task.completed:,.0f}/{task.total:,.0f}"),
                  TextColumn("{task.fields[products]:,} products, {task.fields[rejected]:,} rejected"),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"importing {path.name}", total=max(lines, 1), products=0, rejected=0)
        reached = 0
        for row in reader:
            if row.error:
                rejected.append(row.lines)
                progress.console.print(f"{path}:{row.lines}: {row.error}", style="red", highlight=False,
                                       soft_wrap=True)
            elif row.product is not None:  # a row has an error or a product
                pending.append(row.product)
            reached = max(reached, row.end_line or row.line)
            progress.update(task, completed=reached, rejected=len(rejected),
                            products=len(pending) + total.inserted + total.updated + total.unchanged)
            if len(pending) >= batch:
                flush()
        if pending:
            flush()
        progress.update(task, completed=max(lines, 1))
    rejected.sort(key=lambda lines: int(lines.split("-")[0]))
    shown = ", ".join(rejected[:20]) + (f" and {len(rejected) - 20} more" if len(rejected) > 20 else "")
    where = f" (line{'s' if len(rejected) > 1 or '-' in shown else ''} {shown})" if rejected else ""
    typer.echo(f"imported {path.name}: {total.inserted} inserted, {total.updated} updated, "
               f"{total.unchanged} unchanged, {len(rejected)} rejected{where}")
    typer.echo("run `python -m bot search build` to refresh the search index")
    if rejected:
        raise typer.Exit(1)


def write_lookups(out: Path | None = None) -> None:
    """Write Rasa's lookup tables from the catalog (``out``: default data/nlu/lookups.yml); exit 1 when empty."""
    out = out or PROJECT_ROOT / LOOKUPS_FILE
    with session_scope() as session:
        vocabulary = catalog_vocabulary(session)
    if not any(vocabulary.values()):
        fail("the catalog is empty; import products or run `python -m bot catalog demo` first")
    changed = write_rasa_lookups(vocabulary, out)
    counts = ", ".join(f"{len(values)} {name}" for name, values in vocabulary.items())
    typer.echo(f"rasa lookup tables {'updated' if changed else 'unchanged'}: {out} ({counts})")
    if changed:
        typer.echo("run `python -m bot model ensure` to retrain the Rasa model with them")


@catalog_app.command("lookups")
def catalog_lookups(
    out: Annotated[Path | None, typer.Option(help="NLU file to write (default: data/nlu/lookups.yml)")] = None,
) -> None:
    """Regenerate Rasa's lookup tables (brand, color, category, ...) from the catalog in the database."""
    migrate()
    write_lookups(out)
