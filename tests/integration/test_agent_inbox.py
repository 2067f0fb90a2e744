"""The agent inbox: accounts, sessions, CSRF, roles, the live queue, claim races, replies, handback, rating.

The gateway runs for real (uvicorn on a free port, real SQLite, real websockets). For the tests that
do not need a trained model a real local HTTP server stands in for Rasa: it answers the REST channel
and records what the gateway appends to trackers (pause, agent lines, resume). The last test runs the
whole thing against the real Rasa server and action server (``stack`` fixture).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote, urlparse

import httpx
import pytest
from sqlalchemy import delete, select
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from bot.auth import sessions, users
from bot.auth.tables import LoginFailure, User
from bot.config import Settings
from bot.db import session_scope
from bot.handoff import tickets
from bot.handoff.context import build_packet
from bot.handoff.tables import Ticket, TicketMessage
from bot.web.hub import Hub
from bot.web.routes.tickets import BACK_WITH_BOT
from tests.conftest import ROOT
from tests.support.gateway_server import Endpoint, Gateway
from tests.support.local_http import LocalServer, QuietHandler

PASSWORD = "correct horse battery staple"
RUN = uuid.uuid4().hex[:6]


# --------------------------------------------------------------------------- a stand-in Rasa, the gateway


class FakeRasa(LocalServer):
    """A real HTTP server that answers like Rasa's REST channel and HTTP API, and records events."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.paused: set[str] = set()
        # sender -> replies to their next message, or a function that makes them (runs "during" Rasa's turn,
        # like action_escalate opening the ticket)
        self.script: dict[str, list[dict[str, Any]] | Callable[[], list[dict[str, Any]]]] = {}
        self.fail_events = False
        fake = self

        class Handler(QuietHandler):
            def _reply(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                path = urlparse(self.path).path
                if path == "/webhooks/rest/webhook":
                    fake.messages.append(body)
                    sender = body["sender"]
                    if sender in fake.paused:
                        return self._reply(200, [])
                    scripted = fake.script.pop(sender, None)
                    replies = (scripted() if callable(scripted) else scripted) or [{"text": "ok"}]
                    if any((r.get("custom") or {}).get("type") == "handoff" and r["custom"]["state"] == "queued"
                           for r in replies):
                        fake.paused.add(sender)  # what ConversationPaused does
                    return self._reply(200, [{"recipient_id": sender, **r} for r in replies])
                found = re.fullmatch(r"/conversations/(.+)/tracker/events", path)
                if found:
                    if fake.fail_events:
                        return self._reply(500, {"status": "failure"})
                    sender = unquote(found.group(1))
                    for event in body if isinstance(body, list) else [body]:
                        fake.events.setdefault(sender, []).append(event)
                        if event["event"] == "pause":
                            fake.paused.add(sender)
                        elif event["event"] == "resume":
                            fake.paused.discard(sender)
                    return self._reply(200, {"sender_id": sender, "paused": sender in fake.paused})
                return self._reply(404, {})

            def do_GET(self) -> None:
                path = urlparse(self.path).path
                found = re.fullmatch(r"/conversations/(.+)/tracker", path)
                if found:
                    sender = unquote(found.group(1))
                    return self._reply(200, {"sender_id": sender, "paused": sender in fake.paused})
                return self._reply(200, {"status": "ok"})

        super().__init__(Handler)

    def kinds(self, sender: str) -> list[str]:
        return [e["event"] for e in self.events.get(sender, [])]


@pytest.fixture(scope="module")
def rasa() -> Iterator[FakeRasa]:
    fake = FakeRasa()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def gateway(catalog: int, rasa: FakeRasa) -> Iterator[Gateway]:
    running = Gateway(Settings(rasa_url=rasa.url, actions_url=rasa.url, rasa_timeout_s=5.0))
    yield running
    running.close()


def make_user(role: str = "agent", name: str | None = None) -> users.UserView:
    with session_scope() as session:
        return users.create_user(session, f"{role}-{uuid.uuid4().hex[:8]}", PASSWORD, role, name)


class AgentClient:
    """One browser's worth of agent: cookie jar, CSRF token, helpers for the JSON API and the websocket."""

    def __init__(self, gateway: Endpoint, user: users.UserView) -> None:
        self.gateway = gateway
        self.user = user
        self.http = httpx.Client(base_url=gateway.url, trust_env=False, timeout=30)
        self.csrf = ""

    def login(self, password: str = PASSWORD) -> httpx.Response:
        form = self.http.get("/agent/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert form.status_code == 200 and token
        response = self.http.post("/agent/login", data={"username": self.user.username, "password": password,
                                                        "csrf": token.group(1)})
        if response.status_code == 303:
            self.csrf = self.http.get("/agent/api/me").json()["csrf_token"]
        return response

    def post(self, path: str, body: dict[str, Any] | None = None, csrf: str | None = None) -> httpx.Response:
        return self.http.post(path, json=body or {}, headers={"X-CSRF-Token": self.csrf if csrf is None else csrf})

    def socket(self, origin: str | None = None) -> ClientConnection:
        cookie = self.http.cookies.get("shop_agent_session")
        return connect(f"{self.gateway.ws_url}/ws/agent", additional_headers={"Cookie": f"shop_agent_session={cookie}"},
                       origin=origin, proxy=None, open_timeout=10)  # type: ignore[arg-type]

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def agent_factory(gateway: Gateway) -> Iterator:
    made: list[AgentClient] = []

    def make(role: str = "agent", name: str | None = None, login: bool = True) -> AgentClient:
        client = AgentClient(gateway, make_user(role, name))
        if login:
            assert client.login().status_code == 303
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def conversation() -> str:
    return f"conv-{RUN}-{uuid.uuid4().hex[:10]}"


def open_ticket(conversation_id: str, reason: str = "negative_mood", priority: int = 40,
                text: str = "my parcel still hasn't arrived, this is useless") -> int:
    """A ticket as action_escalate opens it (bot.handoff.tickets with a context packet)."""
    packet = build_packet(
        [{"role": "shopper", "text": "where is my order", "intent": "order_status", "confidence": 0.91,
          "sentiment": 0.0},
         {"role": "bot", "text": "Let me check that for you."},
         {"role": "shopper", "text": text, "intent": "complain", "confidence": 0.84, "sentiment": -0.71}],
        reason, None, None, [], None, {"query": "rain jacket", "filters": {"color": "red"}}, {"order_number": "NW-1"},
        mood_trajectory=[0.0, -0.45])
    with session_scope() as session:
        ticket, created = tickets.open_ticket(session, conversation_id=conversation_id, customer_id=None,
                                              reason=reason, context=packet, priority=priority)
        assert created
        return ticket.id


def receive_until(ws: ClientConnection, wanted: Any, timeout: float = 10.0) -> dict[str, Any]:
    """The first frame for which ``wanted(frame)`` is true (frames before it are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("the expected frame did not arrive")
        frame = json.loads(ws.recv(timeout=left))
        if wanted(frame):
            return frame


def frames_for(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    got = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            got.append(json.loads(ws.recv(timeout=left)))
        except TimeoutError:
            break
    return got


def widget(gateway: Endpoint, conversation_id: str, ticket_id: int | None = None) -> ClientConnection:
    """A shopper's widget socket after its hello; with a queued ticket the gateway says so right away."""
    ws = connect(f"{gateway.ws_url}/ws/chat?conversation_id={conversation_id}", proxy=None, open_timeout=10)
    ws.send(json.dumps({"type": "hello", "token": None}))
    assert json.loads(ws.recv(timeout=10)) == {"type": "identity", "signed_in": False}
    if ticket_id is not None:
        assert json.loads(ws.recv(timeout=10)) == {"type": "handoff", "state": "queued", "ticket_id": ticket_id}
    return ws


# --------------------------------------------------------------------------- accounts and sessions


def test_passwords_are_argon2_hashes_and_bad_accounts_are_refused(catalog: int) -> None:
    user = make_user("agent", "Dana")
    with session_scope() as session:
        stored = session.get(User, user.id)
        assert stored is not None and stored.password_hash.startswith("$argon2id$")
        assert PASSWORD not in stored.password_hash
        assert users.authenticate(session, user.username.upper(), PASSWORD) == user  # names are case-insensitive
        assert users.authenticate(session, user.username, PASSWORD + "x") is None
        assert users.authenticate(session, "nobody-here", PASSWORD) is None
        with pytest.raises(users.UserExists):
            users.create_user(session, user.username, PASSWORD, "agent")
        with pytest.raises(ValueError, match="at least 10"):
            users.create_user(session, f"short-{RUN}", "short", "agent")
        with pytest.raises(ValueError, match="role"):
            users.create_user(session, f"boss-{RUN}", PASSWORD, "boss")
        with pytest.raises(ValueError, match="username"):
            users.create_user(session, "a b", PASSWORD, "agent")
        stored.active = False
        session.flush()
        assert users.authenticate(session, user.username, PASSWORD) is None  # deactivated


def test_sessions_expire_and_end(catalog: int) -> None:
    user = make_user()
    with session_scope() as session:
        token, auth = sessions.start_session(session, user)
        assert sessions.load_session(session, token) is not None
        assert sessions.load_session(session, token + "x") is None
        later = auth.expires_at + sessions.TOUCH_EVERY
        assert sessions.load_session(session, token, now=later) is None  # expired, and deleted
        assert sessions.load_session(session, token) is None
        token, _ = sessions.start_session(session, user)
        idle = tickets.utcnow() + sessions.IDLE_TIMEOUT + sessions.TOUCH_EVERY
        assert sessions.load_session(session, token, now=idle) is None  # idle too long
        token, _ = sessions.start_session(session, user)
        assert sessions.end_session(session, token) is True
        assert sessions.load_session(session, token) is None


def test_cli_adds_and_lists_users(catalog: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    name = f"cli-{RUN}"
    added = subprocess.run([sys.executable, "-m", "bot", "users", "add", name, "--role", "lead", "--name",
                            "Casey Lead", "--password-stdin"], input=PASSWORD + "\n", capture_output=True, text=True,
                           env=env, cwd=ROOT, timeout=120)
    assert added.returncode == 0, added.stderr
    assert f"user {name} (lead" in added.stdout
    again = subprocess.run([sys.executable, "-m", "bot", "users", "add", name, "--role", "agent",
                            "--password-stdin"], input=PASSWORD + "\n", capture_output=True, text=True, env=env,
                           cwd=ROOT, timeout=120)
    assert again.returncode == 2 and "already exists" in again.stderr
    listed = subprocess.run([sys.executable, "-m", "bot", "users", "list"], capture_output=True, text=True, env=env,
                            cwd=ROOT, timeout=120)
    assert listed.returncode == 0 and re.search(rf"{name}\s+lead\s+Casey Lead\s+yes", listed.stdout), listed.stdout
    with session_scope() as session:
        assert users.authenticate(session, name, PASSWORD) is not None


def test_login_session_cookie_and_logout(gateway: Gateway, agent_factory) -> None:  # type: ignore[no-untyped-def]
    agent = agent_factory(login=False)
    assert agent.http.get("/agent").status_code == 303  # not logged in: to the login page
    assert agent.http.get("/agent/api/me").status_code == 401

    wrong = agent.login(password="not the password at all")
    assert wrong.status_code == 401 and "Wrong username or password" in wrong.text
    assert "shop_agent_session" not in agent.http.cookies

    response = agent.login()
    assert response.status_code == 303 and response.headers["location"] == "/agent"
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("shop_agent_session="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain HTTP to 127.0.0.1 (development); see the next test
    page = agent.http.get("/agent")
    assert page.status_code == 200 and 'src="/agent/static/agent.js"' in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    me = agent.http.get("/agent/api/me").json()
    assert me["user"]["username"] == agent.user.username and len(me["csrf_token"]) >= 32

    assert agent.post("/agent/logout", csrf="nope").status_code == 403  # logging out needs the token too
    assert agent.post("/agent/logout").status_code == 200
    assert agent.http.get("/agent/api/me").status_code == 401
    with session_scope() as session:  # the server-side session is gone, not only the cookie
        assert session.query(sessions.UserSession).filter_by(user_id=agent.user.id).count() == 0


def test_failed_logins_are_throttled_by_name_and_address(gateway: Gateway) -> None:
    user, other = make_user(), make_user()

    def attempt(http: httpx.Client, username: str, password: str) -> httpx.Response:
        token = re.search(r'name="csrf" value="([^"]+)"', http.get("/agent/login").text).group(1)  # type: ignore[union-attr]
        return http.post("/agent/login", data={"username": username, "password": password, "csrf": token},
                         headers={"Cookie": f"shop_login_csrf={token}"})

    with session_scope() as session:  # earlier tests failed logins from 127.0.0.1 too
        session.execute(delete(LoginFailure))
    try:
        with httpx.Client(base_url=gateway.url, trust_env=False) as http:
            assert [attempt(http, user.username, "wrong").status_code for _ in range(10)] == [401] * 10
            refused = attempt(http, user.username, PASSWORD)  # the right password, too late
            assert refused.status_code == 429 and "Too many failed attempts" in refused.text
            assert attempt(http, other.username, PASSWORD).status_code == 429  # the address is blocked too
            with session_scope() as session:  # counted in the database, where every replica sees it
                keys = set(session.scalars(select(LoginFailure.key)))
            assert f"user:{user.username.lower()}" in keys and "addr:127.0.0.1" in keys
            assert f"user:{user.username.lower()}|addr:127.0.0.1" in keys
    finally:
        with session_scope() as session:  # other tests log in from 127.0.0.1
            session.execute(delete(LoginFailure))


def test_cookies_are_secure_off_loopback_and_login_needs_its_form_token(gateway: Gateway) -> None:
    user = make_user()
    with httpx.Client(base_url=gateway.url, trust_env=False, headers={"Host": "inbox.shop.example"}) as http:
        form = http.get("/agent/login")
        login_cookie = form.headers["set-cookie"]
        assert "Secure" in login_cookie and "HttpOnly" in login_cookie
        token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        no_cookie = http.post("/agent/login", data={"username": user.username, "password": PASSWORD, "csrf": token})
        assert no_cookie.status_code == 403 and "expired" in no_cookie.text  # login CSRF: no matching cookie
        done = http.post("/agent/login", data={"username": user.username, "password": PASSWORD, "csrf": token},
                         headers={"Cookie": f"shop_login_csrf={token}"})
        assert done.status_code == 303
        session_cookie = next(h for h in done.headers.get_list("set-cookie") if h.startswith("shop_agent_session="))
        assert "Secure" in session_cookie and "HttpOnly" in session_cookie and "SameSite=strict" in session_cookie
        cross = http.post("/agent/login", data={"username": user.username, "password": PASSWORD, "csrf": token},
                          headers={"Cookie": f"shop_login_csrf={token}", "Origin": "https://evil.example"})
        assert cross.status_code == 403


def test_state_changes_need_the_csrf_token_and_the_right_role(gateway: Gateway, agent_factory) -> None:  # type: ignore[no-untyped-def]
    alice, bob, lead = agent_factory(), agent_factory(), agent_factory("lead")
    ticket_id = open_ticket(conversation())
    path = f"/agent/api/tickets/{ticket_id}/claim"
    assert alice.post(path, csrf="").json()["detail"]["error"] == "csrf"
    assert alice.post(path, csrf="wrong-token").status_code == 403
    assert bob.post(path, csrf=alice.csrf).status_code == 403  # another session's token is no good
    cross = alice.http.post(path, json={}, headers={"X-CSRF-Token": alice.csrf, "Origin": "https://evil.example"})
    assert cross.status_code == 403
    assert httpx.post(gateway.url + path, json={}, trust_env=False).status_code == 401
    with session_scope() as session:
        assert session.get(Ticket, ticket_id).status == "queued"  # none of that claimed it

    assert alice.post(path).status_code == 200
    # Bob (an agent) may neither move nor close Alice's ticket; a lead may.
    moved = bob.post(f"/agent/api/tickets/{ticket_id}/transfer", {"to_agent_id": bob.user.id})
    assert moved.status_code == 403 and moved.json()["detail"]["error"] == "not_assignee"
    assert bob.post(f"/agent/api/tickets/{ticket_id}/resolve").status_code == 403
    assert bob.post(f"/agent/api/tickets/{ticket_id}/replies", {"text": "hi"}).status_code == 409
    taken = lead.post(f"/agent/api/tickets/{ticket_id}/transfer", {"to_agent_id": bob.user.id, "note": "VIP"})
    assert taken.status_code == 200 and taken.json()["ticket"]["assignee_id"] == bob.user.id
    assert taken.json()["ticket"]["assignee_name"] == bob.user.name
    assert lead.post(f"/agent/api/tickets/{ticket_id}/transfer", {"to_agent_id": 10**8}).status_code == 422
    assert bob.post(f"/agent/api/tickets/{ticket_id}/replies", {"text": ""}).status_code == 422


def test_two_agents_claiming_at_once_get_one_winner(gateway: Gateway, agent_factory, rasa: FakeRasa) -> None:  # type: ignore[no-untyped-def]
    alice, bob = agent_factory(), agent_factory()
    for _ in range(8):
        cid = conversation()
        ticket_id = open_ticket(cid)
        barrier = threading.Barrier(2)

        def claim(agent: AgentClient, tid: int = ticket_id, gate: threading.Barrier = barrier) -> httpx.Response:
            gate.wait()
            return agent.post(f"/agent/api/tickets/{tid}/claim")

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(claim, [alice, bob]))
        codes = sorted(r.status_code for r in results)
        assert codes == [200, 409], [r.text for r in results]
        winner = alice if results[0].status_code == 200 else bob
        loser = results[1] if winner is alice else results[0]
        assert loser.json()["detail"]["error"] == "already_claimed"
        assert winner.user.name in loser.json()["detail"]["message"]
        with session_scope() as session:
            ticket = session.get(Ticket, ticket_id)
            assert ticket.status == "claimed" and ticket.assignee_id == winner.user.id
            joined = [m for m in ticket.messages if m.role == "system" and "joined" in m.text]
            assert len(joined) == 1
        assert rasa.kinds(cid).count("pause") == 1  # the bot was paused once, by the winner
        # Claiming again is harmless for the holder and still refused for the other.
        assert winner.post(f"/agent/api/tickets/{ticket_id}/claim").status_code == 200
        assert rasa.kinds(cid).count("pause") == 1


def test_queue_is_live_over_the_agent_websocket(gateway: Gateway, agent_factory, rasa: FakeRasa) -> None:  # type: ignore[no-untyped-def]
    alice = agent_factory(name="Alice")
    stranger = AgentClient(gateway, make_user())  # never logged in
    with pytest.raises(ConnectionClosed) as refused, stranger.socket() as ws:
        ws.recv(timeout=5)
    assert refused.value.rcvd is not None and refused.value.rcvd.code == 4401
    stranger.close()
    with pytest.raises(ConnectionClosed) as cross, alice.socket(origin="https://evil.example") as ws:
        ws.recv(timeout=5)
    assert cross.value.rcvd is not None and cross.value.rcvd.code == 4401

    with alice.socket(origin=gateway.url) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["type"] == "hello" and hello["user"]["name"] == "Alice"
        first = receive_until(ws, lambda f: f["type"] == "queue")
        assert first["agents_online"] >= 1  # this very socket counts as presence
        known = {t["id"] for t in first["tickets"]}

        # A shopper gets escalated: the action server opens the ticket, Rasa's reply carries the payload.
        cid = conversation()
        low = open_ticket(conversation(), reason="repeated_fallback", priority=15)
        opened_ids: list[int] = []

        def escalate() -> list[dict[str, Any]]:
            opened_ids.append(open_ticket(cid, reason="very_negative_message", priority=90))
            return [{"text": "I'm bringing in a person from our team."},
                    {"custom": {"type": "handoff", "state": "queued", "ticket_id": opened_ids[0],
                                "position": 1, "wait_minutes": 5}}]

        rasa.script[cid] = escalate
        started = time.monotonic()
        reply = httpx.post(gateway.url + "/api/chat", json={"conversation_id": cid, "text": "this is useless"},
                           trust_env=False, timeout=30)
        assert reply.status_code == 200
        ticket_id = opened_ids[0]
        assert reply.json()["replies"][1]["custom"]["ticket_id"] == ticket_id  # the widget gets it too
        opened = receive_until(ws, lambda f: f["type"] == "ticket_opened")
        assert time.monotonic() - started < 5
        assert opened["ticket"]["id"] == ticket_id and opened["ticket"]["id"] not in known
        assert opened["ticket"]["reason"] == "very_negative_message" and opened["ticket"]["status"] == "queued"
        assert "context" not in opened["ticket"]  # the queue row is small; the packet comes with "watch"

        # The shopper writes again while waiting: the message is stored and the queue row updates live.
        httpx.post(gateway.url + "/api/chat", json={"conversation_id": cid, "text": "hello?? anyone there"},
                   trust_env=False, timeout=30)
        updated = receive_until(ws, lambda f: f["type"] == "ticket_updated" and f["ticket"]["id"] == ticket_id)
        assert updated["ticket"]["last_message"] == "hello?? anyone there"

        queue = alice.http.get("/agent/api/queue").json()["tickets"]
        order = [t["id"] for t in queue]
        assert order.index(ticket_id) < order.index(low)  # priority first

        ws.send(json.dumps({"type": "watch", "ticket_id": ticket_id}))
        view = receive_until(ws, lambda f: f["type"] == "conversation")["ticket"]
        assert view["context"]["transcript"][2]["sentiment"] == -0.71
        assert view["context"]["last_search"]["query"] == "rain jacket"
        assert [m["text"] for m in view["messages"] if m["role"] == "shopper"] == ["hello?? anyone there"]
        ws.send("nonsense")
        assert receive_until(ws, lambda f: f["type"] == "error")["text"]


def test_replies_reach_the_widget_and_the_shopper_reaches_the_agent(gateway: Gateway, agent_factory,
                                                                      rasa: FakeRasa) -> None:  # type: ignore[no-untyped-def]
    alice = agent_factory(name="Alice")
    cid = conversation()
    ticket_id = open_ticket(cid)
    rasa.paused.add(cid)  # escalated while agents were online: the action paused the bot
    with widget(gateway, cid, ticket_id) as shopper, alice.socket(origin=gateway.url) as desk:
        receive_until(desk, lambda f: f["type"] == "queue")
        desk.send(json.dumps({"type": "watch", "ticket_id": ticket_id}))
        receive_until(desk, lambda f: f["type"] == "conversation")

        assert alice.post(f"/agent/api/tickets/{ticket_id}/replies", {"text": "too early"}).status_code == 409
        claimed = alice.post(f"/agent/api/tickets/{ticket_id}/claim")
        assert claimed.status_code == 200 and claimed.json()["paused"] is True
        assert json.loads(shopper.recv(timeout=10)) == {"type": "agent_joined", "name": "Alice"}
        assert "pause" not in rasa.kinds(cid)  # already paused: nothing appended

        hostile = 'Hi, I\'m Alice <img src=x onerror="alert(1)">. Let me look at your order.'
        sent = alice.post(f"/agent/api/tickets/{ticket_id}/replies", {"text": hostile})
        assert sent.status_code == 200 and sent.json()["widgets"] == 1 and sent.json()["in_transcript"] is True
        assert json.loads(shopper.recv(timeout=10)) == {"type": "agent", "text": hostile, "name": "Alice"}
        appended = rasa.events[cid][-1]
        assert appended == {"event": "bot", "text": hostile, "metadata": {"agent": alice.user.username}}

        note = alice.post(f"/agent/api/tickets/{ticket_id}/notes", {"text": "refund approved by finance"})
        assert note.status_code == 200
        assert receive_until(desk, lambda f: f["type"] == "message"
                             and f["message"]["role"] == "note")["message"]["text"] == "refund approved by finance"

        shopper.send(json.dumps({"type": "message", "text": "thank you, it is really frustrating"}))
        live = receive_until(desk, lambda f: f["type"] == "message" and f["message"]["role"] == "shopper")
        assert live["message"]["text"] == "thank you, it is really frustrating"
        assert isinstance(live["message"]["sentiment"], float)
        # With a person on the line the widget gets no bot typing dots, and never the internal note.
        frames = frames_for(shopper, 1.0)
        assert all(f["type"] not in ("typing", "bot") for f in frames), frames
        assert all("finance" not in json.dumps(f) for f in frames)
        assert rasa.messages[-1]["sender"] == cid  # Rasa still logged the message (its tracker stays whole)
        with session_scope() as session:
            roles = [m.role for m in session.query(TicketMessage).filter_by(ticket_id=ticket_id)
                     .order_by(TicketMessage.id)]
        assert roles == ["system", "agent", "note", "shopper"]

        # A reload asks the gateway who the shopper is talking to.
        with widget_with_state(gateway, cid) as again:
            pass
        assert again == {"type": "handoff", "state": "agent", "ticket_id": ticket_id, "name": "Alice"}


class widget_with_state:
    """Connect a second widget socket and capture the handoff state frame sent after its hello."""

    def __init__(self, gateway: Gateway, conversation_id: str) -> None:
        self.ws = connect(f"{gateway.ws_url}/ws/chat?conversation_id={conversation_id}", proxy=None)

    def __enter__(self) -> dict[str, Any]:
        self.ws.send(json.dumps({"type": "hello", "token": None}))
        assert json.loads(self.ws.recv(timeout=10))["type"] == "identity"
        return json.loads(self.ws.recv(timeout=10))  # type: ignore[no-any-return]

    def __exit__(self, *exc: object) -> None:
        self.ws.close()


def test_the_agent_sees_the_words_of_a_button_not_its_payload(gateway: Gateway, agent_factory,
                                                              rasa: FakeRasa) -> None:  # type: ignore[no-untyped-def]
    """Issue 16, item 5: a pressed button reaches Rasa as its payload and the agent as what the shopper clicked."""
    alice = agent_factory(name="Alice")
    cid = conversation()
    ticket_id = open_ticket(cid)
    with widget(gateway, cid, ticket_id) as shopper, alice.socket(origin=gateway.url) as desk:
        receive_until(desk, lambda f: f["type"] == "queue")
        desk.send(json.dumps({"type": "watch", "ticket_id": ticket_id}))
        receive_until(desk, lambda f: f["type"] == "conversation")
        payload = '/add_to_cart{"product_id": "17"}'
        shopper.send(json.dumps({"type": "message", "text": "Add to cart", "payload": payload}))
        live = receive_until(desk, lambda f: f["type"] == "message" and f["message"]["role"] == "shopper")
        assert live["message"]["text"] == "Add to cart"
        receive_until(shopper, lambda f: f["type"] == "bot")
        assert [m["message"] for m in rasa.messages if m["sender"] == cid] == [payload]  # Rasa gets the intent
        shopper.send(json.dumps({"type": "message", "text": "", "payload": "/request_followup"}))  # no words sent
        live = receive_until(desk, lambda f: f["type"] == "message" and f["message"]["role"] == "shopper")
        assert live["message"]["text"] == "[button: request followup]"
    with session_scope() as session:
        said = [m.text for m in session.query(TicketMessage).filter_by(ticket_id=ticket_id, role="shopper")
                .order_by(TicketMessage.id)]
    assert said == ["Add to cart", "[button: request followup]"]


def test_transfer_hands_the_chat_to_another_agent(gateway: Gateway, agent_factory) -> None:  # type: ignore[no-untyped-def]
    alice, bob = agent_factory(name="Alice"), agent_factory(name="Bob")
    cid = conversation()
    ticket_id = open_ticket(cid)
    with widget(gateway, cid, ticket_id) as shopper:
        assert alice.post(f"/agent/api/tickets/{ticket_id}/claim").status_code == 200
        assert json.loads(shopper.recv(timeout=10))["name"] == "Alice"
        moved = alice.post(f"/agent/api/tickets/{ticket_id}/transfer", {"to_agent_id": bob.user.id})
        assert moved.status_code == 200
        assert json.loads(shopper.recv(timeout=10)) == {"type": "agent_joined", "name": "Bob"}
        assert alice.post(f"/agent/api/tickets/{ticket_id}/replies", {"text": "me again"}).status_code == 409
        assert bob.post(f"/agent/api/tickets/{ticket_id}/replies", {"text": "Bob here"}).status_code == 200
        assert json.loads(shopper.recv(timeout=10))["name"] == "Bob"
        back = bob.post(f"/agent/api/tickets/{ticket_id}/transfer", {"to_agent_id": None})
        assert back.status_code == 200 and back.json()["ticket"]["status"] == "queued"
        left = json.loads(shopper.recv(timeout=10))
        assert left["type"] == "agent_left" and left["requeued"] is True and "queue" in left["text"]


def test_resolve_hands_back_to_the_bot_and_the_shopper_rates(gateway: Gateway, agent_factory,
                                                             rasa: FakeRasa) -> None:  # type: ignore[no-untyped-def]
    alice = agent_factory(name="Alice")
    cid = conversation()
    ticket_id = open_ticket(cid)
    with widget(gateway, cid, ticket_id) as shopper:
        assert alice.post(f"/agent/api/tickets/{ticket_id}/claim").status_code == 200
        receive_until(shopper, lambda f: f["type"] == "agent_joined")

        rasa.fail_events = True  # Rasa cannot take the conversation back: the ticket stays open
        try:
            failed = alice.post(f"/agent/api/tickets/{ticket_id}/resolve")
        finally:
            rasa.fail_events = False
        assert failed.status_code == 502 and "stays open" in failed.json()["detail"]["message"]
        with session_scope() as session:
            assert session.get(Ticket, ticket_id).status == "claimed"

        done = alice.post(f"/agent/api/tickets/{ticket_id}/resolve")
        assert done.status_code == 200 and done.json()["ticket"]["status"] == "resolved"
        assert rasa.kinds(cid)[-2:] == ["resume", "bot"] and cid not in rasa.paused
        assert rasa.events[cid][-1]["text"] == BACK_WITH_BOT
        left = json.loads(shopper.recv(timeout=10))
        assert left == {"type": "agent_left", "text": BACK_WITH_BOT}
        ask = json.loads(shopper.recv(timeout=10))
        assert ask["type"] == "rating" and ask["ticket_id"] == ticket_id and "1" in ask["text"]

        shopper.send(json.dumps({"type": "rating", "ticket_id": ticket_id, "rating": 4}))
        saved = receive_until(shopper, lambda f: f["type"].startswith("rating_"))
        assert saved["type"] == "rating_saved" and saved["rating"] == 4
        with session_scope() as session:
            ticket = session.get(Ticket, ticket_id)
            assert ticket.rating == 4 and ticket.rated_at is not None

        # The bot answers the next message again (Rasa is no longer paused for this conversation).
        shopper.send(json.dumps({"type": "message", "text": "do you sell umbrellas"}))
        assert [json.loads(shopper.recv(timeout=10))["type"] for _ in range(3)] == ["typing", "bot", "typing"]

    # Rating over HTTP: once, 1..5, and only from the ticket's own conversation.
    again = httpx.post(f"{gateway.url}/api/tickets/{ticket_id}/rating", json={"conversation_id": cid, "rating": 5},
                       trust_env=False)
    assert again.status_code == 409 and "already rated" in again.json()["detail"]["message"]
    other = httpx.post(f"{gateway.url}/api/tickets/{ticket_id}/rating",
                       json={"conversation_id": conversation(), "rating": 5}, trust_env=False)
    assert other.status_code == 404
    bad = httpx.post(f"{gateway.url}/api/tickets/{ticket_id}/rating", json={"conversation_id": cid, "rating": 7},
                     trust_env=False)
    assert bad.status_code == 422
    fresh_cid = conversation()
    fresh = open_ticket(fresh_cid)
    early = httpx.post(f"{gateway.url}/api/tickets/{fresh}/rating", json={"conversation_id": fresh_cid, "rating": 3},
                       trust_env=False)
    assert early.status_code == 409 and "resolved" in early.json()["detail"]["message"]
    assert alice.post(f"/agent/api/tickets/{ticket_id}/resolve").status_code == 409  # already resolved


def test_resolving_a_queued_ticket_the_bot_kept_answering_hands_nothing_back(gateway: Gateway, agent_factory,
                                                                             rasa: FakeRasa) -> None:  # type: ignore[no-untyped-def]
    """Nobody was online (the bot kept answering); the team answered by email and closes the ticket."""
    alice = agent_factory()
    cid = conversation()
    ticket_id = open_ticket(cid, reason="explicit_request")
    with widget(gateway, cid, ticket_id) as shopper:
        assert alice.post(f"/agent/api/tickets/{ticket_id}/resolve").status_code == 200
        assert json.loads(shopper.recv(timeout=10)) == {"type": "agent_left"}  # no "back with the bot", no rating
        assert frames_for(shopper, 0.5) == []
    assert rasa.kinds(cid) == []
    rated = httpx.post(f"{gateway.url}/api/tickets/{ticket_id}/rating", json={"conversation_id": cid, "rating": 3},
                       trust_env=False)  # API clients rate over HTTP
    assert rated.status_code == 200 and rated.json()["rating"] == 3
    with session_scope() as session:
        assert session.get(Ticket, ticket_id).rating == 3


def test_client_metadata_cannot_claim_a_segment(gateway: Gateway, rasa: FakeRasa) -> None:
    cid = conversation()
    httpx.post(gateway.url + "/api/chat", json={"conversation_id": cid, "text": "hi", "metadata": {"segment": "vip"}},
               trust_env=False, timeout=30)
    assert rasa.messages[-1]["sender"] == cid and "segment" not in rasa.messages[-1]["metadata"]


def test_signed_in_shoppers_carry_their_crm_segment(catalog: int, rasa: FakeRasa) -> None:
    from bot.shop import crm
    from bot.shop.identity import issue_token
    from bot.shop.tables import Customer

    secret = "test-secret-0123456789-0123456789-abcdef"
    running = Gateway(Settings(rasa_url=rasa.url, actions_url=rasa.url, jwt_secret=secret))
    try:
        with session_scope() as session:
            customer = Customer(email=f"segment-{RUN}@example.com", name="Sam Segment")
            session.add(customer)
            session.flush()
            segment = crm.profile(session, customer.id).segment
        token = issue_token(customer.id, 60, secret, "shop-assistant")
        cid = conversation()
        httpx.post(running.url + "/api/chat", json={"conversation_id": cid, "text": "hi", "token": token},
                   trust_env=False, timeout=30)
        assert rasa.messages[-1]["metadata"]["segment"] == segment
        assert rasa.messages[-1]["metadata"]["customer_id"] == customer.id
    finally:
        running.close()


# --------------------------------------------------------------------------- the hub


def test_hub_fans_out_and_drops_a_subscriber_that_falls_behind() -> None:
    import asyncio

    async def scenario() -> None:
        hub = Hub()
        fast = hub.subscribe("queue", "ticket:1")
        slow = hub.subscribe("queue", maxsize=2)
        assert hub.publish("queue", {"n": 1}) == 2
        assert hub.publish("ticket:1", {"n": 2}) == 1
        assert hub.publish("nobody", {"n": 3}) == 0
        assert [await fast.get(), await fast.get()] == [{"n": 1}, {"n": 2}]
        hub.publish("queue", {"n": 4})
        assert hub.publish("queue", {"n": 5}) == 1  # slow had 2 waiting: dropped
        assert slow.overflowed and slow.closed and hub.subscribers("queue") == 1
        assert [e async for e in slow] == [{"n": 1}, {"n": 4}]  # what it had, then the end
        async with fast:
            pass
        assert hub.subscribers("queue") == 0 and hub.subscribers("ticket:1") == 0

    asyncio.run(scenario())


# --------------------------------------------------------------------------- with the real Rasa


@pytest.mark.integration
def test_handoff_round_trip_with_the_real_rasa(stack) -> None:  # type: ignore[no-untyped-def]
    """Escalate, claim (bot paused), reply (in Rasa's transcript), resolve (resumed): the bot answers again."""
    gateway = Endpoint(stack.gateway_url)
    agent = AgentClient(gateway, make_user(name="Robin"))
    assert agent.login().status_code == 303
    rasa_http = httpx.Client(base_url=stack.rasa_url, params={"token": stack.rasa_token}, trust_env=False, timeout=30)

    def tracker(cid: str) -> dict[str, Any]:
        return rasa_http.get(f"/conversations/{cid}/tracker").json()  # type: ignore[no-any-return]

    def chat(cid: str, text: str) -> list[dict[str, Any]]:
        response = httpx.post(gateway.url + "/api/chat", json={"conversation_id": cid, "text": text},
                              trust_env=False, timeout=60)
        assert response.status_code == 200 and response.json()["degraded"] is False, response.text
        return response.json()["replies"]  # type: ignore[no-any-return]

    try:
        with agent.socket(origin=gateway.url) as desk:
            receive_until(desk, lambda f: f["type"] == "queue")
            cid = conversation()
            replies = chat(cid, "i want to talk to a human")
            handoff = next(r["custom"] for r in replies if (r.get("custom") or {}).get("type") == "handoff")
            ticket_id = handoff["ticket_id"]
            opened = receive_until(desk, lambda f: f["type"] == "ticket_opened" and f["ticket"]["id"] == ticket_id)
            assert opened["ticket"]["reason"] == "explicit_request"

            with widget(gateway, cid, ticket_id) as shopper:
                assert agent.post(f"/agent/api/tickets/{ticket_id}/claim").json()["paused"] is True
                assert json.loads(shopper.recv(timeout=10)) == {"type": "agent_joined", "name": "Robin"}
                assert tracker(cid)["paused"] is True  # whether the action paused it (online) or the claim did

                said = agent.post(f"/agent/api/tickets/{ticket_id}/replies", {"text": "Hi, Robin here."}).json()
                assert said["in_transcript"] is True
                assert json.loads(shopper.recv(timeout=10))["text"] == "Hi, Robin here."
                last_bot = [e for e in tracker(cid)["events"] if e["event"] == "bot"][-1]
                assert last_bot["text"] == "Hi, Robin here." and last_bot["metadata"]["agent"] == agent.user.username

                assert chat(cid, "where is my parcel, it is late") == []  # paused: Rasa records, does not answer
                user_events = [e for e in tracker(cid)["events"] if e["event"] == "user"]
                assert user_events[-1]["text"] == "where is my parcel, it is late"
                assert "sentiment" in user_events[-1]["parse_data"]  # the transcript keeps every message's mood
                with session_scope() as session:
                    stored = [m for m in session.get(Ticket, ticket_id).messages if m.role == "shopper"]
                    assert stored[-1].text == "where is my parcel, it is late" and stored[-1].sentiment is not None

                assert agent.post(f"/agent/api/tickets/{ticket_id}/resolve").status_code == 200
                assert tracker(cid)["paused"] is False
                assert json.loads(shopper.recv(timeout=10))["type"] == "agent_left"
                assert json.loads(shopper.recv(timeout=10))["type"] == "rating"
            answer = chat(cid, "hello")
            assert any("shopping assistant" in (r.get("text") or "") for r in answer), answer
    finally:
        rasa_http.close()
        agent.close()
