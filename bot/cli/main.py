"""The root command: ``migrate``, ``setup-data``, ``serve`` and every area's commands under its name."""

from __future__ import annotations

import typer
from sqlalchemy import func, select

from bot.catalog.store import product_count
from bot.cli.bench import bench_app
from bot.cli.catalog import catalog_app, catalog_demo, write_lookups
from bot.cli.convtests import convtests_app
from bot.cli.crm import crm_app
from bot.cli.escalation import escalation_app
from bot.cli.model import model_app
from bot.cli.privacy import privacy_app
from bot.cli.search import search_app, search_build
from bot.cli.shop import shop_app, shop_demo
from bot.cli.topics import topics_app
from bot.cli.users import users_app
from bot.clock import utcnow
from bot.config import get_settings
from bot.convtests.seed import seed_if_empty as seed_conversation_tests
from bot.db import migrate, session_scope
from bot.shop.tables import Order
from bot.training import registry
from bot.training.workspace import Workspace
from devstack.stack import StackConfig
from devstack.stack import serve as run_stack

app = typer.Typer(help="shop-assistant command line", no_args_is_help=True, add_completion=False)
app.add_typer(catalog_app, name="catalog")
app.add_typer(search_app, name="search")
app.add_typer(model_app, name="model")
app.add_typer(bench_app, name="bench")
app.add_typer(shop_app, name="shop")
app.add_typer(escalation_app, name="escalation")
app.add_typer(crm_app, name="crm")
app.add_typer(users_app, name="users")
app.add_typer(privacy_app, name="privacy")
app.add_typer(topics_app, name="topics")
app.add_typer(convtests_app, name="convtests")


@app.command("migrate")
def migrate_cmd() -> None:
    """Bring the database schema up to date (Alembic)."""
    migrate()
    typer.echo("database schema is up to date")


@app.command("setup-data")
def setup_data() -> None:
    """Everything `make run` needs besides the Rasa model: schema, demo catalog (when empty), demo customers
    and orders (when there are none), the seed conversation tests (when there are none), Rasa lookup tables
    from the catalog, search index."""
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
    write_lookups()
    search_build(force=False)


@app.command("serve")
def serve() -> None:
    """Start Rasa, the action server and the gateway together (ports: docs/configuration.md)."""
    migrate()
    config = StackConfig()
    with session_scope() as session:
        registry.ensure_baseline(session, Workspace.from_settings(get_settings()), utcnow())
        active = registry.serving_model(session)
    if active is not None and get_settings().rasa_model is None:
        config.model = active  # the version a lead activated last (models/rasa/versions/vN)
    raise typer.Exit(run_stack(config))
