"""Helpdesk delivery: outbox, retries with backoff, idempotency keys, restarts, and the three body formats,
against a real HTTP server on 127.0.0.1 that fails the first attempts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import HelpdeskWebhook
from bot.db import make_engine, migrate
from bot.handoff import delivery, tickets
from bot.handoff.delivery import OutboxWorker, TicketFacts, enqueue, outbox_counts, requeue_dead
from bot.handoff.tables import DEAD, DELIVERED, PENDING, HelpdeskOutbox, Ticket

# --------------------------------------------------------------------------- a helpdesk that fails at first


@dataclass
class Seen:
    path: str
    key: str
    headers: dict[str, str]
    body: dict[str, Any]
    answer: str  # "fail", "drop", "hang", "ok", "duplicate", "reject"


@dataclass
class Helpdesk:
    """Fails the first ``fail_first`` attempts of every idempotency key (503, or dropping the connection on
    paths listed in ``drop``), then accepts; a key seen again after it was accepted is answered 200 and not
    delivered again, as Zendesk does with ``Idempotency-Key``."""

    fail_first: int = 2
    drop: set[str] = field(default_factory=set)
    reject: set[str] = field(default_factory=set)  # paths answered 422
    retry_after: str | None = None
    hang_once: set[str] = field(default_factory=set)  # keys whose first attempt hangs (then is accepted)
    hang_s: float = 3.0
    seen: list[Seen] = field(default_factory=list)
    delivered: dict[str, Seen] = field(default_factory=dict)
    attempts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def deliveries(self) -> Counter[str]:
        """How many times each (path, ticket) was accepted as a new delivery."""
        return Counter(f"{s.path}#{_ticket_of(s.body)}" for s in self.seen if s.answer in ("ok", "hang"))


def _ticket_of(body: dict[str, Any]) -> Any:
    if "ticket" in body and "id" in body["ticket"]:
        return body["ticket"]["id"]
    if "ticket" in body:
        return body["ticket"]["external_id"]
    return body["blocks"][0]["text"]["text"]


@pytest.fixture
def helpdesk() -> Iterator[Helpdesk]:
    desk = Helpdesk()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            key = self.headers.get("Idempotency-Key", "")
            with desk.lock:
                desk.attempts[key] += 1
                n = desk.attempts[key]
                if key in desk.delivered:
                    answer = "duplicate"
                elif self.path in desk.reject:
                    answer = "reject"
                elif key in desk.hang_once and n == 1:
                    answer = "hang"
                    desk.delivered[key] = Seen(self.path, key, dict(self.headers), body, answer)
                elif n <= desk.fail_first:
                    answer = "drop" if self.path in desk.drop else "fail"
                else:
                    answer = "ok"
                    desk.delivered[key] = Seen(self.path, key, dict(self.headers), body, answer)
                desk.seen.append(Seen(self.path, key, dict(self.headers), body, answer))
            if answer == "hang":
                time.sleep(desk.hang_s)
            if answer == "drop":
                self.close_connection = True
                self.connection.close()
                return
            status = {"fail": 503, "reject": 422}.get(answer, 201)
            self.send_response(status)
            if answer == "fail" and desk.retry_after is not None:
                self.send_header("Retry-After", desk.retry_after)
            payload = json.dumps({"ok": status < 300}).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            with contextlib.suppress(OSError):  # the client gave up (a worker stopped mid-request)
                self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    desk.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield desk
    server.shutdown()
    server.server_close()


# --------------------------------------------------------------------------- database and tickets


@dataclass
class Db:
    url: str
    sessions: sessionmaker[Session]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Db]:
    url = f"sqlite:///{tmp_path / 'outbox.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    yield Db(url, sessionmaker(bind=engine, expire_on_commit=False))
    engine.dispose()


PACKET = {
    "version": 1, "reason": "negative_mood", "reason_detail": "mood -0.52 <= -0.38 after 3 messages", "mood": -0.52,
    "mood_trajectory": [0.0, -0.3, -0.52], "summary": "VIP customer Jane Doe: negative mood, mood -0.52",
    "customer": {"customer_id": 7, "name": "Jane Doe", "email": "jane@example.com", "phone": "+1 555 010 1234",
                 "segment": "vip", "segment_label": "VIP", "lifetime_value": 1234.5, "orders_count": 9},
    "orders": [{"number": "NW-100234", "status": "shipped", "status_label": "On its way", "total": 89.9,
                "currency": "USD", "items": []}],
    "cart": {"items": [{"title": "Storm Shell", "quantity": 1}], "item_count": 1, "total": 79.0, "currency": "USD"},
    "last_search": {"query": "rain jacket", "filters": {}},
    "slots": {"order_number": "NW-100234", "search_query": "rain jacket <b>"},
    "transcript": [
        {"role": "shopper", "text": "where is NW-100234?", "at": "2026-11-20T12:00:00Z", "intent": "track_order",
         "confidence": 0.93, "sentiment": 0.0},
        {"role": "bot", "text": "It's on its way.", "at": "2026-11-20T12:00:01Z"},
        {"role": "shopper", "text": "still not here & I'm <angry>, mail me at jane@example.com or +1 555 010 1234",
         "at": "2026-11-20T12:01:00Z", "intent": "track_order", "confidence": 0.81, "sentiment": -0.74},
    ],
}


def new_ticket(db: Db, webhooks: list[HelpdeskWebhook], points: int = 60) -> int:
    with db.sessions.begin() as session:
        ticket, _ = tickets.open_ticket(session, conversation_id=f"conv-{uuid.uuid4().hex[:10]}", customer_id=None,
                                        reason="negative_mood", reason_detail=PACKET["reason_detail"],
                                        context=PACKET, priority=points)
        enqueue(session, ticket, webhooks)
        return ticket.id


def rows(db: Db) -> list[HelpdeskOutbox]:
    with db.sessions() as session:
        return list(session.scalars(select(HelpdeskOutbox).order_by(HelpdeskOutbox.id)))


def three_webhooks(desk: Helpdesk) -> list[HelpdeskWebhook]:
    return [HelpdeskWebhook(name="desk", kind="generic", url=desk.url("/generic"), token="s3cret"),
            HelpdeskWebhook(name="team-slack", kind="slack", url=desk.url("/slack"), token="not-sent"),
            HelpdeskWebhook(name="zendesk", kind="zendesk", url=desk.url("/api/v2/tickets.json"), token="zd")]


async def until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


async def run_until(worker: OutboxWorker, condition: Any) -> None:
    """Run ``worker`` until ``condition()`` holds, then stop it (as its process would be stopped) and close it."""
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run_forever(stop))
    await until(condition)
    stop.set()
    await asyncio.wait_for(task, 5)
    await worker.aclose()


def fast_worker(db: Db, webhooks: list[HelpdeskWebhook], **options: Any) -> OutboxWorker:
    return OutboxWorker(db.url, webhooks, **({"base_delay_s": 0.01, "max_delay_s": 0.05, "timeout_s": 2.0,
                                              "poll_interval_s": 0.02} | options))


# --------------------------------------------------------------------------- exactly once, nothing lost


async def test_every_ticket_reaches_every_helpdesk_exactly_once_despite_failures(helpdesk: Helpdesk,
                                                                                   db: Db) -> None:
    helpdesk.fail_first = 2
    helpdesk.drop = {"/slack"}  # Slack's first attempts lose the connection instead of answering 503
    helpdesk.retry_after = "0"
    webhooks = three_webhooks(helpdesk)
    ids = [new_ticket(db, webhooks) for _ in range(4)]
    worker = fast_worker(db, webhooks)
    await run_until(worker, lambda: all(r.status == DELIVERED for r in rows(db)))

    outbox = rows(db)
    assert len(outbox) == 12 and {r.status for r in outbox} == {DELIVERED}
    assert all(r.attempts == 3 and r.delivered_at is not None and r.last_error is None for r in outbox)
    deliveries = helpdesk.deliveries()
    assert sorted(deliveries.values()) == [1] * 12  # each ticket once at each helpdesk
    assert {path.split("#")[0] for path in deliveries} == {"/generic", "/slack", "/api/v2/tickets.json"}
    # every attempt of a row is the same request: one key, one body
    by_key: dict[str, list[Seen]] = defaultdict(list)
    for seen in helpdesk.seen:
        by_key[seen.key].append(seen)
    assert set(by_key) == {r.idempotency_key for r in outbox}
    for row in outbox:
        attempts = by_key[row.idempotency_key]
        assert [s.answer for s in attempts] == ["drop" if row.kind == "slack" else "fail"] * 2 + ["ok"]
        assert all(s.body == row.payload for s in attempts)
        assert uuid.UUID(row.idempotency_key).version == 4  # random, made once per row
    assert {s.body["ticket"]["id"] for s in helpdesk.seen if s.path == "/generic"} == set(ids)


async def test_delivery_survives_stopping_and_restarting_the_worker(helpdesk: Helpdesk, db: Db) -> None:
    helpdesk.fail_first = 3
    webhooks = three_webhooks(helpdesk)[:2]
    for _ in range(3):
        new_ticket(db, webhooks)
    first = fast_worker(db, webhooks, base_delay_s=0.2, max_delay_s=0.2)
    await run_until(first, lambda: len(helpdesk.seen) >= 6)  # every row tried once
    del first  # the process is gone; only the database remains
    pending = rows(db)
    assert {r.status for r in pending} == {PENDING} and all(r.last_error for r in pending)
    assert not helpdesk.delivered

    second = fast_worker(db, webhooks)
    await run_until(second, lambda: all(r.status == DELIVERED for r in rows(db)))
    assert sorted(helpdesk.deliveries().values()) == [1] * 6
    assert all(r.attempts == 4 for r in rows(db))


async def test_a_worker_killed_mid_request_is_retried_after_its_lease_with_the_same_key(helpdesk: Helpdesk,
                                                                                        db: Db) -> None:
    helpdesk.fail_first = 0
    webhooks = three_webhooks(helpdesk)[2:]  # Zendesk honours Idempotency-Key
    new_ticket(db, webhooks)
    (row,) = rows(db)
    helpdesk.hang_once = {row.idempotency_key}  # the helpdesk takes the ticket but answers too late
    now = [delivery.utcnow() + timedelta(seconds=1)]
    killed = fast_worker(db, webhooks, timeout_s=30.0, lease_s=60.0, clock=lambda: now[0])
    task = asyncio.create_task(killed.run_once())
    await until(lambda: len(helpdesk.seen) == 1)
    task.cancel()  # the process dies while the request is in flight
    with pytest.raises(asyncio.CancelledError):
        await task
    await killed.aclose()
    (row,) = rows(db)
    assert (row.status, row.attempts) == (PENDING, 1)
    assert row.next_attempt_at == now[0] + timedelta(seconds=60)  # leased: nobody sends it meanwhile

    restarted = fast_worker(db, webhooks, clock=lambda: now[0])
    assert await restarted.run_once() == 0  # still leased
    now[0] += timedelta(seconds=61)
    assert await restarted.run_once() == 1
    await restarted.aclose()
    (row,) = rows(db)
    assert (row.status, row.attempts) == (DELIVERED, 2)
    assert [s.answer for s in helpdesk.seen] == ["hang", "duplicate"]
    assert {s.key for s in helpdesk.seen} == {row.idempotency_key}  # the same key, so one ticket over there
    assert sorted(helpdesk.deliveries().values()) == [1]


async def test_two_workers_never_send_the_same_row(helpdesk: Helpdesk, db: Db) -> None:
    helpdesk.fail_first = 0
    webhooks = three_webhooks(helpdesk)
    for _ in range(10):
        new_ticket(db, webhooks)
    one, two = fast_worker(db, webhooks, batch_size=7), fast_worker(db, webhooks, batch_size=7)
    sent = 0
    while True:
        a, b = await asyncio.gather(one.run_once(), two.run_once())
        if a + b == 0:
            break
        sent += a + b
    await one.aclose()
    await two.aclose()
    assert sent == 30
    assert len(helpdesk.seen) == 30 and len({s.key for s in helpdesk.seen}) == 30  # not one duplicate request
    assert all(r.status == DELIVERED and r.attempts == 1 for r in rows(db))


# --------------------------------------------------------------------------- retries, backoff, dead rows


async def test_backoff_doubles_with_jitter_honours_retry_after_and_gives_up(helpdesk: Helpdesk, db: Db) -> None:
    helpdesk.fail_first = 1000
    webhooks = three_webhooks(helpdesk)[:1]
    new_ticket(db, webhooks)
    now = [delivery.utcnow() + timedelta(seconds=1)]
    jitter = iter([1.0, 0.0, 1.0, 0.5, 1.0, 1.0])
    worker = OutboxWorker(db.url, webhooks, base_delay_s=10, max_delay_s=60, max_attempts=6,
                          clock=lambda: now[0], rng=lambda: next(jitter))
    delays = []
    for _ in range(6):
        assert await worker.run_once() == 1
        (row,) = rows(db)
        if row.status == PENDING:
            delays.append((row.next_attempt_at - now[0]).total_seconds())
            now[0] = row.next_attempt_at - timedelta(milliseconds=1)
            assert await worker.run_once() == 0  # not due a moment before
            now[0] = row.next_attempt_at
    # base 10 doubling (10, 20, 40, 80, 160) capped at 60; jitter keeps 50-100% of it (rng 1, 0, 1, 0.5, 1)
    assert delays == [10.0, 10.0, 40.0, 45.0, 60.0]
    (row,) = rows(db)
    assert (row.status, row.attempts) == (DEAD, 6) and row.last_error.startswith("HTTP 503")
    assert await worker.run_once() == 0  # dead rows stay, and are not sent
    # a person fixes the helpdesk and requeues: the same key goes out again and gets through
    helpdesk.fail_first = 0
    helpdesk.attempts.clear()
    with db.sessions.begin() as session:
        assert requeue_dead(session) == 1
        assert outbox_counts(session) == {PENDING: 1, DELIVERED: 0, DEAD: 0}
    assert await worker.run_once() == 1
    assert rows(db)[0].status == DELIVERED and helpdesk.seen[-1].key == row.idempotency_key
    # Retry-After wins over a shorter backoff (capped at the longest delay)
    helpdesk.fail_first, helpdesk.retry_after = 1, "45"
    new_ticket(db, webhooks)
    patient = OutboxWorker(db.url, webhooks, base_delay_s=1, max_delay_s=60, clock=lambda: now[0], rng=lambda: 1.0)
    await patient.run_once()
    assert (rows(db)[1].next_attempt_at - now[0]).total_seconds() == 45
    await worker.aclose()
    await patient.aclose()


async def test_a_request_that_retrying_cannot_fix_is_dead_at_once(helpdesk: Helpdesk, db: Db) -> None:
    helpdesk.reject = {"/generic"}
    webhooks = three_webhooks(helpdesk)[:1]
    new_ticket(db, webhooks)
    worker = fast_worker(db, webhooks)
    assert await worker.run_once() == 1
    await worker.aclose()
    (row,) = rows(db)
    assert (row.status, row.attempts) == (DEAD, 1) and row.last_error.startswith("HTTP 422")


async def test_unreachable_helpdesk_is_retried_not_lost(db: Db) -> None:
    from tests.conftest import free_port

    webhooks = [HelpdeskWebhook(name="gone", kind="generic", url=f"http://127.0.0.1:{free_port()}/x")]
    new_ticket(db, webhooks)
    worker = fast_worker(db, webhooks, max_attempts=2)
    assert await worker.run_once() == 1
    (row,) = rows(db)
    assert row.status == PENDING and row.attempts == 1 and "Connect" in row.last_error
    await asyncio.sleep(0.06)
    assert await worker.run_once() == 1
    await worker.aclose()
    assert rows(db)[0].status == DEAD


# --------------------------------------------------------------------------- the outbox rows


def test_outbox_rows_commit_with_the_ticket_or_not_at_all(db: Db) -> None:
    webhooks = [HelpdeskWebhook(name="a", kind="generic", url="http://127.0.0.1:9/a"),
                HelpdeskWebhook(name="b", kind="zendesk", url="http://127.0.0.1:9/b")]
    with pytest.raises(RuntimeError), db.sessions.begin() as session:
        ticket, _ = tickets.open_ticket(session, conversation_id="conv-rollback", customer_id=None,
                                        reason="explicit_request", context=PACKET, priority=20)
        assert len(enqueue(session, ticket, webhooks)) == 2
        raise RuntimeError("the action failed after queueing")
    with db.sessions() as session:
        assert session.scalar(select(Ticket).where(Ticket.conversation_id == "conv-rollback")) is None
    assert rows(db) == []
    ticket_id = new_ticket(db, webhooks)
    with db.sessions.begin() as session:
        assert enqueue(session, session.get(Ticket, ticket_id), webhooks) == []  # queued once per webhook
        assert enqueue(session, session.get(Ticket, ticket_id), []) == []
    outbox = rows(db)
    assert [(r.target, r.kind, r.attempts) for r in outbox] == [("a", "generic", 0), ("b", "zendesk", 0)]
    assert len({r.idempotency_key for r in outbox}) == 2


# --------------------------------------------------------------------------- the three formats


FACTS = TicketFacts(id=42, conversation_id="conv-abc12345", customer_id=7, reason="negative_mood",
                    reason_detail="mood -0.52 <= -0.38 after 3 messages", priority=80, status="queued",
                    created_at=datetime(2026, 11, 20, 12, 1, 5))


async def test_each_format_is_what_its_helpdesk_expects(helpdesk: Helpdesk, db: Db) -> None:
    generic = delivery.generic_body(FACTS, PACKET, url="https://shop.example/agent?ticket=42")
    assert generic["event"] == "ticket.opened" and generic["context"] == PACKET
    assert generic["ticket"] == {"id": 42, "conversation_id": "conv-abc12345", "customer_id": 7,
                                 "reason": "negative_mood", "reason_detail": FACTS.reason_detail, "priority": 80,
                                 "status": "queued", "created_at": "2026-11-20T12:01:05Z",
                                 "url": "https://shop.example/agent?ticket=42"}

    slack = delivery.slack_body(FACTS, PACKET, url="https://shop.example/agent?ticket=42")
    assert slack["text"] == "New chat handoff #42: negative mood, Jane Doe (VIP)"
    header, fields, latest, context = slack["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "Chat handoff #42: negative mood"}}
    assert [f["text"].split("\n")[0] for f in fields["fields"]] == ["*Reason*", "*Priority*", "*Customer*", "*Mood*"]
    assert fields["fields"][3]["text"] == "*Mood*\n-0.52"
    assert "&amp; I'm &lt;angry&gt;" in latest["text"]["text"] and "<angry>" not in latest["text"]["text"]
    assert latest["text"]["text"].startswith("*Latest messages*\n> *Shopper:* where is NW-100234?")
    assert "<https://shop.example/agent?ticket=42|Open in the inbox>" in context["elements"][0]["text"]
    assert all(len(f["text"]) <= 2000 for f in fields["fields"]) and len(latest["text"]["text"]) <= 3000

    zendesk = delivery.zendesk_body(FACTS, PACKET, url="https://shop.example/agent?ticket=42")
    body = zendesk["ticket"]
    assert body["subject"] == "Chat handoff: negative mood (Jane Doe (VIP))"
    assert body["priority"] == "urgent" and body["external_id"] == "shop-assistant-ticket-42"
    assert body["tags"] == ["reason_negative_mood", "segment_vip", "shop_assistant"]
    assert body["requester"] == {"email": "jane@example.com", "name": "Jane Doe"}
    assert body["comment"]["public"] is False
    comment = body["comment"]["body"]
    assert "- NW-100234: On its way, 89.9 USD" in comment and "Cart: 1 item(s), 79.0 USD" in comment
    assert "[2026-11-20T12:01:00Z] Shopper: still not here" in comment
    assert [delivery.zendesk_priority(p) for p in (90, 50, 20, 5)] == ["urgent", "high", "normal", "low"]

    # redaction for helpdesks that must not get personal data
    hidden = delivery.body_for(HelpdeskWebhook(name="r", kind="zendesk", url="http://x/y", redact=True), FACTS, PACKET)
    text = json.dumps(hidden)
    assert "jane@example.com" not in text and "Jane Doe" not in text and "555 010 1234" not in text
    assert "requester" not in hidden["ticket"] and "NW-100234" in text  # order numbers stay: they are the case
    assert "[email]" in text and "[phone]" in text
    assert PACKET["customer"]["email"] == "jane@example.com"  # the stored packet is untouched

    # on the wire: JSON bodies, the key on every request, the token only where it belongs
    helpdesk.fail_first = 0
    webhooks = three_webhooks(helpdesk)
    new_ticket(db, webhooks)
    worker = fast_worker(db, webhooks)
    assert await worker.run_once() == 3
    await worker.aclose()
    sent = {s.path: s for s in helpdesk.seen}
    assert sent["/generic"].headers["Authorization"] == "Bearer s3cret"
    assert sent["/api/v2/tickets.json"].headers["Authorization"] == "Bearer zd"
    assert "Authorization" not in sent["/slack"].headers  # the webhook URL is Slack's secret
    assert all(s.headers["Content-Type"] == "application/json" and s.headers["Idempotency-Key"] for s in sent.values())
    assert set(sent["/api/v2/tickets.json"].body) == {"ticket"} and "blocks" in sent["/slack"].body
