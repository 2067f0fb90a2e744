"""A shopper's `<img src=x onerror=alert(1)>` is text in the widget and in the agent inbox (real Chromium),
and the shop page, the widget and the agent console run under the gateway's strict CSP without a violation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from bot.auth import users
from bot.config import Settings
from bot.db import session_scope
from bot.handoff import tickets
from tests.support.gateway_server import down_url, running_gateway

pytestmark = pytest.mark.browser
PAYLOAD = "<img src=x onerror=alert(1)>"
PASSWORD = "a long enough agent password"
WAIT_MS = 20000
WATCH = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
  e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


@pytest.fixture(scope="module")
def gateway(catalog: int) -> Iterator[str]:
    down = down_url()  # Rasa down: the widget shows the apology; the agent side needs no Rasa to show messages
    with running_gateway(Settings(rasa_url=down, actions_url=down, rasa_timeout_s=2.0)) as url:
        yield url


def test_script_in_a_message_renders_as_text_in_widget_and_inbox(gateway: str, browser) -> None:  # type: ignore[no-untyped-def]
    conversation_id = f"xss-{uuid.uuid4().hex[:12]}"
    username = f"xss-{uuid.uuid4().hex[:6]}"
    with session_scope() as session:
        users.create_user(session, username, PASSWORD, "agent", "XSS Agent")
        ticket, _ = tickets.open_ticket(session, conversation_id=conversation_id, customer_id=None,
                                        reason="explicit_request")
        ticket_id = ticket.id
    dialogs: list[str] = []

    agent_context = browser.new_context()
    agent_context.add_init_script(WATCH)
    agent = agent_context.new_page()
    agent.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    agent.goto(gateway + "/agent/login")
    agent.fill("#username", username)
    agent.fill("#password", PASSWORD)
    agent.press("#password", "Enter")
    agent.wait_for_url(gateway + "/agent")
    agent.get_by_test_id("connection").filter(has_text="Live").wait_for(timeout=WAIT_MS)
    row = agent.get_by_test_id(f"ticket-{ticket_id}")
    row.wait_for(timeout=WAIT_MS)
    row.focus()
    agent.keyboard.press("Enter")
    agent.get_by_test_id("chat-title").filter(has_text=f"#{ticket_id}").wait_for(timeout=WAIT_MS)

    shopper_context = browser.new_context()
    shopper_context.add_init_script(WATCH + f"localStorage.setItem('sa.conversation_id', '{conversation_id}');")
    shopper = shopper_context.new_page()
    shopper.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    shopper.goto(gateway + "/")
    shopper.get_by_test_id("sa-bubble").click()
    shopper.get_by_test_id("sa-input").fill(PAYLOAD)
    shopper.get_by_test_id("sa-input").press("Enter")

    # The widget: the shopper's line holds the markup as text, and no <img> was made of it.
    mine = shopper.locator(".sa-root").get_by_text(PAYLOAD, exact=True)
    mine.wait_for(timeout=WAIT_MS)
    assert shopper.locator(".sa-root img[src='x']").count() == 0
    # The agent inbox: the message arrives live, as text.
    messages = agent.get_by_test_id("messages")
    messages.locator(".msg.shopper", has_text=PAYLOAD).wait_for(timeout=WAIT_MS)
    assert messages.locator("img[src='x']").count() == 0
    agent.reload()  # and from the stored ticket, too
    agent.get_by_test_id(f"ticket-{ticket_id}").wait_for(timeout=WAIT_MS)
    agent.get_by_test_id(f"ticket-{ticket_id}").focus()
    agent.keyboard.press("Enter")
    agent.get_by_test_id("messages").locator(".msg.shopper", has_text=PAYLOAD).wait_for(timeout=WAIT_MS)
    assert agent.locator("img[src='x']").count() == 0

    shopper.wait_for_timeout(500)  # an onerror would have fired by now
    assert dialogs == []
    # The pages, the widget (its stylesheet included) and the console ran under the CSP with nothing refused.
    assert shopper.evaluate("window.__violations") == []
    assert agent.evaluate("window.__violations") == []
    assert "script-src 'self'" in agent_context.request.get(gateway + "/").headers["content-security-policy"]
    agent_context.close()
    shopper_context.close()
