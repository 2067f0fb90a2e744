"""Two gateway replicas and two Rasa servers on one PostgreSQL and one Redis, all real, on 127.0.0.1.

Stack A runs the action server, Rasa A and gateway A; stack B runs Rasa B and gateway B against A's action
server. ``DATABASE_URL`` puts our tables and Rasa's tracker store in PostgreSQL; ``REDIS_URL`` gives Rasa
the Redis lock store and the gateways a shared pub/sub. A conversation whose messages alternate between
the replicas keeps every message once and in order; a shopper's websocket on gateway A receives what an
agent says through gateway B.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from bot.auth import users
from bot.catalog.store import upsert_products
from bot.db import migrate, session_scope
from bot.demo import catalog as demo
from bot.handoff import tickets
from bot.training import rasa_model
from devstack.stack import Stack, StackConfig
from tests.conftest import ROOT, TEST_CATALOG_SIZE, free_port
from tests.support.redis_server import redis_server

pytestmark = [pytest.mark.integration]
PASSWORD = "a long enough agent password"
SCRIPT = ["hi", "what payment methods do you accept", "how long does delivery take", "what is your return policy",
          "do you ship to other countries", "thanks a lot", "how can I contact customer service", "bye"]


@pytest.fixture(scope="module")
def engines(postgres) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    url = postgres.create_database("scale_out")
    migrate(url)
    with session_scope(url) as session:
        upsert_products(session, demo.generate(TEST_CATALOG_SIZE))
    with redis_server() as redis_url:
        yield url, redis_url


@pytest.fixture(scope="module")
def replicas(engines: tuple[str, str], catalog: int, tmp_root: Path) -> Iterator[tuple[Stack, Stack]]:
    database_url, redis_url = engines
    env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "SHOP_RATE_LIMIT_EXEMPT": "127.0.0.0/8,::1"}
    log = (tmp_root / "scale-out.log").open("w")

    def config(actions_port: int, name: str) -> StackConfig:
        return StackConfig(rasa_port=free_port(), actions_port=actions_port, gateway_port=free_port(),
                           model=rasa_model.model_path(), tracker_db=tmp_root / f"unused-{name}.sqlite3",
                           python=ROOT / ".venv" / "bin" / "python", rasa_bin=rasa_model.rasa_executable(),
                           color=False, extra_env=env)

    a = Stack(config(free_port(), "a"), output=log)
    b = Stack(config(a.config.actions_port, "b"), output=log)
    try:
        a.start()
        b.start(names=("rasa", "gateway"))
        a.wait_healthy(timeout=300)
        b.wait_healthy(timeout=300, names=("rasa", "gateway"))
        yield a, b
    except (RuntimeError, TimeoutError) as exc:
        log.flush()
        pytest.fail(f"replicas did not start: {exc}\n{(tmp_root / 'scale-out.log').read_text()[-4000:]}")
    finally:
        b.stop()
        a.stop()
        log.close()


def test_rasa_uses_postgres_and_redis(replicas: tuple[Stack, Stack]) -> None:
    import yaml

    for stack in replicas:
        endpoints = yaml.safe_load(stack.endpoints_file.read_text())
        assert endpoints["tracker_store"]["dialect"] == "postgresql"
        assert endpoints["lock_store"]["type"] == "redis"
        assert endpoints["tracker_store"]["type"] == "rasa_addons.sql_stores.ShopSQLTrackerStore"
        assert endpoints["event_broker"]["type"] == "rasa_addons.sql_stores.PingingSQLEventBroker"
        assert endpoints["event_broker"]["db"] == "scale_out_events"


def _talk(stacks: tuple[Stack, Stack], conversation_id: str, texts: list[str], offset: int) -> list[list[str]]:
    answers = []
    with httpx.Client(timeout=60, trust_env=False) as http:
        for i, text in enumerate(texts):
            gateway = stacks[(i + offset) % 2].gateway_url  # alternate replicas, message by message
            response = http.post(f"{gateway}/api/chat", json={"conversation_id": conversation_id, "text": text})
            assert response.status_code == 200, response.text
            body = response.json()
            assert not body["degraded"] and body["replies"], body
            answers.append([r.get("text") or "" for r in body["replies"]])
    return answers


def _said(stack: Stack, conversation_id: str) -> list[str]:
    tracker = httpx.get(f"{stack.rasa_url}/conversations/{conversation_id}/tracker", params={"token": stack.rasa_token},
                        timeout=30).json()
    return [e["text"] for e in tracker["events"] if e["event"] == "user"]


def test_messages_alternating_between_replicas_are_kept_once_and_in_order(replicas: tuple[Stack, Stack],
                                                                          engines: tuple[str, str]) -> None:
    # eight shoppers at once, each alternating between the two replicas
    ids = [f"scale-{uuid.uuid4().hex[:10]}" for _ in range(8)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda pair: _talk(replicas, pair[1], SCRIPT, pair[0]), enumerate(ids)))
    for conversation_id, replies in zip(ids, answers, strict=True):
        # both Rasa servers read the same tracker: every message once, in the order sent
        assert _said(replicas[0], conversation_id) == SCRIPT
        assert _said(replicas[1], conversation_id) == SCRIPT
        assert "payment" in " ".join(replies[1]).lower() or "accept" in " ".join(replies[1]).lower(), replies[1]
    # Rasa's SQL event broker wrote the same messages to <db>_events
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    broker = create_engine(make_url(engines[0]).set(database="scale_out_events"))
    with broker.connect() as conn:
        rows = conn.execute(text("SELECT data FROM events WHERE sender_id = :s ORDER BY id"), {"s": ids[0]}).all()
    broker.dispose()
    events = [json.loads(row.data) for row in rows]
    assert [e["text"] for e in events if e["event"] == "user"] == SCRIPT


def _agent_session(gateway: str, username: str) -> tuple[httpx.Client, str]:
    http = httpx.Client(base_url=gateway, trust_env=False, timeout=30)
    form = http.get("/agent/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token
    done = http.post("/agent/login", data={"username": username, "password": PASSWORD, "csrf": token.group(1)})
    assert done.status_code == 303, done.text
    return http, http.get("/agent/api/me").json()["csrf_token"]


def test_a_widget_on_one_replica_hears_an_agent_on_the_other(replicas: tuple[Stack, Stack],
                                                              engines: tuple[str, str]) -> None:
    a, b = replicas
    database_url = engines[0]
    conversation_id = f"scale-agent-{uuid.uuid4().hex[:8]}"
    _talk(replicas, conversation_id, ["hi"], 0)
    with session_scope(database_url) as session:
        ticket, _ = tickets.open_ticket(session, conversation_id=conversation_id, customer_id=None,
                                        reason="requested")
        ticket_id = ticket.id
        agent = users.create_user(session, f"agent-{uuid.uuid4().hex[:8]}", PASSWORD, "agent", "Ada")
    ws_url = a.gateway_url.replace("http://", "ws://") + f"/ws/chat?conversation_id={conversation_id}"
    with connect(ws_url, origin=a.gateway_url, open_timeout=10, proxy=None) as widget:  # type: ignore[arg-type]
        http, csrf = _agent_session(b.gateway_url, agent.username)
        try:
            claimed = http.post(f"/agent/api/tickets/{ticket_id}/claim", json={}, headers={"X-CSRF-Token": csrf})
            assert claimed.status_code == 200, claimed.text
            sent = http.post(f"/agent/api/tickets/{ticket_id}/replies", json={"text": "Hello from replica B"},
                             headers={"X-CSRF-Token": csrf})
            assert sent.status_code == 200, sent.text
        finally:
            http.close()
        frames: list[dict[str, Any]] = []
        while not any(f.get("type") == "agent" for f in frames):
            frames.append(json.loads(widget.recv(timeout=15)))
    kinds = [f["type"] for f in frames]
    assert kinds.index("agent_joined") < kinds.index("agent")
    assert next(f for f in frames if f["type"] == "agent")["text"] == "Hello from replica B"
