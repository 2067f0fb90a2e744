"""A real Rasa server with the trained model, a real action server and the gateway."""

from __future__ import annotations

import os
import re
import signal
import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration


def say(stack, conversation_id: str, text: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    response = httpx.post(f"{stack.gateway_url}/api/chat", json={"conversation_id": conversation_id, "text": text},
                          timeout=30)
    response.raise_for_status()
    return response.json()["replies"]


def texts(replies: list[dict[str, Any]]) -> str:
    return "\n".join(r.get("text") or "" for r in replies)


def cards(replies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for r in replies if (c := r.get("custom")) and c.get("type") == "product_cards" for p in c["products"]]


def test_health_is_green(stack) -> None:  # type: ignore[no-untyped-def]
    body = httpx.get(f"{stack.gateway_url}/healthz").json()
    assert body["status"] == "ok", body


def test_rasa_answers_only_with_its_token(stack) -> None:  # type: ignore[no-untyped-def]
    """Rasa's HTTP API and REST webhook want the token the stack generated (issue 16, item 12): a local process
    without it reads no transcript, loads no model and speaks for no customer; the gateway has it."""
    rasa, token = stack.rasa_url, stack.rasa_token
    cid = f"it-token-{uuid.uuid4().hex[:8]}"
    said = {"sender": cid, "message": "where is my order", "metadata": {"customer_id": 1}}
    assert httpx.get(f"{rasa}/conversations/{cid}/tracker", timeout=10).status_code == 401
    assert httpx.get(f"{rasa}/conversations/{cid}/tracker", params={"token": "guess"}, timeout=10).status_code == 401
    assert httpx.put(f"{rasa}/model", json={"model_file": "/tmp/any.tar.gz"}, timeout=10).status_code == 401
    assert httpx.post(f"{rasa}/webhooks/rest/webhook", json=said, timeout=10).status_code == 401
    assert httpx.post(f"{rasa}/webhooks/rest/webhook", json=said, headers={"Authorization": "Bearer guess"},
                      timeout=10).status_code == 401
    events = httpx.get(f"{rasa}/conversations/{cid}/tracker", params={"token": token}, timeout=10).json()["events"]
    assert not [e for e in events if e["event"] == "user"]  # the refused message never got in
    shoes = {"sender": cid, "message": "show me running shoes", "metadata": {}}
    answered = httpx.post(f"{rasa}/webhooks/rest/webhook", json=shoes, headers={"Authorization": f"Bearer {token}"},
                          timeout=30)
    assert answered.status_code == 200 and cards(answered.json())  # the search ran: Rasa has the actions' secret
    assert token not in " ".join(stack.commands()["rasa"])  # not on a command line every local user can read


def test_scripted_shopping_conversation(stack) -> None:  # type: ignore[no-untyped-def]
    cid = f"it-{uuid.uuid4().hex[:12]}"
    greeting = say(stack, cid, "hi there")
    assert "shopping assistant" in texts(greeting) and greeting[0]["buttons"]

    found = say(stack, cid, "i need a warm waterproof jacket under 80")
    jackets = cards(found)
    assert jackets and all(c["price"] <= 80 and "Jacket" in c["title"] for c in jackets)

    cheaper = cards(say(stack, cid, "cheaper"))
    assert cheaper and max(c["price"] for c in cheaper) < sorted(c["price"] for c in jackets)[len(jackets) // 2]

    details = say(stack, cid, "tell me more about the second one")
    assert cards(details)[0]["id"] == cheaper[1]["id"]
    assert "Sizes:" in texts(details)

    ordinals = ["first", "second", "third", "fourth", "fifth"]
    in_stock = next(i for i, c in enumerate(cheaper) if c["stock"] > 0)
    say(stack, cid, f"tell me more about the {ordinals[in_stock]} one")

    ask_size = say(stack, cid, "add it to my cart")
    assert "Which size" in texts(ask_size)
    size_button = ask_size[0]["buttons"][0]
    added = say(stack, cid, size_button["payload"])
    assert "Added 1 x" in texts(added)

    cart = say(stack, cid, "what's in my cart")
    assert "Total:" in texts(cart)

    checkout = say(stack, cid, "take me to checkout")
    # the link rides on the cart card as its Checkout button (the widget makes it absolute), not as bare text
    url = next((c["checkout_url"] for r in checkout if (c := r.get("custom")) and c.get("checkout_url")), "")
    link = re.search(r"/checkout\?cart=\S+", url)
    assert link and cid not in link.group(0), checkout  # a signed reference, not the guessable key
    page = httpx.get(stack.gateway_url + link.group(0), timeout=30)
    assert page.status_code == 200 and "Checkout" in page.text

    shipping = say(stack, cid, "how long does delivery take")
    assert "3 to 5 business days" in texts(shipping)


def test_the_bot_recovers_after_the_action_server_comes_back(stack) -> None:  # type: ignore[no-untyped-def]
    cid = f"it-{uuid.uuid4().hex[:12]}"
    actions = stack.processes["actions"]
    os.killpg(actions.pid, signal.SIGTERM)
    actions.wait(15)
    try:
        replies = httpx.post(f"{stack.gateway_url}/api/chat",
                             json={"conversation_id": cid, "text": "what payment methods do you accept"}, timeout=30)
        assert replies.status_code == 200
        assert replies.json()["degraded"] is True
        assert "trouble" in texts(replies.json()["replies"])
        assert httpx.get(f"{stack.gateway_url}/healthz").json()["checks"]["actions"]["ok"] is False
    finally:
        stack.start(("actions",))
        stack.wait_healthy(timeout=120, names=("actions",))
    assert "PayPal" in texts(say(stack, cid, "what payment methods do you accept"))
