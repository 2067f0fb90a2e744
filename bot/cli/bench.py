"""``python -m bot bench ...``: the benchmarks that print numbers (their code is the top-level ``benchmarks``
package, loaded by the command that runs one, as are NumPy, FAISS and the encoder)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from bot import PROJECT_ROOT
from bot.cli.output import fail, print_json
from bot.config import get_settings
from bot.db import get_engine, migrate, session_scope
from bot.escalation.dialogues import DatasetError
from bot.nlu.evaluation_sets import EvaluationSetError
from bot.search.relevance_sets import RelevanceSetError
from bot.topics.labelled import LabelledSetError
from bot.training import registry

if TYPE_CHECKING:
    from bot.search.index import ProductIndex

bench_app = typer.Typer(help="Benchmarks that print numbers", no_args_is_help=True)


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
    from benchmarks.search_relevance import BASELINES, MODES, benchmark

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
            fail("no relevance set is here (give one with --dataset)", 2)
    try:
        results, weights = benchmark(dataset, catalogs, pad_to=pad_to, tune_weights=tune, sweep_weights=sweep)
    except (RelevanceSetError, FileNotFoundError) as exc:
        fail(str(exc), 2)
    for result in results:
        print_json(result.as_dict())
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
    from benchmarks.search_ann import main

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
    from benchmarks.escalation import run
    from benchmarks.sentiment import compare_moods
    from bot.escalation.model import ModelError  # NumPy

    if nlu not in ("rasa", "none"):
        fail(f"--nlu must be rasa or none, got {nlu!r}", 2)
    try:
        if moods:
            if not dataset or len(dataset) != 1:
                raise ValueError("--moods needs one --dataset")
            rows = compare_moods(dataset[0], nlu, model)
        else:
            rows = run(dataset or None, nlu, escalation_model, model, rate, chart)
    except (DatasetError, ModelError, FileNotFoundError, ValueError, RuntimeError) as exc:
        fail(str(exc), 2)
    for row in rows:
        print_json(row)


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
    from benchmarks.nlu import default_root, run

    if model is not None and not model.exists():
        fail(f"no model at {model}", 2)
    try:
        result = run(default_root(), model=model, calibrate_on_dev=calibrate, max_rejection=max_rejection)
    except EvaluationSetError as exc:
        fail(str(exc), 2)
    print_json(result)


@bench_app.command("topics")
def bench_topics(
    scale: Annotated[bool, typer.Option(help="also time 100,000 messages")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document instead of a table")] = False,
) -> None:
    """Topic clustering: ARI, NMI and noise share on our labelled test messages, and the time to cluster
    10,000 (with --scale also 100,000) messages."""
    from benchmarks.topics import main

    try:
        main(scale, as_json)
    except LabelledSetError as exc:
        fail(str(exc), 2)


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
    from benchmarks.load import run

    settings = get_settings()
    model = None
    if url is None and settings.rasa_model is None:
        migrate()
        with session_scope() as session:
            model = registry.serving_model(session)  # what `serve` would run (None: models/rasa/shop.tar.gz)
    elif url is None:
        model = settings.rasa_model
    try:
        result = run(shoppers, minutes, url, transport, seed, settings.database_url, model)
    except (ValueError, RuntimeError) as exc:
        fail(str(exc), 2)
    print_json(result)
    if result["errors"]:
        raise typer.Exit(1)


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
    from benchmarks.recommend import NoOrders, benchmark
    from bot.shop.recommend import RecommendConfig  # NumPy

    url = database or get_settings().database_url
    migrate(url)
    with Session(get_engine(url)) as session:
        vectors = None if no_vectors else _index_for(session, url, index_dir).dense
        config = RecommendConfig(half_life_days=half_life_days, min_support=min_support)
        try:
            result = benchmark(session, vectors, k=k, config=config, ignore_consent=ignore_consent)
        except NoOrders as exc:
            fail(str(exc), 2)
    print_json(result)


def _index_for(session: Session, url: str, index_dir: Path | None = None) -> ProductIndex:
    """The search index for this database: ``index_dir``'s or the served one, brought up to date (in memory
    only when the database is not the configured one, so the served index is never overwritten)."""
    from bot.search import index  # FAISS and NumPy
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
