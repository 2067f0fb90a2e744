"""``python -m bot``: data set-up, training, serving and benchmarks."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from bot.convtests.commands import convtests_app
from bot.privacy.commands import privacy_app
from bot.topics.commands import topics_app
from bot.training.commands import model_app

app = typer.Typer(help="shop-assistant command line", no_args_is_help=True, add_completion=False)
catalog_app = typer.Typer(help="Product catalog", no_args_is_help=True)
search_app = typer.Typer(help="Search index", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print numbers", no_args_is_help=True)
shop_app = typer.Typer(help="Shop data: demo customers and orders", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
app.add_typer(search_app, name="search")
app.add_typer(model_app, name="model")
app.add_typer(bench_app, name="bench")
app.add_typer(shop_app, name="shop")
escalation_app = typer.Typer(help="The model that decides when the bot hands over to a person", no_args_is_help=True)
app.add_typer(escalation_app, name="escalation")
crm_app = typer.Typer(help="Customer profiles: RFM segment, lifetime value, preferences", no_args_is_help=True)
app.add_typer(crm_app, name="crm")
users_app = typer.Typer(help="Agent inbox accounts (agents and leads)", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(privacy_app, name="privacy")
app.add_typer(topics_app, name="topics")
app.add_typer(convtests_app, name="convtests")


@app.command("migrate")
def migrate_cmd() -> None:
    """Bring the database schema up to date (Alembic)."""
    from bot.db import migrate

    migrate()
    typer.echo("database schema is up to date")


@catalog_app.command("demo")
def catalog_demo(count: Annotated[int | None, typer.Option(help="number of products")] = None,
                 seed: int = 7) -> None:
    """Generate the deterministic demo catalog and upsert it (safe to run again)."""
    from bot.catalog import demo
    from bot.catalog.store import upsert_products
    from bot.config import get_settings
    from bot.db import migrate, session_scope

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
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from bot.catalog import importers
    from bot.catalog.store import UpsertStats, upsert_products
    from bot.db import migrate, session_scope

    try:
        reader = importers.read(path, importers.Format(fmt), importers.parse_mapping(mapping or []), csv_escape)
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
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
            else:
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


def _write_lookups(out: Path | None = None) -> None:
    from bot import PROJECT_ROOT
    from bot.catalog.vocabulary import LOOKUPS_FILE, catalog_vocabulary, write_rasa_lookups
    from bot.db import session_scope

    out = out or PROJECT_ROOT / LOOKUPS_FILE
    with session_scope() as session:
        vocabulary = catalog_vocabulary(session)
    if not any(vocabulary.values()):
        typer.echo("error: the catalog is empty; import products or run `python -m bot catalog demo` first", err=True)
        raise typer.Exit(1)
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
    from bot.db import migrate

    migrate()
    _write_lookups(out)


@search_app.command("build")
def search_build(force: bool = False) -> None:
    """Build the FAISS index, or reuse it when the catalog did not change."""
    from sqlalchemy.orm import Session

    from bot.config import get_settings
    from bot.db import get_engine
    from bot.search import index
    from bot.search.embeddings import get_embedder

    directory = get_settings().search_index_dir
    # Each step with its count on the terminal (the embedding takes minutes on a large catalog); nothing
    # when the output is no terminal.
    with index.console_progress() as progress, Session(get_engine()) as session:
        progress.step("loading the embedding model")
        embedder = get_embedder()
        if force:
            progress.step("reading the catalog")
            built = index.ProductIndex.build(index.catalog_texts(session), embedder, progress=progress)
            progress.step("saving the index")
            built.save(directory)
        else:
            built = index.ensure(session, embedder, directory, progress=progress)
    typer.echo(f"search index: {built.size} products in {directory}")


@shop_app.command("demo")
def shop_demo(seed: int = 7, customers: Annotated[int, typer.Option(help="number of demo customers")] = 60) -> None:
    """Create the deterministic demo customers and orders (every order state) over the catalog; safe to run
    again (what exists is left alone). Prints the showcase customers to try the order flows with."""
    from bot.db import migrate, session_scope
    from bot.shop.demo_orders import demo_customers, load_demo_orders

    migrate()
    try:
        with session_scope() as session:
            stats = load_demo_orders(session, seed=seed, customers=customers)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"demo orders: {stats.customers_added} customers and {stats.orders_added} orders added, "
               f"{stats.orders_existing} orders already there")
    with session_scope() as session:
        showcase = demo_customers(session)
    typer.echo("demo customers to try the order flows with (sign in as them on the demo page, or as a guest give "
               "the order number and the email or postcode):")
    for c in showcase:
        who = f"{c.name} <{c.email}>" + ("" if c.id is not None else " (guest)")
        typer.echo(f"  {c.order_number} [{c.status}] {who}, postcode {c.postcode}: {c.note}")


@app.command("setup-data")
def setup_data() -> None:
    """Everything `make run` needs besides the Rasa model: schema, demo catalog (when empty), demo customers
    and orders (when there are none), the seed conversation tests (when there are none), Rasa lookup tables
    from the catalog, search index."""
    from sqlalchemy import func, select

    from bot.catalog.store import product_count
    from bot.convtests.seed import seed_if_empty as seed_conversation_tests
    from bot.db import migrate, session_scope
    from bot.shop.models import Order

    migrate()
    with session_scope() as session:
        empty = product_count(session) == 0
    if empty:
        catalog_demo(count=None, seed=7)
    with session_scope() as session:
        no_orders = not session.scalar(select(func.count(Order.id)))
    if no_orders:
        shop_demo(seed=7, customers=60)
    with session_scope() as session:  # a fresh install's gate has our own conversations to hold (once only:
        seed_conversation_tests(session)  # a test a lead deleted stays deleted)
    _write_lookups()
    search_build(force=False)


@app.command("serve")
def serve() -> None:
    """Start Rasa, the action server and the gateway together (see README for ports)."""
    from bot.clock import utcnow
    from bot.config import get_settings
    from bot.db import migrate, session_scope
    from bot.devstack import StackConfig
    from bot.devstack import serve as run_stack
    from bot.training import registry
    from bot.training.workspace import Workspace

    migrate()
    config = StackConfig()
    with session_scope() as session:
        registry.ensure_baseline(session, Workspace.from_settings(get_settings()), utcnow())
        active = registry.serving_model(session)
    if active is not None and "RASA_MODEL" not in os.environ:
        config.model = active  # the version a lead activated last (models/rasa/versions/vN)
    raise typer.Exit(run_stack(config))


@bench_app.command("search")
def bench_search(
    dataset: Annotated[list[Path] | None, typer.Option(
        help="a relevance set folder (repeat for several); default: ../shared/datasets/search-dev and every "
             "set under benchmarks/search")] = None,
    catalogs: Annotated[Path | None, typer.Option(
        help="where sets with a set.json find their catalog file; default: ../shared/datasets/catalogs")] = None,
    tune: Annotated[bool, typer.Option(help="choose fixed fusion weights on all the sets together first "
                                             "(instead of each catalog's calibration)")] = False,
    sweep: Annotated[bool, typer.Option(help="also report the hybrid under fixed dense weights 0.3-0.75")] = False,
    pad_to: Annotated[int, typer.Option(help="add demo products as distractors up to this many")] = 0,
) -> None:
    """nDCG@10, recall@100, index build time and query latency of the hybrid search and of BM25F, dense
    and reciprocal-rank fusion, on each set: one JSON line per set, then a table (on stderr)."""
    from rich.console import Console
    from rich.table import Table

    from bot import PROJECT_ROOT
    from bot.search.benchmark import BASELINES, MODES, benchmark
    from bot.search.relevance_sets import RelevanceSetError

    shared = PROJECT_ROOT.parent / "shared" / "datasets"
    catalogs = catalogs or shared / "catalogs"
    if not dataset:  # every set whose data is here; the others are named and skipped
        dataset = []
        for folder in [shared / "search-dev", *sorted((PROJECT_ROOT / "benchmarks" / "search").iterdir())]:
            needs = catalogs if (folder / "set.json").exists() else folder
            if needs.is_dir():
                dataset.append(folder)
            else:
                typer.echo(f"skipped {folder.name}: {needs} is not here", err=True)
        if not dataset:
            typer.echo("error: no relevance set is here (give one with --dataset)", err=True)
            raise typer.Exit(2)
    try:
        results, weights = benchmark(dataset, catalogs, pad_to=pad_to, tune_weights=tune, sweep_weights=sweep)
    except (RelevanceSetError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for result in results:
        json.dump(result.as_dict(), sys.stdout)
        sys.stdout.write("\n")
    table = Table(title="bench search (fusion: " + ("calibrated per catalog" if weights is None else
                  f"tuned on these sets: dense {weights.dense}, numbers {weights.numeric_dense}, "
                  f"depth {weights.depth}") + ")")
    for column in ("set", "products", "queries", *(f"{m} nDCG@10" for m in MODES), "margin", "dense w",
                   "hybrid R@100", "build s", "p50 ms", "p95 ms"):
        table.add_column(column, justify="left" if column == "set" else "right")
    for r in results:
        best = max(r.modes[b]["ndcg@10"] for b in BASELINES)
        table.add_row(r.name, str(r.products), str(r.queries),
                      *(f"{'[bold]' if m == 'hybrid' or r.modes[m]['ndcg@10'] == best else ''}"
                        f"{r.modes[m]['ndcg@10']:.4f}" for m in MODES),
                      f"{r.margin:+.4f}", f"{r.dense_weight:.2f}", str(r.modes["hybrid"]["recall@100"]),
                      f"{r.index_build_s:.0f}",
                      str(r.modes["hybrid"]["p50_ms"]), str(r.modes["hybrid"]["p95_ms"]))
    Console(stderr=True, width=200).print(table)


@bench_app.command("ann", add_help_option=False,
                   context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench_ann(ctx: typer.Context) -> None:
    """Exact vs IVF vector index at catalog sizes up to millions (see `bench ann --help`)."""
    from bot.search.ann_benchmark import main

    main(list(ctx.args))


@bench_app.command("escalation")
def bench_escalation(
    dataset: Annotated[list[Path] | None, typer.Option(
        help='labelled dialogues, JSON lines: {"id", "segment"?, "turns": [{"role": "user"|"bot", "text", '
             '"label": "escalate"|"ok"}]}; repeat for several files (default: our test split, '
             'data/escalation/test-*.jsonl)')] = None,
    nlu: Annotated[str, typer.Option(help="rasa: intents and embeddings from the trained Rasa model (batched); "
                                          "none: no intents, embeddings from the same encoder here")] = "rasa",
    model: Annotated[Path | None, typer.Option(help="Rasa model (default: models/rasa/shop.tar.gz)")] = None,
    escalation_model: Annotated[Path | None, typer.Option(help="escalation model JSON (default: the bot's)")]
    = None,
    rate: Annotated[float | None, typer.Option(min=0.0, max=0.5, help="target false-escalation rate (default: "
                                                                    "the policy file's, 5%)")] = None,
    chart: Annotated[Path, typer.Option(help="where the precision-recall chart (PNG) goes")]
    = Path("results/escalation_pr.png"),
    moods: Annotated[bool, typer.Option(help="compare the old policy's mood functions instead (one JSON line "
                                             "each; needs --dataset)")] = False,
) -> None:
    """The escalation model next to the old sentiment-only policy: precision, recall, F1, false-escalation rate,
    turns late, per-message cost, and a precision-recall chart (one JSON line per policy)."""
    from bot.escalation.benchmark import run
    from bot.escalation.dialogues import DatasetError
    from bot.escalation.model import ModelError
    from bot.sentiment_bench import compare_moods

    if nlu not in ("rasa", "none"):
        typer.echo(f"error: --nlu must be rasa or none, got {nlu!r}", err=True)
        raise typer.Exit(2)
    try:
        if moods:
            if not dataset or len(dataset) != 1:
                raise ValueError("--moods needs one --dataset")
            rows = compare_moods(dataset[0], nlu, model)
        else:
            rows = run(dataset or None, nlu, escalation_model, model, rate, chart)
    except (DatasetError, ModelError, FileNotFoundError, ValueError, RuntimeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for row in rows:
        json.dump(row, sys.stdout)
        sys.stdout.write("\n")


@escalation_app.command("train")
def escalation_train(
    data: Annotated[Path | None, typer.Option(help="folder with train-*.jsonl and dev.jsonl (default: "
                                                   "data/escalation)")] = None,
    out: Annotated[Path | None, typer.Option(help="where the model goes (default: the one the bot uses, "
                                                  "bot/escalation/escalation_model.json)")] = None,
    c: Annotated[float, typer.Option(min=1e-4, help="inverse regularisation of the logistic regression")] = 0.5,
) -> None:
    """Fit the escalation model on the train dialogues and calibrate it on the dev dialogues (JSON report)."""
    from bot.escalation.dialogues import DatasetError
    from bot.escalation.training import train

    try:
        _, report = train(data, out, c)
    except (DatasetError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


@bench_app.command("nlu")
def bench_nlu(
    model: Annotated[Path | None, typer.Option(help="score this trained model instead of training one from scratch")]
    = None,
    calibrate: Annotated[bool, typer.Option(help="also choose the out-of-scope and fallback thresholds on the "
                                                 "dev split")] = False,
    max_rejection: Annotated[float, typer.Option(min=0.0, max=1.0, help="with --calibrate: the in-scope rejection "
                                                                       "the thresholds may cost on dev")] = 0.02,
) -> None:
    """Train the model from scratch and print one JSON line: test and informal scores, off-topic recall,
    in-scope false rejection, parse p50/p95, training time."""
    from bot.nlu.benchmark import default_root, run
    from bot.nlu.evaluation_sets import EvaluationSetError

    if model is not None and not model.exists():
        typer.echo(f"error: no model at {model}", err=True)
        raise typer.Exit(2)
    try:
        result = run(default_root(), model=model, calibrate_on_dev=calibrate, max_rejection=max_rejection)
    except EvaluationSetError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


@bench_app.command("topics")
def bench_topics(
    scale: Annotated[bool, typer.Option(help="also time 100,000 messages")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document instead of a table")] = False,
) -> None:
    """Topic clustering: ARI, NMI and noise share on our labelled test messages, and the time to cluster
    10,000 (with --scale also 100,000) messages."""
    from bot.topics.benchmark import main
    from bot.topics.labelled import LabelledSetError

    try:
        main(scale, as_json)
    except LabelledSetError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@bench_app.command("load")
def bench_load(
    shoppers: Annotated[int, typer.Option(help="simulated shoppers chatting at once")] = 50,
    minutes: Annotated[float, typer.Option(help="how long they chat (measured, after a short warm-up)")] = 5.0,
    url: Annotated[str | None, typer.Option(help="gateway to load (default: start the stack on free ports, "
                                                 "with the served model, and stop it afterwards)")] = None,
    transport: Annotated[str, typer.Option(help="ws: the widget's websocket; http: POST /api/chat")] = "ws",
    seed: int = 7,
) -> None:
    """Shoppers chat through the gateway (search, refine, order tracking, FAQ) with 1-3 s think time; prints
    turn latency p50/p95/p99, throughput and errors per kind as one JSON line."""
    from bot.config import get_settings
    from bot.loadbench import run

    model = None
    if url is None and "RASA_MODEL" not in os.environ:
        from bot.db import migrate, session_scope
        from bot.training import registry

        migrate()
        with session_scope() as session:
            model = registry.serving_model(session)  # what `serve` would run (None: models/rasa/shop.tar.gz)
    elif url is None:
        model = Path(os.environ["RASA_MODEL"])
    try:
        result = run(shoppers, minutes, url, transport, seed, get_settings().database_url, model)
    except (ValueError, RuntimeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    if result["errors"]:
        raise typer.Exit(1)


@crm_app.command("show")
def crm_show(email: str) -> None:
    """Print a customer's profile: contact, segment, R/F/M, lifetime value, orders, preferences, consent."""
    from bot.db import migrate, session_scope
    from bot.shop import crm

    migrate()
    try:
        with session_scope() as session:
            view = crm.profile_by_email(session, email)
    except crm.UnknownCustomer as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(crm.format_profile(view))


@crm_app.command("refresh")
def crm_refresh() -> None:
    """Recompute every customer's RFM scores, segment and lifetime value from their orders."""
    from collections import Counter

    from sqlalchemy import select

    from bot.db import migrate, session_scope
    from bot.shop import crm
    from bot.shop.models import CrmProfile

    migrate()
    with session_scope() as session:
        count = crm.refresh_profiles(session)
        segments = Counter(session.scalars(select(CrmProfile.segment)))
    summary = ", ".join(f"{name} {segments[name]}" for name in crm.SEGMENTS if segments[name])
    typer.echo(f"crm profiles: {count} refreshed ({summary or 'no customers'})")


@bench_app.command("recommend")
def bench_recommend(
    database: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: DATABASE_URL)")] = None,
    k: Annotated[int, typer.Option(help="recommendations per customer")] = 10,
    half_life_days: Annotated[float, typer.Option(help="decay of personal history")] = 90.0,
    min_support: Annotated[int, typer.Option(help="orders a co-purchase pair needs")] = 2,
    ignore_consent: Annotated[bool, typer.Option(help="use every customer's history, consent or not")] = False,
    no_vectors: Annotated[bool, typer.Option(help="leave the embedding sources out")] = False,
    index_dir: Annotated[Path | None, typer.Option(help="search index to use (and keep up to date) for this "
                                                        "database; default: the served one")] = None,
) -> None:
    """Hold out each customer's last order; hit rate@k and coverage, blended vs popularity, as one JSON line."""
    from sqlalchemy.orm import Session

    from bot.config import get_settings
    from bot.db import get_engine, migrate
    from bot.shop.recommend import RecommendConfig
    from bot.shop.recommend_bench import NoOrders, benchmark

    url = database or get_settings().database_url
    migrate(url)
    with Session(get_engine(url)) as session:
        vectors = None if no_vectors else _index_for(session, url, index_dir).dense
        config = RecommendConfig(half_life_days=half_life_days, min_support=min_support)
        try:
            result = benchmark(session, vectors, k=k, config=config, ignore_consent=ignore_consent)
        except NoOrders as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


def _index_for(session, url: str, index_dir: Path | None = None):  # type: ignore[no-untyped-def]
    """The search index for this database: ``index_dir``'s or the served one, brought up to date (in memory
    only when the database is not the configured one, so the served index is never overwritten)."""
    from bot.config import get_settings
    from bot.search import index
    from bot.search.embeddings import get_embedder

    if index_dir is not None:
        return index.ensure(session, get_embedder(), index_dir, progress=True)
    directory = get_settings().search_index_dir
    if url == get_settings().database_url:
        return index.ensure(session, get_embedder(), directory, progress=True)
    texts = index.catalog_texts(session)
    existing = index.load(directory)
    if existing is None:
        return index.ProductIndex.build(texts, get_embedder(), progress=True)
    existing.sync(texts, get_embedder())
    return existing


@users_app.command("add")
def users_add(
    username: str,
    role: Annotated[str, typer.Option(help="agent | lead (a lead can also transfer and resolve others' tickets)")],
    name: Annotated[str | None, typer.Option(help="display name the shopper sees (default: the username)")] = None,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="read the password from the first line of stdin instead of prompting")] = False,
) -> None:
    """Create an inbox account; the password is hashed with argon2id (at least 10 characters)."""
    from bot.auth import users
    from bot.db import migrate, session_scope

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    migrate()
    try:
        with session_scope() as session:
            user = users.create_user(session, username, password, role, name)
    except ValueError as exc:  # UserExists too
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"user {user.username} ({user.role}, shown as {user.name!r}) created")


@users_app.command("list")
def users_list() -> None:
    """Print every inbox account: username, role, display name, active, created."""
    from bot.auth import users
    from bot.db import migrate, session_scope

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
