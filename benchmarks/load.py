"""Load benchmark: simulated shoppers chat through the gateway, and each turn's latency is measured.

Every shopper is a widget session: a websocket to ``/ws/chat`` (what the widget uses, so the benchmark
exercises the same path as real shoppers: one long-lived socket per visit, the hub subscription, the
``typing``/``bot`` frames), or ``POST /api/chat`` with ``transport="http"``. A visit opens a new
conversation, says hello (guest), runs one scripted conversation (search and refine, quick replies
and product details, order tracking of a demo order, policy questions) with a think time of 1-3 s
between turns, and closes.

A turn's latency runs from sending the message to its last reply. The gateway sends all of a turn's
replies in one ``{"type": "bot", "messages": [...]}`` frame (preceded by ``typing`` on and followed
by ``typing`` off), so "last reply" is that ``bot`` frame; over HTTP it is the end of the response.

Errors, counted per kind: ``connect`` (the socket could not be opened), ``timeout`` (no reply within
``TURN_TIMEOUT_S``), ``closed`` (the server closed the socket mid-turn), ``http_<status>``,
``rate_limited`` (the chat rate limit's ``error`` frame), ``error_frame`` (any other ``error`` frame),
``degraded`` (the gateway apologised: Rasa or the action server did not answer), ``empty`` (no reply
at all), ``handoff`` (the bot handed the conversation to a person), ``unexpected`` (the reply lacks
what the turn must produce: product cards for a search, the order number once the order is proven).
A warm-up (not measured) first waits until the assistant answers, then runs every script once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from bot.conversation.rasa_client import APOLOGY, HELD, HELD_MORE, TAKING_LONGER

TURN_TIMEOUT_S = 30.0
THINK_S = (1.0, 3.0)
WARM_UP_S = 300.0


@dataclass(frozen=True)
class DemoOrder:
    number: str
    email: str


@dataclass(frozen=True)
class Turn:
    """One shopper turn: ``text`` typed, or the payload of the first earlier button whose payload starts with
    ``button``; ``expect``: ``reply`` (any answer), ``cards`` (product cards) or ``order`` (the order number)."""

    text: str = ""
    button: str = ""
    expect: str = "reply"


@dataclass
class Script:
    name: str
    turns: list[Turn]


SEARCHES = ["i need a warm waterproof jacket under 80", "show me running shoes", "looking for a leather bag",
            "do you have wool sweaters", "i want a red dress", "find me hiking boots under 120",
            "show me t-shirts for men", "i'm looking for a backpack"]
# Broad searches whose first page on the demo catalog always offers narrowing buttons
# (tests/integration/test_loadbench.py).
BROAD_SEARCHES = ["show me running shoes", "looking for a leather bag", "do you have wool sweaters",
                  "i'm looking for a backpack"]
REFINEMENTS = ["cheaper", "show more", "in black", "under 50", "something else"]
DETAILS = ["tell me more about the second one", "tell me more about the first one", "more about the third one"]
GREETINGS = ["hi there", "hello", "hey"]
POLICY = ["how long does delivery take", "what payment methods do you accept", "what is your return policy",
          "how much is shipping", "can i cancel my order", "how do i get a refund"]


def scripts(rng: random.Random, orders: list[DemoOrder]) -> dict[str, Callable[[], Script]]:
    """Script factories by name; each call draws fresh wording."""

    def search_refine() -> Script:
        return Script("search_refine", [Turn(rng.choice(GREETINGS)), Turn(rng.choice(SEARCHES), expect="cards"),
                                        Turn(rng.choice(REFINEMENTS), expect="cards"), Turn(rng.choice(DETAILS))])

    def quick_replies() -> Script:
        return Script("quick_replies", [Turn(rng.choice(BROAD_SEARCHES), expect="cards"),
                                        Turn(button="/refine_search", expect="cards"), Turn(rng.choice(DETAILS)),
                                        Turn(rng.choice(POLICY))])

    def track_order() -> Script:
        order = rng.choice(orders)
        ask = rng.choice(["where is my order {}", "track order {}", "what's the status of order {}"])
        return Script("track_order", [Turn(rng.choice(GREETINGS)), Turn(ask.format(order.number)),
                                      Turn(order.email, expect="order:" + order.number)])

    def faq() -> Script:
        return Script("faq", [Turn(q) for q in rng.sample(POLICY, 3)])

    made: dict[str, Callable[[], Script]] = {"search_refine": search_refine, "quick_replies": quick_replies,
                                             "faq": faq}
    if orders:
        made["track_order"] = track_order
    return made


WEIGHTS = {"search_refine": 4, "quick_replies": 2, "track_order": 2, "faq": 2}


@dataclass
class Stats:
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    scripts: Counter[str] = field(default_factory=Counter)
    turns: int = 0
    samples: list[str] = field(default_factory=list)  # a few error details, for a human

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.samples) < 5:
            self.samples.append(f"{kind}: {detail[:300]}")


class WarmUpFailed(RuntimeError):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"warm-up failed: {kind}: {detail}")
        self.kind = kind


class TurnFailed(Exception):
    def __init__(self, kind: str, detail: str, fatal: bool = False) -> None:
        super().__init__(detail)
        self.kind, self.detail, self.fatal = kind, detail, fatal


def check(turn: Turn, replies: list[dict[str, Any]]) -> None:
    """Raise ``TurnFailed`` when the replies are not what the turn must produce."""
    if replies in ([{"text": APOLOGY}], [{"text": HELD}], [{"text": HELD_MORE}], [{"text": TAKING_LONGER}]):
        raise TurnFailed("degraded", "the gateway apologised (rasa or the action server did not answer)")
    if not replies:
        raise TurnFailed("empty", "no reply")
    if any(isinstance(r.get("custom"), dict) and r["custom"].get("type") == "handoff" for r in replies):
        raise TurnFailed("handoff", f"handed to a person after {turn.text or turn.button!r}", fatal=True)
    if turn.expect == "cards" and not any(isinstance(r.get("custom"), dict)
                                          and r["custom"].get("type") == "product_cards" for r in replies):
        raise TurnFailed("unexpected", f"no product cards for {turn.text or turn.button!r}: {replies!r:.200}")
    if turn.expect.startswith("order:") and turn.expect[6:] not in json.dumps(replies):
        raise TurnFailed("unexpected", f"order {turn.expect[6:]} not shown after the proof: {replies!r:.200}")


def message_for(turn: Turn, seen: list[dict[str, Any]], rng: random.Random) -> dict[str, Any]:
    """The frame the widget sends: typed text, or a pressed button (its title and payload, as the widget does)."""
    if not turn.button:
        return {"type": "message", "text": turn.text}
    for reply in reversed(seen):
        buttons = [b for b in reply.get("buttons") or [] if str(b.get("payload", "")).startswith(turn.button)]
        if buttons:
            button = rng.choice(buttons)
            return {"type": "message", "text": button.get("title") or "", "payload": button["payload"]}
    raise TurnFailed("unexpected", f"no {turn.button} button to press", fatal=True)


class Session:
    """One visit over one transport; ``say`` returns the turn's replies."""

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def say(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError


class SocketSession(Session):
    def __init__(self, base_url: str, conversation_id: str) -> None:
        ws_base = base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1).rstrip("/")
        self.url = f"{ws_base}/ws/chat?conversation_id={conversation_id}"
        self.origin = base_url.rstrip("/")
        self._stack = contextlib.AsyncExitStack()
        self.ws: Any = None

    async def __aenter__(self) -> SocketSession:
        try:
            self.ws = await self._stack.enter_async_context(
                connect(self.url, origin=self.origin, open_timeout=TURN_TIMEOUT_S, max_size=2**22))  # type: ignore[arg-type]
            await self.ws.send(json.dumps({"type": "hello", "token": None}))
            await self._until(lambda f: f.get("type") == "identity")
        except (OSError, InvalidHandshake, InvalidStatus, TimeoutError) as exc:
            await self._stack.aclose()
            raise TurnFailed("connect", repr(exc), fatal=True) from exc
        except TurnFailed:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self._stack.aclose()

    async def _until(self, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + TURN_TIMEOUT_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TurnFailed("timeout", f"no reply within {TURN_TIMEOUT_S:.0f}s", fatal=True)
            try:
                raw = await asyncio.wait_for(self.ws.recv(), left)
            except TimeoutError as exc:
                raise TurnFailed("timeout", f"no reply within {TURN_TIMEOUT_S:.0f}s", fatal=True) from exc
            except ConnectionClosed as exc:
                raise TurnFailed("closed", f"socket closed: {exc}", fatal=True) from exc
            frame = json.loads(raw)
            if frame.get("type") == "error":
                raise TurnFailed("rate_limited" if frame.get("error") == "rate_limited" else "error_frame",
                                 str(frame.get("text")))
            if done(frame):
                return frame

    async def say(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            await self.ws.send(json.dumps(message))
        except ConnectionClosed as exc:
            raise TurnFailed("closed", f"socket closed: {exc}", fatal=True) from exc
        frame = await self._until(lambda f: f.get("type") == "bot")
        return list(frame.get("messages") or [])

    async def settle(self) -> None:
        """Read the turn's trailing ``typing`` off frame (not part of the latency)."""
        await self._until(lambda f: f.get("type") == "typing" and not f.get("on"))


class HttpSession(Session):
    def __init__(self, client: httpx.AsyncClient, base_url: str, conversation_id: str) -> None:
        self.client, self.url, self.conversation_id = client, f"{base_url.rstrip('/')}/api/chat", conversation_id

    async def say(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        body = {"conversation_id": self.conversation_id, "text": message.get("payload") or message["text"]}
        try:
            response = await self.client.post(self.url, json=body, timeout=TURN_TIMEOUT_S)
        except httpx.TimeoutException as exc:
            raise TurnFailed("timeout", repr(exc), fatal=True) from exc
        except httpx.HTTPError as exc:
            raise TurnFailed("connect", repr(exc), fatal=True) from exc
        if response.status_code != 200:
            raise TurnFailed(f"http_{response.status_code}", response.text, fatal=response.status_code >= 500)
        return list(response.json().get("replies") or [])


@dataclass
class Bench:
    base_url: str
    shoppers: int
    seconds: float
    orders: list[DemoOrder]
    transport: str = "ws"
    seed: int = 7
    think_s: tuple[float, float] = THINK_S
    stats: Stats = field(default_factory=Stats)
    _client: httpx.AsyncClient | None = None

    def session(self) -> Session:
        conversation_id = f"load-{uuid.uuid4().hex[:16]}"
        if self.transport == "http":
            assert self._client is not None
            return HttpSession(self._client, self.base_url, conversation_id)
        return SocketSession(self.base_url, conversation_id)

    async def visit(self, script: Script, rng: random.Random, deadline: float, measured: bool = True) -> None:
        stats = self.stats if measured else Stats()
        stats.scripts[script.name] += 1
        try:
            async with self.session() as session:
                seen: list[dict[str, Any]] = []
                for index, turn in enumerate(script.turns):
                    if index and measured:
                        await asyncio.sleep(rng.uniform(*self.think_s))
                    if time.monotonic() >= deadline:
                        return
                    message = message_for(turn, seen, rng)
                    stats.turns += 1
                    start = time.perf_counter()
                    try:
                        replies = await session.say(message)
                    finally:
                        elapsed = (time.perf_counter() - start) * 1000
                    stats.latencies_ms.append(elapsed)
                    seen += replies
                    try:
                        check(turn, replies)
                    except TurnFailed as failed:
                        if not measured:
                            raise
                        stats.error(failed.kind, f"{script.name}: {failed.detail}")
                        if failed.fatal:
                            return
                    if isinstance(session, SocketSession):
                        await session.settle()
        except TurnFailed as failed:
            stats.error(failed.kind, f"{script.name}: {failed.detail}")
            if not measured:
                raise WarmUpFailed(failed.kind, failed.detail) from failed

    async def warm_up(self, patience_s: float = WARM_UP_S) -> None:
        """Wait until the assistant answers (the action server loads its models on the first call), then run
        every script once; none of it is measured."""
        deadline = time.monotonic() + patience_s
        while True:
            try:
                await self.visit(Script("warm_up", [Turn("hello")]), random.Random(), math.inf, measured=False)
                break
            except WarmUpFailed as failed:
                if failed.kind not in ("degraded", "empty", "timeout") or time.monotonic() > deadline:
                    raise  # nothing listens there, or it never became ready
                await asyncio.sleep(2)
        warm = random.Random(self.seed)
        for make in scripts(warm, self.orders).values():
            await self.visit(make(), warm, math.inf, measured=False)

    async def shopper(self, number: int, deadline: float) -> None:
        rng = random.Random(f"{self.seed}:{number}")
        made = scripts(rng, self.orders)
        names = list(made)
        weights = [WEIGHTS[n] for n in names]
        await asyncio.sleep(rng.uniform(0, self.think_s[1]))  # shoppers arrive spread out, not all at once
        while time.monotonic() < deadline:
            await self.visit(made[rng.choices(names, weights)[0]](), rng, deadline)
            await asyncio.sleep(rng.uniform(*self.think_s))

    async def run(self) -> dict[str, Any]:
        limits = httpx.Limits(max_connections=self.shoppers + 10, max_keepalive_connections=self.shoppers + 10)
        async with httpx.AsyncClient(limits=limits) as client:
            self._client = client
            await self.warm_up()
            started = time.monotonic()
            deadline = started + self.seconds
            await asyncio.gather(*(self.shopper(n, deadline) for n in range(self.shoppers)))
            elapsed = time.monotonic() - started
        return self.result(elapsed)

    def result(self, elapsed: float) -> dict[str, Any]:
        s = self.stats
        return {
            "shoppers": self.shoppers, "minutes": round(self.seconds / 60, 3), "transport": self.transport,
            "turns": s.turns, "throughput": round(s.turns / elapsed, 2) if elapsed else 0.0,
            "p50_ms": percentile(s.latencies_ms, 50), "p95_ms": percentile(s.latencies_ms, 95),
            "p99_ms": percentile(s.latencies_ms, 99),
            "max_ms": round(max(s.latencies_ms), 1) if s.latencies_ms else None,
            "errors": sum(s.errors.values()), "errors_by_kind": dict(sorted(s.errors.items())),
            "error_samples": s.samples, "visits": dict(sorted(s.scripts.items())),
            "elapsed_s": round(elapsed, 1),
        }


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile, in ms rounded to 0.1."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 1)


def demo_orders(base_url: str, database_url: str | None = None) -> list[DemoOrder]:
    """Orders a guest can track: the demo customers' showcase orders, from the gateway (demo mode) or, failing
    that, from ``database_url``. Empty when neither has any (the order-tracking script is then left out)."""
    try:
        response = httpx.get(f"{base_url.rstrip('/')}/api/demo/customers", timeout=10)
        if response.status_code == 200:
            found = [DemoOrder(c["order_number"], c["email"]) for c in response.json()["customers"]]
            if found:
                return found
    except (httpx.HTTPError, ValueError, KeyError):
        pass
    if database_url is None:
        return []
    from bot.db import session_scope
    from bot.demo.orders import demo_customers

    with session_scope(database_url) as session:
        return [DemoOrder(c.order_number, c.email) for c in demo_customers(session)]


@contextlib.contextmanager
def own_stack(model: Path | None = None, log_path: Path | None = None) -> Iterator[str]:
    """Rasa with ``model`` (default: models/rasa/shop.tar.gz), the action server and the gateway on free ports,
    with a throwaway tracker store; yields the gateway URL."""
    import socket
    import sys

    from bot.training import rasa_model
    from devstack.stack import Stack, StackConfig

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    model = model or rasa_model.model_path()
    if not model.exists():
        raise RuntimeError(f"no trained Rasa model at {model}: run `make model` first")
    with tempfile.TemporaryDirectory(prefix="loadbench-") as tmp:
        log_file = log_path or Path(tmp) / "stack.log"
        with log_file.open("w") as log:
            config = StackConfig(rasa_port=free_port(), actions_port=free_port(), gateway_port=free_port(),
                                 model=model, tracker_db=Path(tmp) / "tracker.sqlite3",
                                 python=Path(sys.executable), rasa_bin=rasa_model.rasa_executable(), color=False)
            config.extra_env.update(STACK_ENV)
            stack = Stack(config, output=log)
            stack.start()
            try:
                try:
                    stack.wait_healthy(timeout=300)
                except (RuntimeError, TimeoutError) as exc:
                    log.flush()
                    raise RuntimeError(f"the stack did not start: {exc}\n{log_file.read_text()[-3000:]}") from exc
                yield stack.gateway_url
            finally:
                stack.stop()


# Environment for a stack the benchmark starts itself: every simulated shopper comes from 127.0.0.1, so the
# per-address chat rate limit (meant for one real client) is lifted; the per-conversation limit stays. Against a
# gateway of your own (``--url``) set SHOP_RATE_LIMIT_EXEMPT to the driver's address, or turns count as
# ``rate_limited`` (websocket) or ``http_429`` errors.
STACK_ENV: dict[str, str] = {"SHOP_RATE_LIMIT_PER_ADDRESS": "off"}


def run(shoppers: int, minutes: float, url: str | None = None, transport: str = "ws", seed: int = 7,
        database_url: str | None = None, model: Path | None = None,
        orders: list[DemoOrder] | None = None) -> dict[str, Any]:
    """Run the benchmark against ``url`` (or a stack started for it with ``model``) and return the result.

    ``orders`` to track (default: the demo customers', see ``demo_orders``)."""
    if shoppers < 1 or minutes <= 0:
        raise ValueError("--shoppers must be at least 1 and --minutes above 0")
    if transport not in ("ws", "http"):
        raise ValueError(f"--transport must be ws or http, got {transport!r}")

    def bench(base_url: str) -> dict[str, Any]:
        tracked = demo_orders(base_url, database_url) if orders is None else orders
        return asyncio.run(Bench(base_url, shoppers, minutes * 60, tracked, transport, seed).run())

    if url:
        return bench(url)
    with own_stack(model) as gateway_url:
        return bench(gateway_url)
