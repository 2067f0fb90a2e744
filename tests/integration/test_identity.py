"""Signed customer tokens, and what the gateway lets through to Rasa: only identity it verified itself.

A real local HTTP server stands in for Rasa and records every message the gateway posts to it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from bot.config import Settings
from bot.conversation.requests import clean_metadata
from bot.shop import cart
from bot.shop.identity import InvalidToken, issue_token, verify_token
from bot.web.app import create_app

SECRET = "test-secret-0123456789-0123456789-abcdef"
ISSUER = "shop-assistant"


# --------------------------------------------------------------------------- tokens


def test_a_token_names_its_customer_until_it_expires() -> None:
    token = issue_token(42, 60, SECRET, ISSUER)
    assert verify_token(token, SECRET, ISSUER) == 42
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], issuer=ISSUER)
    assert claims["sub"] == "42" and claims["exp"] - claims["iat"] == 60 and claims["iss"] == ISSUER
    old = issue_token(42, 60, SECRET, ISSUER, now=time.time() - 3600)
    with pytest.raises(InvalidToken) as refused:
        verify_token(old, SECRET, ISSUER)
    assert refused.value.reason == "expired"


def _forge(claims: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def _tamper(token: str, sub: str) -> str:
    """The same signature over a payload that names another customer."""
    import base64

    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = sub
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{head}.{forged}.{signature}"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: _tamper(issue_token(42, 60, SECRET, ISSUER), "43"), "bad signature"),
        (lambda: issue_token(42, 60, "another-secret-0123456789-0123456789", ISSUER), "bad signature"),
        (lambda: _forge({"sub": "42", "iat": int(time.time()), "exp": int(time.time()) + 60, "iss": ISSUER},
                        secret=SECRET * 2, algorithm="HS512"), "bad signature"),
        (lambda: jwt.encode({"sub": "42", "iat": int(time.time()), "exp": int(time.time()) + 60, "iss": ISSUER},
                            None, algorithm="none"), "bad signature"),
        (lambda: _forge({"sub": "42", "iat": int(time.time()), "iss": ISSUER}), "missing claims"),
        (lambda: _forge({"sub": "42", "exp": int(time.time()) + 60, "iat": int(time.time())}), "missing claims"),
        (lambda: _forge({"sub": "42", "iat": int(time.time()), "exp": int(time.time()) + 60, "iss": "evil"}),
         "wrong issuer"),
        (lambda: _forge({"sub": "admin", "iat": int(time.time()), "exp": int(time.time()) + 60, "iss": ISSUER}),
         "malformed"),
        (lambda: _forge({"sub": "-3", "iat": int(time.time()), "exp": int(time.time()) + 60, "iss": ISSUER}),
         "malformed"),
        (lambda: "not.a.token", "malformed"),
        (lambda: "", "malformed"),
    ],
)
def test_a_token_that_proves_nothing_is_refused_with_a_reason(make, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidToken) as refused:
        verify_token(make(), SECRET, ISSUER)
    assert refused.value.reason == reason


def test_issuing_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="customer_id"):
        issue_token(0, 60, SECRET, ISSUER)
    with pytest.raises(ValueError, match="ttl_s"):
        issue_token(1, 0, SECRET, ISSUER)


def test_client_metadata_loses_every_identity_key() -> None:
    dirty = {"customer_id": 7, "Customer_Id": 8, "customerEmail": "a@b.c", "client_key": "ip:1.2.3.4",
             "email": "x@y.z", "auth": "yes", "channel": "widget", "page": "/products/1"}
    assert clean_metadata(dirty) == {"channel": "widget", "page": "/products/1"}


# --------------------------------------------------------------------------- the gateway, with a stand-in Rasa


class FakeRasa:
    """A real HTTP server on a free port that answers like Rasa's REST channel and records requests."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                received.append(body)
                reply = json.dumps([{"recipient_id": body["sender"], "text": "ok"}]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeRasa:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def last_metadata(self) -> dict[str, Any]:
        assert self.received, "nothing reached Rasa"
        return self.received[-1]["metadata"]


@pytest.fixture
def rasa() -> Iterator[FakeRasa]:
    with FakeRasa() as server:
        yield server


@pytest.fixture
def client(catalog: int, rasa: FakeRasa) -> Iterator[TestClient]:
    app = create_app(Settings(rasa_url=rasa.url, actions_url=rasa.url, jwt_secret=SECRET, jwt_issuer=ISSUER))
    with TestClient(app) as test_client:
        yield test_client


def _cid() -> str:
    return f"id-{uuid.uuid4().hex[:12]}"


def test_api_chat_strips_a_forged_customer_id(client: TestClient, rasa: FakeRasa) -> None:
    response = client.post("/api/chat", json={"conversation_id": _cid(), "text": "where is my order",
                                              "metadata": {"customer_id": 7, "client_key": "x", "page": "/"}})
    assert response.status_code == 200 and response.json()["replies"][0]["text"] == "ok"
    metadata = rasa.last_metadata()
    assert "customer_id" not in metadata
    assert metadata["page"] == "/" and metadata["channel"] == "api"
    assert metadata["client_key"] == "ip:testclient"  # the gateway's view of the client, not the client's claim


def test_api_chat_passes_the_customer_a_valid_token_names(client: TestClient, rasa: FakeRasa) -> None:
    token = issue_token(31, 60, SECRET, ISSUER)
    body = {"conversation_id": _cid(), "text": "hi", "token": token, "metadata": {"customer_id": 99}}
    assert client.post("/api/chat", json=body).status_code == 200
    assert rasa.last_metadata()["customer_id"] == 31
    bearer = {"conversation_id": _cid(), "text": "hi"}
    assert client.post("/api/chat", json=bearer, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert rasa.last_metadata()["customer_id"] == 31
    assert rasa.received[-1]["sender"] == bearer["conversation_id"]  # the conversation id stays the sender


@pytest.mark.parametrize("reason", ["expired", "bad signature", "malformed"])
def test_api_chat_refuses_an_invalid_token_with_401(client: TestClient, rasa: FakeRasa, reason: str) -> None:
    token = {"expired": issue_token(31, 60, SECRET, ISSUER, now=time.time() - 7200),
             "bad signature": _tamper(issue_token(31, 60, SECRET, ISSUER), "32"),
             "malformed": "garbage"}[reason]
    response = client.post("/api/chat", json={"conversation_id": _cid(), "text": "hi", "token": token})
    assert response.status_code == 401
    detail = response.json()["detail"]
    assert detail["error"] == "invalid_token" and detail["reason"] == reason and reason in detail["message"]
    assert response.headers["www-authenticate"].startswith("Bearer")
    header = client.post("/api/chat", json={"conversation_id": _cid(), "text": "hi"},
                         headers={"Authorization": f"Bearer {token}"})
    assert header.status_code == 401
    assert rasa.received == []  # nothing reached Rasa


def test_widget_socket_identifies_with_a_hello_and_falls_back_to_guest(client: TestClient, rasa: FakeRasa) -> None:
    token = issue_token(55, 60, SECRET, ISSUER)
    with client.websocket_connect(f"/ws/chat?conversation_id={_cid()}") as ws:
        ws.send_json({"type": "message", "text": "hi", "customer_id": 12, "metadata": {"customer_id": 12}})
        assert [ws.receive_json()["type"] for _ in range(3)] == ["typing", "bot", "typing"]
        assert "customer_id" not in rasa.last_metadata()

        ws.send_json({"type": "hello", "token": token})
        assert ws.receive_json() == {"type": "identity", "signed_in": True}
        ws.send_json({"type": "message", "text": "my orders"})
        assert [ws.receive_json()["type"] for _ in range(3)] == ["typing", "bot", "typing"]
        assert rasa.last_metadata()["customer_id"] == 55 and rasa.last_metadata()["channel"] == "widget"

        ws.send_json({"type": "hello", "token": issue_token(55, 60, SECRET, ISSUER, now=time.time() - 7200)})
        refused = ws.receive_json()
        assert refused["type"] == "identity" and refused["signed_in"] is False and refused["reason"] == "expired"
        assert "guest" in refused["text"]
        ws.send_json({"type": "message", "text": "my orders"})
        assert [ws.receive_json()["type"] for _ in range(3)] == ["typing", "bot", "typing"]
        assert "customer_id" not in rasa.last_metadata()  # an expired token identifies nobody

        ws.send_json({"type": "hello", "token": token})
        assert ws.receive_json()["signed_in"] is True
        ws.send_json({"type": "hello", "token": None})  # signed out
        assert ws.receive_json() == {"type": "identity", "signed_in": False}
        ws.send_json({"type": "message", "text": "my orders"})
        assert [ws.receive_json()["type"] for _ in range(3)] == ["typing", "bot", "typing"]
        assert "customer_id" not in rasa.last_metadata()


def test_a_guest_cart_moves_into_the_customer_cart_on_sign_in(client: TestClient, db_session) -> None:
    from sqlalchemy import func, select

    from bot.catalog.tables import Product

    product = db_session.scalars(select(Product).where(func.json_array_length(Product.sizes) == 0, Product.stock > 3,
                                                       Product.price.is_not(None)).limit(1)).one()
    conversation, customer = _cid(), 900_000 + int(uuid.uuid4().int % 10_000)
    cart.add_item(db_session, conversation, product.id, 2)
    db_session.commit()
    token = issue_token(customer, 60, SECRET, ISSUER)
    for _ in range(2):  # identifying again changes nothing
        assert client.post("/api/chat", json={"conversation_id": conversation, "text": "hi",
                                              "token": token}).status_code == 200
    db_session.expire_all()
    assert cart.summary(db_session, conversation).lines == []
    lines = cart.summary(db_session, cart.customer_cart_key(customer)).lines
    assert [(line.product_id, line.quantity) for line in lines] == [(product.id, 2)]


# --------------------------------------------------------------------------- demo sign-in


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database of its own with a small catalog and the demo customers and orders."""
    from bot.catalog.store import upsert_products
    from bot.db import migrate, session_scope
    from bot.demo import catalog as demo
    from bot.demo.orders import load_demo_orders

    url = f"sqlite:///{Path(tmp_path_factory.mktemp('demo')) / 'demo.sqlite3'}"
    migrate(url)
    with session_scope(url) as session:
        upsert_products(session, demo.generate(300))
    with session_scope(url) as session:
        load_demo_orders(session, customers=12)
    return url


def test_demo_switch_signs_in_as_a_demo_customer_only(demo_db: str, rasa: FakeRasa) -> None:
    app = create_app(Settings(database_url=demo_db, rasa_url=rasa.url, actions_url=rasa.url, jwt_secret=SECRET,
                              jwt_issuer=ISSUER, demo_mode=True))
    with TestClient(app) as client:
        customers = client.get("/api/demo/customers").json()["customers"]
        assert len(customers) >= 3 and all(c["id"] and c["name"] and c["email"] for c in customers)
        chosen = customers[0]
        issued = client.post("/api/demo/token", json={"customer_id": chosen["id"]})
        assert issued.status_code == 200 and issued.json()["customer"]["name"] == chosen["name"]
        assert verify_token(issued.json()["token"], SECRET, ISSUER) == chosen["id"]
        others = max(c["id"] for c in customers) + 1000
        assert client.post("/api/demo/token", json={"customer_id": others}).status_code == 404
        assert client.post("/api/demo/token", json={"customer_id": "x"}).status_code == 422


def test_demo_switch_is_not_there_outside_demo_mode(demo_db: str, rasa: FakeRasa) -> None:
    app = create_app(Settings(database_url=demo_db, rasa_url=rasa.url, actions_url=rasa.url, jwt_secret=SECRET,
                              jwt_issuer=ISSUER, demo_mode=False))
    with TestClient(app) as client:
        assert client.get("/api/demo/customers").status_code == 404
        assert client.post("/api/demo/token", json={"customer_id": 1}).status_code == 404
