"""Faults, injected into a real stack that this module starts for itself (it kills its processes).

Rasa, the action server and the gateway run on 127.0.0.1 against a throwaway PostgreSQL database (our
tables and Rasa's tracker store), so a dropped database connection can be injected; the helpdesk is a
closed port until the test opens it. The faults: the action server killed mid-conversation, Rasa
killed and started again, Rasa or the action server hung (SIGSTOP) past the gateway's timeout, Rasa's answer
lost on the way back, every database connection terminated, the helpdesk down. In every case the
shopper gets an answer (never a 5xx or nothing), the conversation goes on afterwards, and each message
the shopper sent is in Rasa's tracker exactly once and in order. The outbox itself (retries, backoff,
idempotency, restarts) is tested in tests/unit/test_delivery.py; here it runs inside the stack.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
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

from bot.catalog.store import upsert_products
from bot.config import Settings
from bot.conversation.rasa_client import APOLOGY, HELD, HELD_MORE, MESSAGE_ID, TAKING_LONGER
from bot.db import migrate, session_scope
from bot.demo import catalog as demo
from bot.handoff.tables import DELIVERED, PENDING, HelpdeskOutbox
from bot.held_messages import queue as held_queue
from bot.held_messages.tables import HeldMessage
from bot.training import rasa_model
from devstack.stack import Stack, StackConfig
from tests.conftest import ROOT, TEST_CATALOG_SIZE, free_port
from tests.support.gateway_server import running_gateway

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

    def hang(self, name: str) -> None:
        """SIGSTOP the process group: its port still accepts connections, nothing answers (a hung process)."""
        os.killpg(self.stack.processes[name].pid, signal.SIGSTOP)

    def wake(self, name: str) -> None:
        os.killpg(self.stack.processes[name].pid, signal.SIGCONT)


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
                             timeout=30, params={"token": self.faulty.stack.rasa_token})
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


class LossyPath:
    """A TCP proxy in front of Rasa. While ``lose_answers`` is set, it passes each request on and throws Rasa's
    answer away, and it does not pass on the client's giving up: Rasa runs the whole turn and the gateway
    hears nothing, as when a network path fails on the way back. Otherwise it passes everything both ways."""

    def __init__(self, upstream_url: str) -> None:
        host, port = upstream_url.removeprefix("http://").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.lose_answers = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.upstream)
        losing = threading.Event()  # this connection carried a request while answers were being lost

        def close() -> None:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

        def to_rasa() -> None:
            with contextlib.suppress(OSError):
                while data := client.recv(65536):
                    if self.lose_answers.is_set():
                        losing.set()
                    upstream.sendall(data)
            if not losing.is_set():
                close()  # the client gave up: Rasa sees it (and drops a turn still running)

        threading.Thread(target=to_rasa, daemon=True).start()
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                if not losing.is_set() and not self.lose_answers.is_set():
                    client.sendall(data)
        close()

    def close(self) -> None:
        self.listener.close()


class SlowPath:
    """A second gateway (its own database, a short Rasa timeout, replay on) that reaches the stack's Rasa
    through a :class:`LossyPath`."""

    def __init__(self, faulty: Faulty, url: str, database_url: str, proxy: LossyPath) -> None:
        self.faulty, self.url, self.database_url, self.proxy = faulty, url, database_url, proxy

    def held(self, conversation_id: str) -> list[HeldMessage]:
        with session_scope(self.database_url) as session:
            rows = list(session.scalars(select(HeldMessage).where(HeldMessage.conversation_id == conversation_id)
                                        .order_by(HeldMessage.id)))
            session.expunge_all()
            return rows

    def wait_for_attempt(self, conversation_id: str, timeout: float = 90) -> None:
        """Until the replay has tried the held message once and kept it (Rasa still gave no answer)."""
        deadline = time.monotonic() + timeout
        while not any(m.attempts for m in self.held(conversation_id)):
            assert time.monotonic() < deadline, self.held(conversation_id)
            time.sleep(0.5)


@pytest.fixture(scope="module")
def slow(faulty: Faulty) -> Iterator[SlowPath]:
    proxy = LossyPath(faulty.stack.rasa_url)
    database_url = faulty.postgres.create_database("faults_gateway")
    migrate(database_url)
    settings = Settings(database_url=database_url, rasa_url=proxy.url, actions_url=faulty.stack.actions_url,
                        rasa_token=faulty.stack.rasa_token, rasa_timeout_s=6.0, replay_held=True,
                        rate_limit_exempt="127.0.0.0/8,::1")
    try:
        with running_gateway(settings) as url:
            yield SlowPath(faulty, url, database_url, proxy)
    finally:
        proxy.close()


class Widget:
    """The shopper's widget on the slow gateway's websocket: live answers, and the replayed ones pushed later."""

    def __init__(self, slow: SlowPath, shopper: Shopper) -> None:
        self.shopper = shopper
        ws_url = slow.url.replace("http://", "ws://") + f"/ws/chat?conversation_id={shopper.id}"
        self.socket = connect(ws_url, origin=slow.url, open_timeout=10, proxy=None)  # type: ignore[arg-type]
        self.replayed: list[list[dict[str, Any]]] = []

    def say(self, text: str) -> list[dict[str, Any]]:
        """The live answer (a replayed answer that arrives meanwhile is kept in ``replayed``)."""
        self.shopper.sent.append(text)
        self.socket.send(json.dumps({"type": "message", "text": text}))
        while True:
            frame = json.loads(self.socket.recv(timeout=60))
            if frame.get("type") == "bot" and frame.get("replayed"):
                self.replayed.append(frame["messages"])
            elif frame.get("type") == "bot":
                return frame["messages"]  # type: ignore[no-any-return]

    def wait_replayed(self, count: int, timeout: float = 120) -> list[list[dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        while len(self.replayed) < count and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                frame = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
                if frame.get("type") == "bot" and frame.get("replayed"):
                    self.replayed.append(frame["messages"])
        return self.replayed

    def close(self) -> None:
        self.socket.close()


def user_event(tracker: dict[str, Any], text: str) -> tuple[dict[str, Any], list[str]]:
    """The shopper's (only) message with this text, and the texts of the bot's answer to it as Rasa's REST
    channel sends them (a text without buttons cut at blank lines)."""
    events = tracker["events"]
    found = [i for i, e in enumerate(events) if e["event"] == "user" and e["text"] == text]
    assert len(found) == 1, f"{text!r} is in Rasa's tracker {len(found)} times"
    index = found[0]
    answer: list[str] = []
    for event in events[index + 1:]:
        if event["event"] == "user":
            break
        if event["event"] == "bot" and event.get("text"):
            with_buttons = bool((event.get("data") or {}).get("buttons"))
            answer += [event["text"]] if with_buttons else event["text"].strip().split("\n\n")
    return events[index], answer


@pytest.mark.parametrize("hung", ["rasa", "actions"])
def test_a_message_rasa_does_not_answer_in_time_is_kept_and_answered_once(faulty: Faulty, slow: SlowPath,
                                                                          hung: str) -> None:
    shopper = Shopper(faulty, f"fault-hung-{hung}")
    widget = Widget(slow, shopper)
    try:
        assert widget.say("hi") not in ([{"text": TAKING_LONGER}], [{"text": APOLOGY}])
        faulty.hang(hung)  # its port still accepts: the gateway's connect succeeds and its read times out
        try:
            assert widget.say("show me running shoes") == [{"text": TAKING_LONGER}]  # not "send it again"
            assert [m.text for m in slow.held(shopper.id)] == ["show me running shoes"]
            slow.wait_for_attempt(shopper.id)  # the replay could not get an answer either: the message stays
        finally:
            faulty.wake(hung)
        (replayed,) = widget.wait_replayed(1)  # pushed to the widget once Rasa answers
        assert any((r.get("custom") or {}).get("type") == "product_cards" for r in replayed), replayed
        assert not slow.held(shopper.id)
        shopper.assert_nothing_lost()  # in Rasa's tracker once, although it was sent again
        after = widget.say("thanks")
        assert after and after != [{"text": TAKING_LONGER}]
        assert len(widget.replayed) == 1, widget.replayed  # delivered once
        shopper.assert_nothing_lost()
    finally:
        widget.close()


def test_an_answer_lost_on_the_way_back_is_found_in_rasas_tracker_and_delivered_without_a_second_turn(
        faulty: Faulty, slow: SlowPath) -> None:
    shopper = Shopper(faulty, "fault-lost")
    widget = Widget(slow, shopper)
    try:
        assert widget.say("hi") not in ([{"text": TAKING_LONGER}], [{"text": APOLOGY}])
        slow.proxy.lose_answers.set()
        try:
            assert widget.say("what is your return policy") == [{"text": TAKING_LONGER}]
            deadline = time.monotonic() + 60
            while not [e for e in shopper.tracker()["events"] if e.get("text") == "what is your return policy"]:
                assert time.monotonic() < deadline, "rasa never ran the turn"
                time.sleep(0.5)
            event, answer = user_event(shopper.tracker(), "what is your return policy")
            assert answer and isinstance(event["metadata"][MESSAGE_ID], str)  # the gateway's idempotency key
            assert [m.message_metadata[MESSAGE_ID] for m in slow.held(shopper.id)] == [event["metadata"][MESSAGE_ID]]
            slow.wait_for_attempt(shopper.id)  # the replay's check got no answer either: the message stays
        finally:
            slow.proxy.lose_answers.clear()
        (replayed,) = widget.wait_replayed(1)
        assert [r["text"] for r in replayed if r.get("text")] == answer  # the answer Rasa gave then
        assert not slow.held(shopper.id)
        shopper.assert_nothing_lost()  # no second turn: the message is in the tracker once
    finally:
        widget.close()


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
