"""Live handoff in two real browsers: a shopper in the widget and an agent in the inbox.

The shopper asks for a person and gets escalated; the agent logs in, sees the ticket arrive without a
reload, claims it, and replies; the shopper sees the reply and answers; the agent resolves; the shopper
rates the chat, and the bot answers the next message again. Real Rasa, action server and gateway.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from bot.auth import users
from bot.config import Settings
from bot.db import session_scope
from bot.handoff import tickets
from bot.handoff.tables import Ticket
from bot.web.routes.tickets import BACK_WITH_BOT
from tests.support.gateway_server import down_url, running_gateway
from tests.support.widget_socket import open_widget, play_chat_socket

pytestmark = [pytest.mark.browser, pytest.mark.integration]

PASSWORD = "a long enough agent password"
WAIT_MS = 30000



def test_shopper_is_handed_to_an_agent_and_back(stack, browser) -> None:  # type: ignore[no-untyped-def]
    username = f"alex-{uuid.uuid4().hex[:6]}"
    with session_scope() as session:
        users.create_user(session, username, PASSWORD, "agent", "Alex from support")

    # The agent logs in; their inbox is live before the shopper asks (so an agent is online).
    agent_context = browser.new_context(viewport={"width": 1400, "height": 900})
    agent = agent_context.new_page()
    agent.goto(stack.gateway_url + "/agent")
    assert agent.url.endswith("/agent/login")
    agent.fill("#username", username)
    agent.fill("#password", "wrong password, twice wrong")
    agent.press("#password", "Enter")
    agent.get_by_test_id("login-error").wait_for()
    agent.fill("#password", PASSWORD)
    agent.press("#password", "Enter")
    agent.wait_for_url(stack.gateway_url + "/agent")
    agent.get_by_test_id("connection").filter(has_text="Live").wait_for(timeout=WAIT_MS)
    agent.get_by_test_id("me").filter(has_text="Alex from support").wait_for()
    agent.evaluate("window.__sameInbox = true")  # gone if the page reloads

    # The shopper asks for a person in the widget.
    shopper_context = browser.new_context(viewport={"width": 1280, "height": 800})
    shopper = shopper_context.new_page()
    shopper.goto(stack.gateway_url + "/")
    shopper.get_by_test_id("sa-bubble").click()
    shopper.get_by_test_id("sa-input").fill("i want to talk to a human")
    shopper.get_by_test_id("sa-input").press("Enter")
    shopper.locator(".sa-msg-bot", has_text="conversation").first.wait_for(timeout=WAIT_MS)
    conversation_id = shopper.evaluate("window.ShopAssistant.conversationId")
    with session_scope() as session:
        ticket = tickets.open_ticket_for(session, conversation_id)
        assert ticket is not None and ticket.reason == "explicit_request"
        ticket_id = ticket.id

    # The ticket arrives in the agent's queue by itself.
    row = agent.get_by_test_id(f"ticket-{ticket_id}")
    row.wait_for(timeout=WAIT_MS)
    assert agent.evaluate("window.__sameInbox") is True
    assert "Asked for a person" in row.inner_text()
    row.focus()
    agent.keyboard.press("Enter")
    agent.get_by_test_id("chat-title").filter(has_text=f"#{ticket_id}").wait_for()
    messages = agent.get_by_test_id("messages")
    messages.locator(".msg.shopper", has_text="i want to talk to a human").wait_for()
    assert "contact_human_agent" in messages.locator(".msg.shopper").first.inner_text()
    agent.get_by_test_id("mood-chart").wait_for()
    agent.get_by_test_id("context").get_by_text("Guest: not signed in.").wait_for()

    # Claim: the shopper is told a person joined.
    agent.get_by_test_id("claim").click()
    shopper.locator(".sa-msg-system", has_text="Alex from support joined the chat.").wait_for(timeout=WAIT_MS)
    shopper.get_by_test_id("sa-status").filter(has_text="Chatting with Alex from support").wait_for()
    with session_scope() as session:
        claimed = session.get(Ticket, ticket_id)
        assert claimed is not None and claimed.status == "claimed"

    # The agent's reply reaches the widget live; the shopper's answer reaches the agent live.
    agent.get_by_test_id("reply-text").fill("Hi, I'm Alex. How can I help you today?")
    agent.get_by_test_id("reply-text").press("Enter")
    shopper.locator(".sa-msg-agent", has_text="How can I help you today?").wait_for(timeout=WAIT_MS)
    bot_lines = shopper.locator(".sa-msg-bot").count()
    shopper.get_by_test_id("sa-input").fill("my order NW-100234 still hasn't arrived")
    shopper.get_by_test_id("sa-input").press("Enter")
    messages.locator(".msg.shopper", has_text="still hasn't arrived").wait_for(timeout=WAIT_MS)
    assert shopper.locator(".sa-msg-bot").count() == bot_lines  # the bot stays quiet while a person talks

    # Resolve: the bot is back, the shopper rates the chat.
    agent.get_by_test_id("resolve").click()
    shopper.locator(".sa-msg-system", has_text=BACK_WITH_BOT).wait_for(timeout=WAIT_MS)
    shopper.get_by_role("button", name="Rate 5 out of 5").click()
    shopper.locator(".sa-msg-system", has_text="Thank you for rating").wait_for(timeout=WAIT_MS)
    with session_scope() as session:
        rated = session.get(Ticket, ticket_id)
        assert rated is not None and rated.status == "resolved" and rated.rating == 5
    agent.get_by_test_id("chat-meta").filter(has_text="rated 5/5").wait_for(timeout=WAIT_MS)

    shopper.get_by_test_id("sa-input").fill("hello")
    shopper.get_by_test_id("sa-input").press("Enter")
    shopper.locator(".sa-msg-bot", has_text="shopping assistant").last.wait_for(timeout=WAIT_MS)
    assert shopper.locator(".sa-msg-bot").count() > bot_lines

    agent.get_by_test_id("logout").click()
    agent.wait_for_url(stack.gateway_url + "/agent/login")
    agent_context.close()
    shopper_context.close()


def test_the_bots_buttons_stop_working_once_an_agent_joins(catalog: int, browser) -> None:  # type: ignore[no-untyped-def]
    """Issue 16, item 5: the offline offer's "Email me" stays clickable until a person joins; from then on
    the earlier quick replies are disabled, and stay so after a reload. The chat socket is played by the test."""
    from playwright.sync_api import expect

    down = down_url()
    with running_gateway(Settings(rasa_url=down, actions_url=down, rasa_timeout_s=2.0)) as url:
        sent: list[dict[str, Any]] = []
        page = browser.new_page()
        sockets = play_chat_socket(page, lambda ws: ws.on_message(lambda m: sent.append(json.loads(m))))
        page.goto(url + "/")
        open_widget(page, sockets)
        offer = {"text": "Our team is offline right now. Shall we email you when someone picks it up?",
                 "buttons": [{"title": "Email me", "payload": "/request_followup"},
                             {"title": "Keep chatting with the bot", "payload": "/deny"}]}
        sockets[0].send(json.dumps({"type": "bot", "messages": [offer]}))
        email_me = page.locator(".sa-quick-reply", has_text="Email me")
        expect(email_me).to_be_enabled()  # the bot is still the one answering

        sockets[0].send(json.dumps({"type": "agent_joined", "name": "Alex"}))
        page.locator(".sa-msg-system", has_text="Alex joined the chat.").wait_for()
        expect(email_me).to_be_disabled()
        expect(page.locator(".sa-quick-reply", has_text="Keep chatting")).to_be_disabled()
        email_me.click(force=True)
        page.wait_for_timeout(300)
        assert not [f for f in sent if f.get("type") == "message"], sent

        page.reload()  # the transcript comes back from storage with the buttons still spent
        expect(page.locator(".sa-quick-reply", has_text="Email me")).to_be_disabled()
        page.close()
