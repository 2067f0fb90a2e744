"""Faults, injected into a real stack that this module starts for itself (it kills its processes).

Rasa, the action server and the gateway run on 127.0.0.1 against a throwaway PostgreSQL database (our
tables and Rasa's tracker store), so a dropped database connection can be injected; the helpdesk is a
closed port until the test opens it. The faults: the action server killed mid-conversation, Rasa
killed and started again, every database connection terminated, the helpdesk down. In every case the
shopper gets an answer (never a 5xx or nothing), the conversation goes on afterwards, and each message
the shopper sent is in Rasa's tracker exactly once and in order. The outbox itself (retries, backoff,
idempotency, restarts) is tested in tests/test_delivery.py; here it runs inside the stack.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import select
from websockets.sync.client import connect

from bot.catalog import demo
from bot.catalog.store import upsert_products
from bot.db import migrate, session_scope
from bot.devstack import Stack, StackConfig
from bot.handoff.models import DELIVERED, PENDING, HelpdeskOutbox
from bot.relay import held as held_queue
from bot.relay.models import HeldMessage
from bot.training import rasa_model
from bot.web.rasa_client import APOLOGY, HELD, HELD_MORE
from tests.conftest import ROOT, TEST_CATALOG_SIZE, free_port

pytestmark = [pytest.mark.integration]


class Faulty:
    """The stack, its database and the (closed, until opened) helpdesk port."""

    def __init__(self, stack: Stack, database_url: str, helpdesk_port: int, postgres: Any) -> None:
        self.stack, self.database_url, self.helpdesk_port, self.postgres = stack, database_url, helpdesk_port, postgres

    def kill(self, name: str) -> None:
        """SIGKILL the process group: no clean shutdown, as when a machine or container dies."""
        proc = self.stack.processes[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)

    def restart(self, name: str, timeout: float = 240) -> None:
        self.stack.start(names=(name,))  # replaces processes[name]; the others keep running
        self.stack.wait_healthy(timeout=timeout, names=(name,))


@pytest.fixture(scope="module")
def faulty(postgres, catalog: int, tmp_root: Path) -> Iterator[Faulty]:  # type: ignore[no-untyped-def]
    if not rasa_model.model_path().exists():
        pytest.fail("no trained Rasa model: run `make model` (make test does) first")
    database_url = postgres.create_database("faults")
    migrate(database_url)
    with session_scope(database_url) as session:
        upsert_products(session, demo.generate(TEST_CATALOG_SIZE))
    helpdesk_port = free_port()
    webhooks = [{"name": "desk", "kind": "generic", "url": f"http://127.0.0.1:{helpdesk_port}/tickets"}]
    env = {"DATABASE_URL": database_url, "SHOP_RATE_LIMIT_EXEMPT": "127.0.0.0/8,::1", "SHOP_REPLAY_HELD": "true",
           "SHOP_HELPDESK_WEBHOOKS": json.dumps(webhooks), "SHOP_HELPDESK_RETRY_BASE_S": "0.5",
           "SHOP_HELPDESK_RETRY_MAX_S": "1", "SHOP_HELPDESK_TIMEOUT_S": "3"}
    log_path = tmp_root / "faults.log"
    log = log_path.open("w")
    config = StackConfig(rasa_port=free_port(), actions_port=free_port(), gateway_port=free_port(),
                         model=rasa_model.model_path(), tracker_db=tmp_root / "faults-tracker.sqlite3",
                         python=ROOT / ".venv" / "bin" / "python", rasa_bin=rasa_model.rasa_executable(),
                         color=False, extra_env=env)
    stack = Stack(config, output=log)
    try:
        stack.start()
        stack.wait_healthy(timeout=300)
        yield Faulty(stack, database_url, helpdesk_port, postgres)
    except (RuntimeError, TimeoutError) as exc:
        log.flush()
        pytest.fail(f"the stack failed: {exc}\n{log_path.read_text()[-4000:]}")
    finally:
        stack.stop()
        log.close()


class Shopper:
    """One conversation over ``/api/chat``; remembers every text it sent."""

    def __init__(self, faulty: Faulty, prefix: str) -> None:
        self.faulty = faulty
        self.id = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.sent: list[str] = []

    def say(self, text: str) -> dict[str, Any]:
        """The gateway's answer; never a 5xx, never an empty reply."""
        self.sent.append(text)
        response = httpx.post(f"{self.faulty.stack.gateway_url}/api/chat", trust_env=False, timeout=60,
                              json={"conversation_id": self.id, "text": text})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert body["replies"] and any(r.get("text") or r.get("custom") for r in body["replies"]), body
        return body

    def tracker(self) -> dict[str, Any]:
        response = httpx.get(f"{self.faulty.stack.rasa_url}/conversations/{self.id}/tracker", trust_env=False,
                             timeout=30)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def assert_nothing_lost(self) -> None:
        """Each message sent is in Rasa's tracker exactly once, in the order sent."""
        said = [e["text"] for e in self.tracker()["events"] if e["event"] == "user"]
        assert said == self.sent


def text_of(body: dict[str, Any]) -> str:
    return "\n".join(r.get("text") or "" for r in body["replies"])


def test_killed_action_server_gives_a_graceful_answer_and_the_chat_goes_on(faulty: Faulty) -> None:
    shopper = Shopper(faulty, "fault-actions")
    before = shopper.say("show me running shoes")
    assert not before["degraded"]

    faulty.kill("actions")
    during = shopper.say("do you have red dresses")  # needs the search action: Rasa cannot run it
    assert during["degraded"] and text_of(during) == APOLOGY
    shopper.assert_nothing_lost()  # Rasa recorded the message although its action failed

    faulty.restart("actions", timeout=120)
    after = shopper.say("show me a blue jacket")
    assert not after["degraded"] and text_of(after) != APOLOGY, after
    shopper.assert_nothing_lost()


def test_restarted_rasa_keeps_the_conversation_and_its_form(faulty: Faulty) -> None:
    shopper = Shopper(faulty, "fault-rasa")
    shopper.say("hi")
    asked = shopper.say("track my order NW-424242")
    assert "email" in text_of(asked).lower() or "postcode" in text_of(asked).lower(), asked
    before = shopper.tracker()

    faulty.kill("rasa")
    faulty.restart("rasa")

    after = shopper.tracker()  # read back from the SQL tracker store by a new Rasa process
    assert after["active_loop"].get("name") == "track_order_form"
    assert after["slots"]["order_number"] == "NW-424242" == before["slots"]["order_number"]
    assert after["slots"]["requested_slot"] == before["slots"]["requested_slot"]
    assert [e["event"] for e in after["events"]] == [e["event"] for e in before["events"]]
    shopper.assert_nothing_lost()

    going_on = shopper.say("someone@example.com")  # the form goes on where it was: the contact is checked
    assert not going_on["degraded"] and "couldn't match" in text_of(going_on), going_on
    shopper.assert_nothing_lost()


def test_messages_sent_while_rasa_is_down_are_kept_and_answered_in_order_once_it_is_back(faulty: Faulty) -> None:
    shopper = Shopper(faulty, "fault-held")
    ws_url = faulty.stack.gateway_url.replace("http://", "ws://") + f"/ws/chat?conversation_id={shopper.id}"
    with connect(ws_url, origin=faulty.stack.gateway_url, open_timeout=10, proxy=None) as widget:  # type: ignore[arg-type]

        def say(text: str) -> list[dict[str, Any]]:
            shopper.sent.append(text)
            widget.send(json.dumps({"type": "message", "text": text}))
            while True:
                frame = json.loads(widget.recv(timeout=60))
                if frame.get("type") == "bot":
                    return frame["messages"]  # type: ignore[no-any-return]

        assert say("hi") and shopper.tracker()["latest_message"]["text"] == "hi"
        faulty.kill("rasa")
        assert say("show me running shoes") == [{"text": HELD}]
        assert say("what is your return policy") == [{"text": HELD_MORE}]
        by_api = shopper.say("how much is shipping")  # the same conversation over HTTP waits behind them
        assert by_api["degraded"] and text_of(by_api) == HELD_MORE
        with session_scope(faulty.database_url) as session:
            assert [m.text for m in session.scalars(select(HeldMessage).where(
                HeldMessage.conversation_id == shopper.id).order_by(HeldMessage.id))] == shopper.sent[1:]

        faulty.restart("rasa")
        replayed: list[list[dict[str, Any]]] = []
        deadline = time.monotonic() + 90
        while len(replayed) < 3 and time.monotonic() < deadline:  # pushed to the widget as Rasa answers them
            frame = json.loads(widget.recv(timeout=max(1.0, deadline - time.monotonic())))
            if frame.get("type") == "bot" and frame.get("replayed"):
                replayed.append(frame["messages"])
    assert len(replayed) == 3, replayed
    assert any((r.get("custom") or {}).get("type") == "product_cards" for r in replayed[0]), replayed[0]
    assert all(r and r != [{"text": APOLOGY}] for r in replayed[1:]), replayed
    shopper.assert_nothing_lost()  # each message once, in the order sent
    with session_scope(faulty.database_url) as session:
        assert not held_queue.has_held(session, shopper.id)
    after = shopper.say("thanks")
    assert not after["degraded"]
    shopper.assert_nothing_lost()


def terminate_connections(faulty: Faulty) -> int:
    """``pg_terminate_backend`` on every connection to the stack's databases (ours, Rasa's tracker store and
    its event broker) but this one's."""
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=faulty.postgres.port, user=faulty.postgres.user,
                         dbname="postgres", autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname IN ('faults', 'faults_events') AND pid <> pg_backend_pid()").fetchall()
    return len(rows)


def broker_user_texts(faulty: Faulty, conversation_id: str) -> list[str]:
    """The shopper's messages as Rasa's SQL event broker stored them (``<db>_events``)."""
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=faulty.postgres.port, user=faulty.postgres.user,
                         dbname="faults_events") as conn:
        rows = conn.execute("SELECT data FROM events WHERE sender_id = %s ORDER BY id", (conversation_id,))
        events = [json.loads(data) for (data,) in rows.fetchall()]
    return [e["text"] for e in events if e["event"] == "user"]


def test_dropped_database_connections_are_replaced(faulty: Faulty) -> None:
    shopper = Shopper(faulty, "fault-db")
    assert not shopper.say("show me running shoes")["degraded"]
    assert terminate_connections(faulty) >= 2  # the gateway's, the action server's and Rasa's pools
    for text in ("show me a blue jacket", "what is your return policy"):
        body = shopper.say(text)
        assert not body["degraded"] and text_of(body) != APOLOGY, body
    shopper.assert_nothing_lost()
    assert broker_user_texts(faulty, shopper.id) == shopper.sent  # the event broker lost nothing either
    health = httpx.get(f"{faulty.stack.gateway_url}/healthz", trust_env=False, timeout=10).json()
    assert health["checks"]["database"]["ok"], health


class Desk(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Desk.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def outbox(faulty: Faulty) -> list[HelpdeskOutbox]:
    with session_scope(faulty.database_url) as session:
        return list(session.scalars(select(HelpdeskOutbox).order_by(HelpdeskOutbox.id)))


def test_a_helpdesk_that_is_down_gets_the_ticket_once_it_is_back(faulty: Faulty) -> None:
    shopper = Shopper(faulty, "fault-desk")
    body = shopper.say("i want to talk to a human")
    assert not body["degraded"]
    handoff = next(r["custom"] for r in body["replies"] if (r.get("custom") or {}).get("type") == "handoff")
    ticket_id = handoff["ticket_id"]

    deadline = time.monotonic() + 20
    while not [r for r in outbox(faulty) if r.ticket_id == ticket_id and r.last_error]:
        assert time.monotonic() < deadline, "the outbox never tried the helpdesk"
        time.sleep(0.2)
    (row,) = [r for r in outbox(faulty) if r.ticket_id == ticket_id]
    assert row.status == PENDING and "Connect" in (row.last_error or ""), row.last_error

    desk = ThreadingHTTPServer(("127.0.0.1", faulty.helpdesk_port), Desk)
    threading.Thread(target=desk.serve_forever, daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        while [r.status for r in outbox(faulty) if r.ticket_id == ticket_id] != [DELIVERED]:
            assert time.monotonic() < deadline, outbox(faulty)
            time.sleep(0.2)
    finally:
        desk.shutdown()
        desk.server_close()
    assert [t for t in Desk.received if t.get("ticket", t).get("id") == ticket_id], Desk.received
    shopper.assert_nothing_lost()
