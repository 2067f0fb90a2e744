"""Hostile input: 10,000+ generated messages over HTTP and websocket against a real gateway (uvicorn).

Rasa is down (a closed port) so the gateway's own handling is what is tested: random unicode, lone
surrogates, 100 KB texts, control characters, HTML and script, SQL-looking strings, malformed JSON,
wrong types, invalid UTF-8 and binary frames. No answer may be a 5xx, no websocket may end in an
internal error, the server logs no unhandled exception, and it still answers afterwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import websockets

from bot.config import Settings
from tests.support.gateway_server import down_url, running_gateway

HTTP_MESSAGES = 5200
SOCKETS = 20
FRAMES_PER_SOCKET = 250  # 5,000 websocket frames
SEED = 7
SENTINEL_TICKET = 987_654_321  # no such ticket: the last frame of each socket is refused with this id

SCRIPTS = ["<img src=x onerror=alert(1)>", "<script>alert(document.cookie)</script>", "\"><svg onload=alert(1)>",
           "javascript:alert(1)", "<iframe src=//evil.example>", "{{7*7}}${7*7}<%= 7*7 %>", "../../etc/passwd",
           "%00%0d%0aSet-Cookie: x=1", "\u202eevil\u202c", "' OR '1'='1' --", "1; DROP TABLE orders;--",
           "\" UNION SELECT password_hash FROM users --", "NW-100234' AND SLEEP(5)--", "${jndi:ldap://x/a}",
           "Robert'); DELETE FROM customers;--", "%s%s%s%n", "\\x00\\u0000", "nan", "null", "[]", "{}"]


def random_text(rng: random.Random) -> str:
    kind = rng.randrange(8)
    if kind == 0:  # any code point, lone surrogates included
        return "".join(chr(rng.randrange(0x110000)) for _ in range(rng.randrange(1, 200)))
    if kind == 1:
        return "".join(chr(rng.randrange(32)) for _ in range(rng.randrange(1, 60))) + "x"
    if kind == 2:
        return rng.choice(SCRIPTS)
    if kind == 3:
        return rng.choice(SCRIPTS) * rng.randrange(1, 60)
    if kind == 4:  # emoji, combining marks, RTL, zero-width
        return "".join(rng.choice("😀👍🏽\u0301\u200b\u200f\ufeffمرحبا你好ÅßЖ") for _ in range(rng.randrange(1, 300)))
    if kind == 5:
        return "x" * 100_000
    if kind == 6:
        return " " * rng.randrange(1, 50)
    return rng.choice(["where is my order", "red shoes under 50", "refund?", "hi"]) + chr(rng.randrange(0x80, 0x800))


def conversation_id(rng: random.Random) -> object:
    return rng.choice([f"hostile-{rng.randrange(10**6):06d}", "", "x", "a" * 500, "../../etc", "id with space",
                       "<script>", 12345, None, ["list"], "hostile-" + "é" * 10])


def http_body(rng: random.Random) -> tuple[bytes, str]:
    """A request body and its content type: mostly valid JSON with hostile values, some broken on purpose."""
    kind = rng.randrange(10)
    if kind <= 4:
        body: object = {"conversation_id": conversation_id(rng) if rng.random() < 0.3 else
                        f"hostile-{rng.randrange(10**6):06d}", "text": random_text(rng)}
        if rng.random() < 0.2:
            body["metadata"] = rng.choice([{"customer_id": 1, "segment": "vip"}, "x", [1, 2], {"a": {"b": [None]}}])
        if rng.random() < 0.1:
            body["token"] = rng.choice(["", "x.y.z", "e" * 5000, 42])
        return json.dumps(body).encode(), "application/json"
    if kind == 5:  # wrong types
        return json.dumps(rng.choice([
            {"conversation_id": "hostile-000001", "text": 42}, {"conversation_id": True, "text": ["a"]},
            {"conversation_id": "hostile-000001", "text": None}, [1, 2, 3], "just a string", 7, None,
            {"conversation_id": "hostile-000001", "text": {"nested": "x"}}])).encode(), "application/json"
    if kind == 6:  # malformed JSON
        return rng.choice([b"{", b'{"conversation_id": "hostile-000001", "text": "a"', b"\x00\x01\x02", b"",
                           b'{"text": "\\ud800"}', b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000,
                           b'{"conversation_id": "hostile-000001", "text": "\xff\xfe"}']), "application/json"
    if kind == 7:  # invalid UTF-8 / random bytes
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))), "application/json"
    if kind == 8:  # the wrong content type
        return b"conversation_id=hostile-000001&text=hi", rng.choice(["application/x-www-form-urlencoded",
                                                                        "text/plain", "multipart/form-data"])
    return json.dumps({"conversation_id": "hostile-000001", "text": random_text(rng)}).encode(), "application/json"


def ws_frame(rng: random.Random) -> str | bytes:
    kind = rng.randrange(9)
    if kind <= 3:
        return json.dumps({"type": rng.choice(["message", "message", "hello", "rating", "x", ""]),
                           "text": random_text(rng), **({"payload": random_text(rng)} if rng.random() < 0.2 else {})})
    if kind == 4:
        return json.dumps(rng.choice([{"type": 5}, {"type": "message", "text": 7}, {"type": "rating", "ticket_id": -1,
                                      "rating": 99}, {"type": "hello", "token": "x.y.z"}, [], "s", None,
                                      {"type": "message", "text": ["a"]}, {"type": "rating", "ticket_id": 10**30}]))
    if kind == 5:
        return rng.choice(["{", "", "null", "[" * 3000, '{"type": "message", "text": "\\udc00"}', "\x00"])
    if kind == 6:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
    if kind == 7:
        return json.dumps({"type": "message", "text": "y" * 100_000})
    return "".join(chr(rng.randrange(0xD800)) for _ in range(rng.randrange(1, 100)))


class Errors(logging.Handler):
    """Collects ERROR records of the server (an unhandled exception in a request is logged so)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def gateway(catalog: int) -> Iterator[str]:
    down = down_url()
    settings = Settings(rasa_url=down, actions_url=down, rasa_timeout_s=2.0, rate_limit_per_conversation="off",
                        rate_limit_per_address="off")
    with running_gateway(settings) as url:
        yield url


@pytest.fixture
def server_errors() -> Iterator[Errors]:
    handler = Errors()
    loggers = [logging.getLogger(n) for n in ("uvicorn.error", "uvicorn", "bot", "")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


def test_hostile_http_and_websocket_messages_get_no_5xx_and_no_crash(gateway: str, server_errors: Errors) -> None:
    rng = random.Random(SEED)
    bodies = [http_body(rng) for _ in range(HTTP_MESSAGES)]
    frames = [[ws_frame(rng) for _ in range(FRAMES_PER_SOCKET)] for _ in range(SOCKETS)]
    statuses: Counter[int] = Counter()
    closes: Counter[str] = Counter()
    started = time.perf_counter()

    async def post_all() -> None:
        queue: asyncio.Queue[tuple[bytes, str]] = asyncio.Queue()
        for item in bodies:
            queue.put_nowait(item)
        async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
            async def worker() -> None:
                while not queue.empty():
                    body, content_type = queue.get_nowait()
                    response = await client.post("/api/chat", content=body, headers={"content-type": content_type})
                    statuses[response.status_code] += 1
            await asyncio.gather(*(worker() for _ in range(16)))

    async def socket(n: int) -> None:
        url = gateway.replace("http://", "ws://") + f"/ws/chat?conversation_id=hostile-ws-{n:05d}"
        async with websockets.connect(url, max_size=None) as ws:
            identities = 0

            async def drain() -> None:
                nonlocal identities
                async for raw in ws:
                    frame = json.loads(raw)
                    if frame.get("type") == "identity":
                        identities += 1
                    if frame.get("type") == "rating_refused" and frame.get("ticket_id") == SENTINEL_TICKET:
                        return  # the answer to the last frame: everything before it was handled

            reading = asyncio.create_task(drain())
            for frame in frames[n]:
                await ws.send(frame)
            await ws.send(json.dumps({"type": "hello"}))  # still answers after all that
            await ws.send(json.dumps({"type": "rating", "ticket_id": SENTINEL_TICKET, "rating": 3}))
            while not reading.done():
                await asyncio.wait([reading], timeout=60)
                if not reading.done():
                    raise AssertionError(f"socket {n}: no answer to the last message")
            closes["open" if identities >= 1 else "no identity"] += 1

    async def run() -> None:
        await asyncio.gather(post_all(), *(socket(n) for n in range(SOCKETS)))

    asyncio.run(run())
    elapsed = time.perf_counter() - started
    print(f"\nhostile input: {HTTP_MESSAGES} HTTP + {SOCKETS * FRAMES_PER_SOCKET} websocket messages in "
          f"{elapsed:.1f}s; HTTP statuses {dict(sorted(statuses.items()))}")
    assert sum(statuses.values()) == HTTP_MESSAGES
    assert not [s for s in statuses if s >= 500], statuses
    assert set(statuses) <= {200, 400, 401, 413, 415, 422}, statuses
    assert closes == Counter({"open": SOCKETS})
    health = httpx.get(gateway + "/healthz", timeout=10)
    assert health.status_code == 503 and health.json()["checks"]["database"]["ok"] is True  # Rasa is down
    assert httpx.post(gateway + "/api/chat", json={"conversation_id": "hostile-after-1", "text": "hi"},
                      timeout=10).status_code == 200
    unexpected = [r for r in server_errors.records if "Exception" in r.getMessage() or r.exc_info]
    assert not unexpected, [r.getMessage() for r in unexpected[:5]]


FULL_STACK_CONVERSATIONS = 30
FULL_STACK_TURNS = 12  # 360 hostile messages, each through Rasa's NLU, policies and the action server


def test_hostile_messages_through_rasa_and_the_action_server(stack, tmp_root) -> None:  # type: ignore[no-untyped-def]
    """The same generator, but Rasa and the action server are up: every message that passes the gateway's
    checks is classified, may run a search, a form or a handoff, and must not break any of them."""
    rng = random.Random(SEED + 1)
    log_path = tmp_root / "stack.log"
    log_offset = log_path.stat().st_size
    conversations = {f"hostile-full-{n:04d}-{rng.randrange(10**6):06d}":
                     [random_text(rng)[:1500] or "x" for _ in range(FULL_STACK_TURNS)]
                     for n in range(FULL_STACK_CONVERSATIONS)}
    statuses: Counter[int] = Counter()
    outcomes: Counter[str] = Counter()

    async def converse(client: httpx.AsyncClient, conversation_id: str, messages: list[str]) -> None:
        for text in messages:  # one conversation's messages in order, as a shopper sends them
            body = json.dumps({"conversation_id": conversation_id, "text": text})  # surrogates escaped (valid JSON)
            response = await client.post("/api/chat", content=body, headers={"content-type": "application/json"})
            statuses[response.status_code] += 1
            if response.status_code == 200:
                body = response.json()
                outcomes["degraded" if body["degraded"] else "answered" if body["replies"] else "empty"] += 1

    async def run() -> None:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60, trust_env=False) as client:
            limit = asyncio.Semaphore(6)

            async def one(cid: str, messages: list[str]) -> None:
                async with limit:
                    await converse(client, cid, messages)
            await asyncio.gather(*(one(cid, messages) for cid, messages in conversations.items()))

    started = time.perf_counter()
    asyncio.run(run())
    print(f"\nhostile input through the full stack: {sum(statuses.values())} messages in "
          f"{time.perf_counter() - started:.1f}s; HTTP {dict(statuses)}; {dict(outcomes)}")
    assert sum(statuses.values()) == FULL_STACK_CONVERSATIONS * FULL_STACK_TURNS
    assert not [s for s in statuses if s >= 500], statuses
    assert outcomes["degraded"] == 0, outcomes  # Rasa and the action server answered every one
    assert outcomes["answered"] >= 0.9 * statuses[200], outcomes
    new_log = log_path.read_text(errors="replace")[log_offset:]
    failures = [line for line in new_log.splitlines() if "Traceback" in line or " ERROR " in line]
    assert not failures, failures[:10]
    after = httpx.post(f"{stack.gateway_url}/api/chat", json={"conversation_id": f"hostile-after-{SEED}",
                       "text": "do you ship to canada"}, timeout=60, trust_env=False)
    assert after.status_code == 200 and after.json()["replies"] and not after.json()["degraded"]


# --------------------------------------------------------------------------- ids beyond the database's range

HUGE_IDS = [2**31, 2**63, 10**20]  # past PostgreSQL's INTEGER, past SQLite's, and the probe's 99999999999999999999


def lead_client(gateway: str) -> httpx.Client:
    """A logged-in lead (every agent and lead route is open to one), with the session's CSRF header."""
    from bot.auth import sessions, users
    from bot.auth.web import CSRF_HEADER, SESSION_COOKIE
    from bot.db import session_scope

    with session_scope() as session:
        user = users.create_user(session, f"hostile-lead-{random.randrange(10**9)}", "hostile-lead-password", "lead")
        token, auth = sessions.start_session(session, user)
    return httpx.Client(base_url=gateway, cookies={SESSION_COOKIE: token}, headers={CSRF_HEADER: auth.csrf_token},
                        timeout=30)


def test_ids_past_the_database_range_get_404_or_422_never_a_500(gateway: str, server_errors: Errors) -> None:
    """Each of these was a 500 with a traceback (OverflowError from the SQLite driver; a DataError on
    PostgreSQL from 2**31 on): anonymous pages and the rating API, and every agent and lead route with an id."""
    answers: dict[str, int] = {}
    with httpx.Client(base_url=gateway, timeout=30) as anonymous, lead_client(gateway) as lead:
        for n in HUGE_IDS:
            answers[f"GET /media/products/{n}.svg"] = anonymous.get(f"/media/products/{n}.svg").status_code
            answers[f"GET /products/{n}"] = anonymous.get(f"/products/{n}").status_code
            answers[f"POST /api/tickets/{n}/rating"] = anonymous.post(
                f"/api/tickets/{n}/rating", json={"conversation_id": "hostile-rating-1", "rating": 3}).status_code
            for path in (f"/agent/api/tickets/{n}", f"/admin/api/models/{n}", f"/admin/models/{n}/confusion.png",
                         f"/admin/api/inbox/messages/{n}"):
                answers[f"GET {path}"] = lead.get(path).status_code
            for path, body in ((f"/agent/api/tickets/{n}/claim", {}), (f"/agent/api/tickets/{n}/resolve", {}),
                               (f"/agent/api/tickets/{n}/notes", {"text": "x"}),
                               (f"/agent/api/tickets/{n}/replies", {"text": "x"}),
                               (f"/agent/api/tickets/{n}/transfer", {"to_agent_id": None}),
                               ("/agent/api/tickets/1/transfer", {"to_agent_id": n}),
                               (f"/admin/api/models/{n}/activate", {"reason": "x"}),
                               ("/admin/api/inbox/label", {"message_ids": [n], "action": "ignore"}),
                               ("/api/demo/token", {"customer_id": n})):
                answers[f"POST {path} {body}"] = lead.post(path, json=body).status_code
        assert anonymous.get("/products/1").status_code == 200  # an id in range still works
    wrong = {call: status for call, status in answers.items() if status not in (400, 404, 422)}
    assert not wrong, wrong
    unexpected = [r for r in server_errors.records if "Exception" in r.getMessage() or r.exc_info]
    assert not unexpected, [r.getMessage() for r in unexpected[:5]]


def test_a_rating_frame_with_a_huge_ticket_id_is_refused_and_the_socket_stays_open(gateway: str) -> None:
    async def run() -> list[dict[str, object]]:
        url = gateway.replace("http://", "ws://") + "/ws/chat?conversation_id=hostile-huge-rating"
        async with websockets.connect(url) as ws:
            answers = []
            for n in HUGE_IDS:
                await ws.send(json.dumps({"type": "rating", "ticket_id": n, "rating": 3}))
                answers.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            await ws.send(json.dumps({"type": "hello"}))  # the socket was dropped here before
            answers.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            return answers

    *refused, hello = asyncio.run(run())
    assert all(a["type"] == "error" and "ticket_id" in str(a["text"]) for a in refused), refused
    assert hello["type"] == "identity"


def test_an_add_to_cart_button_with_a_huge_product_id_is_answered(catalog: int) -> None:
    """``/add_to_cart{"product_id":"99999999999999999999"}`` crashed the action (a 500 in the action server)."""
    from rasa_sdk import Tracker
    from rasa_sdk.executor import CollectingDispatcher

    from actions.cart import ActionAddToCart, ActionRemoveFromCart

    for raw in ("99999999999999999999", str(2**31), "²", "0"):
        latest = {"text": f'/add_to_cart{{"product_id":"{raw}"}}', "intent": {"name": "add_to_cart", "confidence": 1.0},
                  "entities": [{"entity": "product_id", "value": raw}], "metadata": {}}
        for action in (ActionAddToCart(), ActionRemoveFromCart()):
            dispatcher = CollectingDispatcher()
            action.run(dispatcher, Tracker(f"hostile-cart-{raw}", {}, latest, [], False, None, {}, "action_listen"), {})
            assert dispatcher.messages and dispatcher.messages[0].get("text"), (raw, action.name())


# --------------------------------------------------------------------------- NaN, Infinity and deep metadata


def deep(levels: int) -> dict[str, object]:
    """An object nested ``levels`` deep (itself included): {"a": {"a": ... {}}}."""
    value: dict[str, object] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def held_messages(conversation_id: str) -> bool:
    from bot.db import session_scope
    from bot.held_messages import queue as held

    with session_scope() as session:
        return held.has_held(session, conversation_id)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_in_a_json_body_get_a_clear_422(gateway: str, constant: str) -> None:
    conversation = f"hostile-nan-{constant.strip('-').lower()}-{random.randrange(10**6)}"
    bodies = {"/api/chat": f'{{"conversation_id": "{conversation}", "text": "hi", "metadata": {{"x": {constant}}}}}',
              "/api/tickets/1/rating": f'{{"conversation_id": "{conversation}", "rating": {constant}}}'}
    for path, body in bodies.items():
        response = httpx.post(gateway + path, content=body, headers={"content-type": "application/json"}, timeout=10)
        assert response.status_code == 422, (path, response.status_code, response.text[:300])
        assert "NaN, Infinity and -Infinity are not valid JSON" in response.json()["detail"][0]["msg"]
    assert not held_messages(conversation)  # refused, not kept for later
    as_text = {"conversation_id": conversation, "text": f"{constant} is just a word here"}
    assert httpx.post(gateway + "/api/chat", json=as_text, timeout=10).status_code == 200


def test_metadata_is_bounded_in_depth_and_size(gateway: str) -> None:
    """About 900 levels made Rasa fail with a RecursionError while the gateway answered 200: the message was
    lost. The gateway now refuses what Rasa cannot take, and says why."""
    def chat(metadata: object) -> httpx.Response:
        conversation = f"hostile-meta-{random.randrange(10**9)}"
        response = httpx.post(gateway + "/api/chat", timeout=10,
                              json={"conversation_id": conversation, "text": "hi", "metadata": metadata})
        if response.status_code == 422:
            assert not held_messages(conversation)
        return response

    for levels in (900, 9):
        response = chat(deep(levels))
        assert response.status_code == 422, (levels, response.status_code)
        assert "nested too deeply (at most 8 levels" in response.json()["detail"][0]["msg"]
    assert chat({"list": [[[[[[[["x"]]]]]]]]}).status_code == 422  # arrays count as levels too
    too_large = chat({"note": "x" * 5000})
    assert too_large.status_code == 422 and "too large" in too_large.json()["detail"][0]["msg"]
    assert chat(deep(8)).status_code == 200
    assert chat({"channel": "api", "page": {"url": "/p/1", "tags": ["a", "b"]}}).status_code == 200


def test_websocket_frames_with_nan_or_deep_nesting_are_refused_with_a_reason(gateway: str) -> None:
    async def run() -> list[dict[str, object]]:
        url = gateway.replace("http://", "ws://") + "/ws/chat?conversation_id=hostile-ws-deep"
        async with websockets.connect(url) as ws:
            answers = []
            for frame in ('{"type": "message", "text": "hi", "metadata": ' + json.dumps(deep(20)) + "}",
                          '{"type": "message", "text": "hi", "metadata": ' + json.dumps(deep(900)) + "}",
                          '{"type": "rating", "ticket_id": 1, "rating": NaN}',
                          '{"type": "message", "text": "hi", "x": Infinity}'):
                await ws.send(frame)
                answers.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            return answers

    deep20, deep900, nan, infinity = asyncio.run(run())
    for answer in (deep20, deep900):
        assert answer["type"] == "error" and "nested too deeply" in str(answer["text"]), answer
    for answer in (nan, infinity):
        assert answer["type"] == "error" and "NaN, Infinity and -Infinity" in str(answer["text"]), answer
    assert not held_messages("hostile-ws-deep")
