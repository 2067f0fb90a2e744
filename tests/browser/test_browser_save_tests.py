"""Saving a conversation as a conversation test from each of the three places, in a real Chromium (issue 18).

The console of tests/browser/test_browser_console.py (a real gateway with a database and a tracker store of its own,
its conversations written as Rasa stores them, a lead logged in) is used as it is. The lead saves one
conversation from the agent inbox (a ticket of the escalated conversation), one from the NLU inbox (the
message card of a low-confidence message) and one from analytics (a row of the latest conversations),
answering the name prompt each time; each test is then read back from the database with its source and turns.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.convtests import store
from bot.convtests.spec import ConversationTest, ReplyKind
from bot.db import session_scope
from bot.handoff import tickets
from tests.browser.test_browser_console import (
    DAY,
    HOSTILE,
    RED,
    WAIT_MS,
    WRAPPING,
    Console,
    open_console,
    running_console,
)

pytestmark = [pytest.mark.browser, pytest.mark.integration]


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    with running_console(tmp_path) as started:
        yield started


def saved(console: Console, name: str) -> ConversationTest:
    with session_scope(console.settings.database_url) as session:
        test = store.get_test(session, name)
    assert test is not None, f"no test named {name!r} was stored"
    return test


class Prompts:
    """Answers each ``window.prompt`` with the next name given to :meth:`answer` (and notes what was asked)."""

    def __init__(self, page) -> None:  # type: ignore[no-untyped-def]
        self.names: list[str] = []
        self.asked: list[str] = []
        page.on("dialog", self.on_dialog)

    def answer(self, name: str) -> None:
        self.names.append(name)

    def on_dialog(self, dialog) -> None:  # type: ignore[no-untyped-def]
        self.asked.append(f"{dialog.type}: {dialog.message}")
        if self.names:
            dialog.accept(self.names.pop(0))
        else:
            dialog.dismiss()


def test_a_lead_saves_a_conversation_as_a_test_from_each_of_the_three_places(
        console: Console, browser) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    with session_scope(console.settings.database_url) as session:
        ticket, _ = tickets.open_ticket(session, conversation_id="angry", customer_id=None, reason="negative_mood",
                                        now=DAY + timedelta(days=2, seconds=1))  # as action_escalate opened it
        ticket_id = ticket.id
    context, page, problems = open_console(browser, console, "")
    prompts = Prompts(page)

    # 1. The agent inbox: the escalated conversation's ticket.
    prompts.answer("escalated complaint")
    page.goto(console.url + "/agent")
    page.get_by_test_id(f"ticket-{ticket_id}").click()
    page.get_by_test_id("chat-title").filter(has_text=f"#{ticket_id}").wait_for(timeout=WAIT_MS)
    page.get_by_test_id("save-test").click()
    expect(page.get_by_test_id("notice")).to_contain_text(
        "Saved the conversation as test \u201cescalated complaint\u201d (1 turn).")
    test = saved(console, "escalated complaint")
    assert test.source == "agent-inbox:angry"
    # the capture stops at the handoff ("hello" was said to a person)
    assert [(t.user, t.intent, t.actions, t.reply) for t in test.turns] == [
        (HOSTILE, "complaint", ("action_escalate",), ReplyKind.HANDOFF)]

    # 2. The NLU inbox: the card of the low-confidence search message.
    prompts.answer("red running search")
    page.goto(console.url + "/admin")
    group = page.get_by_test_id("group-row").filter(has_text=RED)
    group.get_by_test_id("group-open").click()
    card = page.get_by_test_id("message-card")
    expect(card).to_contain_text("Here is what I found.")
    card.get_by_test_id("message-save-test").click()
    expect(page.get_by_test_id("status")).to_contain_text(
        "Saved the conversation as test \u201cred running search\u201d (1 turn).")
    test = saved(console, "red running search")
    assert test.source == "nlu-inbox:runner"
    assert [(t.user, t.intent, t.actions) for t in test.turns] == [(RED, "search_product", ("action_search_products",))]

    # 3. Analytics: the period of the conversations lists them, newest first, without their text.
    prompts.answer("gift wrapping fallback")
    page.goto(console.url + "/admin/analytics?since=2024-03-01&until=2024-03-31")
    rows = page.get_by_test_id("conversation-row")
    expect(rows).to_have_count(7)
    expect(page.get_by_test_id("recent-total")).to_have_text("7 conversations")
    expect(rows.first).to_have_attribute("data-conversation-id", "runner")
    expect(page.locator("[data-testid=conversation-row][data-conversation-id=angry]")
           .get_by_test_id("conversation-outcome")).to_have_text("Handed off: Negative mood")
    wrap = page.locator("[data-testid=conversation-row][data-conversation-id=wrap-0]")
    expect(wrap.get_by_test_id("conversation-outcome")).to_have_text("Contained")
    expect(page.get_by_test_id("recent-conversations")).not_to_contain_text(HOSTILE)
    wrap.get_by_test_id("conversation-save-test").click()
    expect(page.get_by_test_id("recent-notice")).to_have_text(
        "Saved the conversation as test \u201cgift wrapping fallback\u201d (1 turn).")
    test = saved(console, "gift wrapping fallback")
    assert test.source == "analytics:wrap-0"
    assert [(t.user, t.intent, t.actions) for t in test.turns] == [(WRAPPING[0], "nlu_fallback", ("utter_default",))]

    # A name that is taken is refused, and the page says so; nothing else is stored.
    prompts.answer("red running search")
    wrap.get_by_test_id("conversation-save-test").click()
    expect(page.get_by_test_id("recent-notice")).to_contain_text("red running search")
    expect(page.get_by_test_id("recent-notice")).to_have_class("notice error")
    with session_scope(console.settings.database_url) as session:
        assert sorted(t.name for t in store.all_tests(session)) == [
            "escalated complaint", "gift wrapping fallback", "red running search"]
    assert prompts.asked == ["prompt: Name of the conversation test:"] * 4 and not prompts.names
    assert not problems, problems
    context.close()
