"""Gateway hardening against a real uvicorn: headers, rate limits, size limits, websocket origins,
production start-up checks and the token on Rasa's HTTP API."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import httpx
import pytest
import websockets
from fastapi.testclient import TestClient

from bot import production
from bot.config import DEV_JWT_SECRET, Settings
from bot.conversation.rasa_client import RasaClient
from bot.conversation.rate_limits import ChatLimiter, MemoryBuckets, Rule
from bot.web.app import create_app
from tests.conftest import ROOT
from tests.support.gateway_server import down_url, running_gateway

CSP_NEEDS = ("script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "object-src 'none'")


def settings(**overrides: object) -> Settings:
    down = down_url()
    base: dict[str, object] = {"rasa_url": down, "actions_url": down, "rasa_timeout_s": 2.0}
    return Settings(**{**base, **overrides})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def gateway(catalog: int) -> Iterator[str]:
    with running_gateway(settings(rate_limit_per_conversation="3/min burst 3",
                                  rate_limit_per_address="off", allowed_origins="https://shop.example")) as url:
        yield url


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize("path", ["/", "/widget.js", "/widget.css", "/static/shop.js", "/healthz", "/nope",
                                  "/agent/login"])
def test_every_response_has_the_security_headers(gateway: str, path: str) -> None:
    response = httpx.get(gateway + path)
    headers = response.headers
    assert all(part in headers["content-security-policy"] for part in CSP_NEEDS), headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert "camera=()" in headers["permissions-policy"]
    assert headers["referrer-policy"]
    assert "strict-transport-security" not in headers  # plain HTTP


def test_the_agent_console_keeps_its_own_headers(gateway: str) -> None:
    response = httpx.get(gateway + "/agent/login")
    assert response.headers["referrer-policy"] == "same-origin" and response.headers["cache-control"] == "no-store"
    assert response.headers.get_list("content-security-policy") == [response.headers["content-security-policy"]]


def test_pages_carry_no_inline_script_or_style(gateway: str) -> None:
    """What the CSP forbids must not be on our pages (the browser would refuse it)."""
    for path in ("/", "/agent/login", "/products/1"):
        page = httpx.get(gateway + path).text
        assert "<style" not in page and "style=" not in page, path
        assert "<script>" not in page and "<script " not in page.replace('<script src="', ""), path


def test_hsts_over_https(catalog: int) -> None:
    with running_gateway(settings(trusted_proxies="127.0.0.1")) as url:  # TLS ends at the shop's proxy
        response = httpx.get(url + "/", headers={"X-Forwarded-Proto": "https"})
    assert response.headers["strict-transport-security"].startswith("max-age=")


def test_forwarded_headers_count_only_from_the_shops_proxies(catalog: int) -> None:
    """A client behind no proxy cannot rotate X-Forwarded-For to escape the per-address limit; behind a
    configured proxy each forwarded address is its own client."""
    def burst(url: str) -> list[int]:
        return [httpx.post(url + "/api/chat", json={"conversation_id": f"fwd-{i:04d}", "text": "hi"},
                           headers={"X-Forwarded-For": f"203.0.113.{i + 1}"}, timeout=10).status_code
                for i in range(6)]

    limits = {"rate_limit_per_conversation": "off", "rate_limit_per_address": "100/hour burst 4"}
    with running_gateway(settings(**limits)) as url:
        assert burst(url) == [200, 200, 200, 200, 429, 429]  # one peer, whatever the header says
        plain = httpx.get(url + "/", headers={"X-Forwarded-Proto": "https"})
        assert "strict-transport-security" not in plain.headers
    with running_gateway(settings(**limits, trusted_proxies="127.0.0.1/32")) as url:
        assert burst(url) == [200] * 6  # six shoppers behind the shop's proxy
    with pytest.raises(ValueError, match="not an address or network"):
        Settings(trusted_proxies="proxy.internal")


def test_every_command_that_starts_the_gateway_leaves_proxy_headers_to_it() -> None:
    from devstack.stack import Stack, StackConfig

    assert "--no-proxy-headers" in Stack(StackConfig()).commands()["gateway"]
    from bot import PROJECT_ROOT

    assert '"--no-proxy-headers"' in (PROJECT_ROOT / "docker" / "app.Dockerfile").read_text()


def test_a_forged_host_header_cannot_widen_the_policy(gateway: str) -> None:
    response = httpx.get(gateway + "/", headers={"Host": "evil.example; script-src *"})
    policy = response.headers["content-security-policy"]
    assert "script-src *" not in policy and "script-src 'self';" in policy


# --------------------------------------------------------------------------- rate limits


def test_chat_over_the_conversation_limit_gets_429_with_retry_after(gateway: str) -> None:
    with httpx.Client(base_url=gateway, timeout=10) as client:
        answers = [client.post("/api/chat", json={"conversation_id": "rate-conv-0001", "text": f"hi {i}"})
                   for i in range(4)]
        other = client.post("/api/chat", json={"conversation_id": "rate-conv-0002", "text": "hi"})
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[3]
    assert 1 <= int(refused.headers["retry-after"]) <= 20
    detail = refused.json()["detail"]
    assert detail["error"] == "rate_limited" and detail["scope"] == "conversation"
    assert "wait" in detail["message"]
    assert other.status_code == 200  # another conversation has its own bucket


def test_chat_over_the_address_limit(catalog: int) -> None:
    with running_gateway(settings(rate_limit_per_conversation="off", rate_limit_per_address="100/hour burst 4")) as url:
        codes = [httpx.post(url + "/api/chat", json={"conversation_id": f"rate-addr-{i:04d}", "text": "hi"},
                            timeout=10) for i in range(6)]
    assert [c.status_code for c in codes] == [200, 200, 200, 200, 429, 429]
    assert codes[4].json()["detail"]["scope"] == "address"
    assert int(codes[4].headers["retry-after"]) == 36  # one message per 36 s refills the bucket


def test_exempt_addresses_are_not_limited(catalog: int) -> None:
    with running_gateway(settings(rate_limit_per_conversation="1/hour burst 1",
                                  rate_limit_exempt="127.0.0.0/8")) as url:
        codes = {httpx.post(url + "/api/chat", json={"conversation_id": "rate-exempt-01", "text": "hi"},
                            timeout=10).status_code for _ in range(4)}
    assert codes == {200}


def ws_url(base: str, conversation_id: str) -> str:
    return base.replace("http://", "ws://") + f"/ws/chat?conversation_id={conversation_id}"


async def frames_until(ws: websockets.ClientConnection, kind: str, limit: int = 10) -> dict:
    for _ in range(limit):
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if frame["type"] == kind:
            return frame
    raise AssertionError(f"no {kind} frame")


def test_websocket_over_the_limit_gets_an_error_frame_and_stays_open(gateway: str) -> None:
    async def run() -> tuple[list[dict], dict]:
        async with websockets.connect(ws_url(gateway, "rate-ws-00001")) as ws:
            bots = []
            for i in range(3):
                await ws.send(json.dumps({"type": "message", "text": f"hello {i}"}))
                bots.append(await frames_until(ws, "bot"))
            await ws.send(json.dumps({"type": "message", "text": "one too many"}))
            refused = await frames_until(ws, "error")
            await ws.send(json.dumps({"type": "hello"}))  # the socket still works
            await frames_until(ws, "identity")
            return bots, refused

    bots, refused = asyncio.run(run())
    assert len(bots) == 3
    assert refused["error"] == "rate_limited" and refused["retry_after"] >= 1 and "wait" in refused["text"]


def test_token_buckets_refill() -> None:
    now = [1000.0]
    buckets = MemoryBuckets(clock=lambda: now[0])
    rule = Rule.parse("20/min burst 10")
    assert rule == Rule(per_second=20 / 60, burst=10)
    assert [buckets.take_now("k", rule) for _ in range(10)] == [0.0] * 10
    assert buckets.take_now("k", rule) == pytest.approx(3.0)  # 1 token every 3 s
    now[0] += 3.0
    assert buckets.take_now("k", rule) == 0.0
    assert buckets.take_now("other", rule) == 0.0


def test_rate_limit_rules_parse_or_fail_clearly() -> None:
    assert Rule.parse("off") is None and Rule.parse("") is None
    assert Rule.parse("2/s") == Rule(per_second=2.0, burst=2)
    assert Rule.parse("120/minute, burst=60") == Rule(per_second=2.0, burst=60)
    for bad in ("20 per minute", "-1/min", "5/fortnight"):
        with pytest.raises(ValueError, match="rate limit"):
            Rule.parse(bad)
    with pytest.raises(ValueError, match="rate limit"):
        Settings(rate_limit_per_address="lots")


def test_the_limiter_checks_the_address_before_the_conversation() -> None:
    limiter = ChatLimiter(Rule.parse("1/hour burst 1"), Rule.parse("1/hour burst 2"))

    async def run() -> list[str | None]:
        out = []
        for conv in ("a-conversation", "a-conversation", "b-conversation", "c-conversation"):
            limited = await limiter.check(conv, "10.0.0.1")
            out.append(limited.scope if limited else None)
        return out

    assert asyncio.run(run()) == [None, "conversation", "address", "address"]


# --------------------------------------------------------------------------- size limits


def test_a_chat_body_over_the_limit_is_refused_with_413(gateway: str) -> None:
    big = {"conversation_id": "size-conv-0001", "text": "x" * 20_000}
    response = httpx.post(gateway + "/api/chat", json=big, timeout=10)
    assert response.status_code == 413 and response.json()["detail"]["error"] == "too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"conversation_id": "size-conv-0001", "text": "'
        for _ in range(40):
            yield b"y" * 1000
        yield b'"}'

    streamed = httpx.post(gateway + "/api/chat", content=chunks(), headers={"content-type": "application/json"},
                          timeout=10)
    assert streamed.status_code == 413
    assert httpx.get(gateway + "/healthz", timeout=10).status_code in (200, 503)


def test_websocket_frames_over_the_limit_and_binary_frames_get_an_error(gateway: str) -> None:
    async def run() -> list[dict]:
        async with websockets.connect(ws_url(gateway, "size-ws-00001"), max_size=None) as ws:
            out = []
            await ws.send(json.dumps({"type": "message", "text": "z" * 40_000}))
            out.append(await frames_until(ws, "error"))
            await ws.send(b"\xff\xfe binary")
            out.append(await frames_until(ws, "error"))
            await ws.send(b'{"type": "hello"}')  # UTF-8 in a binary frame is read like text
            out.append(await frames_until(ws, "identity"))
            return out

    too_long, unreadable, identity = asyncio.run(run())
    assert "too long" in too_long["text"] and "could not be read" in unreadable["text"]
    assert identity["signed_in"] is False


# --------------------------------------------------------------------------- websocket origins


async def opens_chat(base: str, origin: str | None, conversation_id: str = "origin-ws-0001") -> bool:
    """Whether a page from ``origin`` gets the chat; a refusal is close code 4403, which the widget shows
    (a refused handshake, HTTP 403, would reach the page as a bare 1006, like a network failure)."""
    headers = {"Origin": origin} if origin else {}
    async with websockets.connect(ws_url(base, conversation_id), additional_headers=headers) as ws:
        try:
            await ws.send(json.dumps({"type": "hello"}))
            await frames_until(ws, "identity")
            return True
        except websockets.ConnectionClosed as exc:
            assert exc.rcvd is not None and (exc.rcvd.code, exc.rcvd.reason) == (4403, "origin not allowed")
            return False


def test_shopper_websocket_origins(gateway: str) -> None:
    port = gateway.rsplit(":", 1)[1]

    async def opens(origin: str | None) -> bool:
        return await opens_chat(gateway, origin)

    async def run() -> dict[str | None, bool]:
        return {o: await opens(o) for o in (None, f"http://127.0.0.1:{port}", "https://shop.example",
                                            "https://evil.example", "null", f"http://127.0.0.1:{port}.evil.example")}

    assert asyncio.run(run()) == {None: True, f"http://127.0.0.1:{port}": True, "https://shop.example": True,
                                  "https://evil.example": False, "null": False,
                                  f"http://127.0.0.1:{port}.evil.example": False}


def test_the_public_url_and_a_wildcard_are_allowed(catalog: int) -> None:
    def opens(url: str, origin: str) -> bool:
        return asyncio.run(opens_chat(url, origin, "origin-ws-0002"))

    with running_gateway(settings(public_url="https://assistant.example/shop",
                                  allowed_origins="https://shop.example")) as url:
        assert opens(url, "https://assistant.example") and opens(url, "https://shop.example")
        assert not opens(url, "https://other.example")
    with running_gateway(settings(allowed_origins="*")) as url:
        assert opens(url, "https://other.example")


def test_in_development_any_page_may_embed_the_chat_and_production_must_name_them(catalog: int) -> None:
    """The demo's one script tag works on any page; in production only the listed origins (and production
    refuses to start without the list: test_production_lists_every_problem)."""
    from bot.web.security import allowed_origins

    with running_gateway(settings()) as url:  # SHOP_ALLOWED_ORIGINS unset, development
        assert asyncio.run(opens_chat(url, "http://localhost:9999", "origin-ws-0003"))
        assert asyncio.run(opens_chat(url, "https://any-shop.example", "origin-ws-0003"))
    assert allowed_origins(Settings(env="development")) == ["*"]
    assert allowed_origins(Settings(env="production")) == []  # this host and SHOP_PUBLIC_URL only
    assert allowed_origins(Settings(env="production", allowed_origins="https://a.example, https://b.example")) == [
        "https://a.example", "https://b.example"]


def test_agent_websocket_refuses_another_origin(gateway: str) -> None:
    import uuid

    from bot.auth import sessions, users
    from bot.db import session_scope

    with session_scope() as session:
        user = users.create_user(session, f"sec-{uuid.uuid4().hex[:8]}", "a-long-password-123", "agent")
        token, _ = sessions.start_session(session, user)
    port = gateway.rsplit(":", 1)[1]
    cookie = {"Cookie": f"shop_agent_session={token}"}

    async def close_code(origin: str) -> int | None:
        url = gateway.replace("http://", "ws://") + "/ws/agent"
        async with websockets.connect(url, additional_headers={**cookie, "Origin": origin}) as ws:
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                return 0 if frame["type"] == "hello" else -1
            except websockets.ConnectionClosed as exc:
                return exc.rcvd.code if exc.rcvd else None

    assert asyncio.run(close_code(f"http://127.0.0.1:{port}")) == 0
    assert asyncio.run(close_code("https://evil.example")) == 4401


# --------------------------------------------------------------------------- production mode


def good_production(**overrides: object) -> Settings:
    values: dict[str, object] = {"env": "production", "jwt_secret": "k" * 48, "rasa_token": "rasa-token-123",
                                 "actions_token": "actions-token-123", "allowed_origins": "https://shop.example",
                                 "demo_mode": False, "database_url": "postgresql+psycopg://shop@db/shop"}
    return Settings(**{**values, **overrides})  # type: ignore[arg-type]


def test_production_lists_every_problem() -> None:
    found = production.problems(Settings(env="production", jwt_secret=DEV_JWT_SECRET, rasa_token="",
                                         actions_token="", allowed_origins=" ", demo_mode=True,
                                         database_url="sqlite:///x.db"))
    assert [f.split()[0] for f in found] == ["SHOP_JWT_SECRET", "SHOP_RASA_TOKEN", "SHOP_ACTIONS_TOKEN",
                                             "SHOP_ALLOWED_ORIGINS", "SHOP_DEMO_MODE", "DATABASE_URL"]
    assert production.problems(good_production()) == []
    assert production.problems(good_production(jwt_secret="short")) == [
        "SHOP_JWT_SECRET is shorter than 32 characters"]
    production.check(good_production())
    production.check(Settings(env="development", database_url="sqlite:///x.db"))  # development: anything goes


def test_the_gateway_refuses_to_start_in_production_with_development_settings() -> None:
    app = create_app(Settings(env="production", demo_mode=True, database_url=os.environ["DATABASE_URL"],
                              rasa_token="", actions_token="", allowed_origins=""))
    with pytest.raises(production.ProductionConfigError) as refused, TestClient(app):
        pass
    message = str(refused.value)
    assert "the gateway refuses to start" in message
    for name in ("SHOP_JWT_SECRET", "SHOP_RASA_TOKEN", "SHOP_ACTIONS_TOKEN", "SHOP_ALLOWED_ORIGINS", "SHOP_DEMO_MODE",
                 "DATABASE_URL"):
        assert name in message


def test_the_action_server_refuses_to_start_in_production_with_development_settings() -> None:
    env = {**os.environ, "SHOP_ENV": "production", "SHOP_DEMO_MODE": "true"}
    for name in ("SHOP_JWT_SECRET", "SHOP_RASA_TOKEN", "SHOP_ACTIONS_TOKEN", "SHOP_ALLOWED_ORIGINS"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "actions.server", "--actions", "actions", "-p", "1"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "the action server refuses to start in production mode" in done.stderr
    assert "SHOP_JWT_SECRET" in done.stderr and "DATABASE_URL" in done.stderr and "SHOP_ACTIONS_TOKEN" in done.stderr


# --------------------------------------------------------------------------- Rasa's token


class Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []
    authorization: ClassVar[list[str | None]] = []

    def _answer(self, body: bytes) -> None:
        Recorder.seen.append(self.path)
        Recorder.authorization.append(self.headers.get("authorization"))
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(b'{"paused": false}')

    def do_POST(self) -> None:
        self._answer(b'[{"text": "hi"}]' if self.path.startswith("/webhooks") else b"{}")

    def log_message(self, *args: object) -> None:
        pass


def test_the_rasa_client_sends_the_token_to_the_api_and_the_webhook() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    async def run(token: str) -> None:
        client = RasaClient(base, 5.0, token=token)
        await client.send("token-conv-01", "hello")
        await client.is_paused("token-conv-01")
        await client.append_events("token-conv-01", [{"event": "pause"}])
        await client.aclose()

    try:
        Recorder.seen, Recorder.authorization = [], []
        asyncio.run(run("s3cret"))
        webhook, tracker, events = Recorder.seen
        assert "token=" not in webhook  # as a header on the webhook (rasa_addons/rest_channel.py), not in its URL
        assert Recorder.authorization[0] == "Bearer s3cret"
        assert "token=s3cret" in tracker and "token=s3cret" in events
        Recorder.seen, Recorder.authorization = [], []
        asyncio.run(run(""))
        assert not any("token=" in path for path in Recorder.seen) and Recorder.authorization == [None] * 3
    finally:
        server.shutdown()
