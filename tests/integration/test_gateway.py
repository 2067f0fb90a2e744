"""Gateway behaviour that does not need Rasa, including what happens when Rasa is down."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.config import Settings
from bot.conversation.rasa_client import HELD, HELD_MORE
from bot.db import session_scope
from bot.held_messages import queue as held
from bot.held_messages.tables import HeldMessage
from bot.web.app import create_app
from tests.conftest import free_port


@pytest.fixture
def client(catalog: int):  # type: ignore[no-untyped-def]
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    app = create_app(Settings(rasa_url=down, actions_url=down, rasa_timeout_s=2.0))
    with TestClient(app) as test_client:
        yield test_client


def test_shop_page_embeds_the_widget(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script src="/widget.js"' in page.text
    widget = client.get("/widget.js")
    assert widget.status_code == 200 and "javascript" in widget.headers["content-type"]
    assert "/ws/chat" in widget.text


def test_chat_keeps_the_message_and_says_so_when_rasa_is_down(client: TestClient) -> None:
    conversation = f"conv-down-{uuid.uuid4().hex[:8]}"
    first = client.post("/api/chat", json={"conversation_id": conversation, "text": "hello"})
    assert first.status_code == 200
    assert first.json()["degraded"] is True and first.json()["replies"] == [{"text": HELD}]
    second = client.post("/api/chat", json={"conversation_id": conversation, "text": "are you there?"})
    assert second.json()["degraded"] is True and second.json()["replies"] == [{"text": HELD_MORE}]
    with session_scope() as session:  # both wait, in order, for the replayer (test_faults.py)
        rows = session.scalars(select(HeldMessage.text).where(HeldMessage.conversation_id == conversation)
                               .order_by(HeldMessage.id))
        assert list(rows) == ["hello", "are you there?"]
        held.delete_conversations(session, [conversation])


@pytest.mark.parametrize(
    "payload",
    [
        {"conversation_id": "bad id with spaces", "text": "hi"},
        {"conversation_id": "short", "text": "hi"},
        {"conversation_id": "conv-valid-0001", "text": ""},
        {"conversation_id": "conv-valid-0001", "text": " \n\t\u3000"},  # blank: nothing to answer or store
        {"conversation_id": "conv-valid-0001", "text": "x" * 2001},
        {"text": "hi"},
    ],
)
def test_chat_rejects_bad_input_with_a_clear_error(client: TestClient, payload: dict) -> None:
    response = client.post("/api/chat", json=payload)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "body"


def test_health_reports_each_dependency(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] is True
    assert checks["rasa"]["ok"] is False and checks["actions"]["ok"] is False


def test_websocket_relays_typing_and_the_held_notice(client: TestClient) -> None:
    with client.websocket_connect(f"/ws/chat?conversation_id=conv-ws-{uuid.uuid4().hex[:8]}") as ws:
        ws.send_text("not json")
        assert ws.receive_json()["type"] == "error"
        ws.send_json({"type": "message", "text": "hi"})
        assert ws.receive_json() == {"type": "typing", "on": True}
        assert ws.receive_json() == {"type": "bot", "messages": [{"text": HELD}]}
        assert ws.receive_json() == {"type": "typing", "on": False}


def test_websocket_requires_a_valid_conversation_id(client: TestClient) -> None:
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/ws/chat?conversation_id=x") as ws:
        ws.receive_json()


def test_product_images_and_pages(client: TestClient) -> None:
    image = client.get("/media/products/1.svg")
    assert image.status_code == 200 and image.text.startswith("<svg") and image.headers["content-type"].startswith(
        "image/svg+xml")
    assert client.get("/media/products/999999.svg").status_code == 404
    page = client.get("/products/1")
    assert page.status_code == 200 and "<h1>" in page.text


def test_checkout_page_escapes_and_summarises(client: TestClient, db_session) -> None:
    from sqlalchemy import func, select

    from bot.catalog.tables import Product
    from bot.shop import cart

    product = db_session.scalars(select(Product).where(func.json_array_length(Product.sizes) == 0, Product.stock > 2)
                                 .limit(1)).one()
    from bot.config import get_settings

    cart.add_item(db_session, "checkout-page-1", product.id, 2)
    db_session.commit()
    reference = cart.checkout_reference("checkout-page-1", get_settings().jwt_secret)
    page = client.get("/checkout", params={"cart": reference})
    assert page.status_code == 200
    assert f"${round(product.price * 2, 2):,.2f}" in page.text
    assert client.get("/checkout", params={"cart": "checkout-page-1"}).status_code == 404  # the bare key: no
    assert client.get("/checkout", params={"cart": "<script>"}).status_code == 404
    assert client.get("/checkout", params={"cart": "x" * 601}).status_code == 422
