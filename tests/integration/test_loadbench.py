"""The load benchmark, for real: two shoppers chat for ~20 s through the `stack` fixture's gateway."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import delete

from benchmarks.load import BROAD_SEARCHES, SEARCHES, DemoOrder, Turn, TurnFailed, check, percentile, run
from bot.conversation.rasa_client import APOLOGY, HELD
from bot.db import session_scope
from bot.shop.tables import SHIPPED, VerificationThrottle
from tests.conftest import ROOT
from tests.unit.test_order_actions import Shopper

KEYS = {"shoppers", "minutes", "transport", "turns", "throughput", "p50_ms", "p95_ms", "p99_ms", "max_ms", "errors",
        "errors_by_kind", "error_samples", "visits", "elapsed_s"}


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (50.0, 95.0, 99.0)
    assert percentile([7.0], 99) == 7.0 and percentile([], 50) is None


@pytest.mark.usefixtures("catalog")
def test_scripted_searches_find_products_and_broad_ones_offer_buttons_to_press() -> None:
    from actions.search import ActionSearchProducts
    from tests.unit.test_actions import cards, tracker
    from tests.unit.test_actions import run as run_action

    for query in SEARCHES + BROAD_SEARCHES:
        messages, _ = run_action(ActionSearchProducts(), tracker(query, "search_product"))
        assert cards(messages), query
        buttons = [b for m in messages for b in m.get("buttons", []) if b["payload"].startswith("/refine_search")]
        assert buttons or query not in BROAD_SEARCHES, query


def test_checks_tell_error_kinds_apart() -> None:
    cards = [{"custom": {"type": "product_cards", "products": []}}]
    check(Turn("show me shoes", expect="cards"), cards)
    for turn, replies, kind in [
        (Turn("hi"), [{"text": APOLOGY}], "degraded"),
        (Turn("hi"), [{"text": HELD}], "degraded"),
        (Turn("hi"), [], "empty"),
        (Turn("show me shoes", expect="cards"), [{"text": "Here you go"}], "unexpected"),
        (Turn("a@b.example", expect="order:NW-1"), [{"text": "couldn't match those details"}], "unexpected"),
        (Turn("hi"), [{"custom": {"type": "handoff", "state": "queued"}}], "handoff"),
    ]:
        with pytest.raises(TurnFailed) as failed:
            check(turn, replies)
        assert failed.value.kind == kind


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="shoppers"):
        run(0, 1.0, url="http://127.0.0.1:9")
    with pytest.raises(ValueError, match="transport"):
        run(1, 1.0, url="http://127.0.0.1:9", transport="carrier-pigeon")


def test_a_gateway_that_is_not_there_counts_connect_errors() -> None:
    with pytest.raises(RuntimeError, match="warm-up failed: connect"):
        run(1, 0.05, url="http://127.0.0.1:9", orders=[])


@pytest.mark.integration
def test_two_shoppers_for_twenty_seconds(stack) -> None:  # type: ignore[no-untyped-def]
    with session_scope() as session:  # every shopper proves orders from 127.0.0.1: start with no failed proofs
        session.execute(delete(VerificationThrottle))
    owners = [Shopper([SHIPPED]) for _ in range(2)]
    orders = [DemoOrder(o.numbers[SHIPPED], o.email) for o in owners]
    result = run(2, 20 / 60, url=stack.gateway_url, orders=orders)
    assert set(result) == KEYS, result
    assert result["errors"] == 0, (result["errors_by_kind"], result["error_samples"])
    assert result["shoppers"] == 2 and result["transport"] == "ws"
    assert result["turns"] >= 6, result  # think time 1-3 s: a shopper manages 5 or more turns in 20 s
    assert 0 < result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"] <= result["max_ms"], result
    assert result["throughput"] > 0 and 18 <= result["elapsed_s"] <= 60, result


@pytest.mark.integration
def test_the_command_prints_one_json_line(stack) -> None:  # type: ignore[no-untyped-def]
    proc = subprocess.run([sys.executable, "-m", "bot", "bench", "load", "--shoppers", "1", "--minutes", "0.1",
                           "--url", stack.gateway_url, "--transport", "http"],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout + proc.stderr
    result = json.loads(lines[0])
    assert set(result) == KEYS and result["transport"] == "http", result
    assert proc.returncode == (1 if result["errors"] else 0)
    assert result["errors"] == 0, result
