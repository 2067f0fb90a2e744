"""``python -m bot shop ...``: the demo customers and orders."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.output import fail
from bot.db import migrate, session_scope
from bot.demo.orders import demo_customers, load_demo_orders

shop_app = typer.Typer(help="Shop data: demo customers and orders", no_args_is_help=True)


@shop_app.command("demo")
def shop_demo(seed: int = 7, customers: Annotated[int, typer.Option(help="number of demo customers")] = 60) -> None:
    """Create the deterministic demo customers and orders (every order state) over the catalog; safe to run
    again (what exists is left alone). Prints the showcase customers to try the order flows with."""
    migrate()
    try:
        with session_scope() as session:
            stats = load_demo_orders(session, seed=seed, customers=customers)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(f"demo orders: {stats.customers_added} customers and {stats.orders_added} orders added, "
               f"{stats.orders_existing} orders already there")
    with session_scope() as session:
        showcase = demo_customers(session)
    typer.echo("demo customers to try the order flows with (sign in as them on the demo page, or as a guest give "
               "the order number and the email or postcode):")
    for c in showcase:
        who = f"{c.name} <{c.email}>" + ("" if c.id is not None else " (guest)")
        typer.echo(f"  {c.order_number} [{c.status}] {who}, postcode {c.postcode}: {c.note}")
