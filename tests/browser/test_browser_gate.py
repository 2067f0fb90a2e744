"""The gate's saved conversation tests in the lead console, in a real Chromium (issue 18).

Two tests are saved in the database: "hi there" is a greeting (the trained model gets that right), and a
conversation whose second turn expects ``goodbye`` for "hello" (it cannot). The real runner plays them against
the real trained archive in a scratch Rasa with the action server, the real gate decides, and the outcomes are
recorded as the training job records them. The candidate versions are registered directly (as
tests/browser/test_browser_console.py does) instead of training for minutes: version 2 is played against both tests and
is blocked; the lead sees the failing test, its turn and the diff, and activating it needs a reason (then the
stack's real Rasa loads it). Version 3 is played against the passing test only and passes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot.clock import utcnow
from bot.config import Settings
from bot.convtests import runner, store
from bot.convtests.spec import ConversationTest, ExpectedTurn
from bot.db import session_scope
from bot.training import gate, rasa_model
from bot.training.tables import ModelActivation, ModelVersion
from tests.browser.test_browser_console import LEAD_NAME, PASSWORD, Console, Tracker, _intents, _version, open_console
from tests.browser.test_console_e2e import serving
from tests.support.lead_console import lead_console

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.usefixtures("catalog")]

GOOD = ConversationTest(name="greets a shopper", turns=(ExpectedTurn(user="hi there", intent="greet"),))
BROKEN = ConversationTest(name="says goodbye to a greeting", turns=(
    ExpectedTurn(user="hi there", intent="greet"), ExpectedTurn(user="hello", intent="goodbye")))
REASON = "the goodbye test is wrong; the model is fine"


@pytest.fixture
def console_on_rasa(stack, tmp_path: Path) -> Iterator[Console]:  # type: ignore[no-untyped-def]
    """A gateway with a database of its own whose activations go to the stack's real Rasa; the stack's model is
    put back afterwards."""
    tracker_url = f"sqlite:///{tmp_path / 'tracker.sqlite3'}"
    Tracker(tracker_url)
    settings = Settings(DATABASE_URL=f"sqlite:///{tmp_path / 'console.sqlite3'}", tracker_store_url=tracker_url,
                        rasa_url=stack.rasa_url, rasa_token=stack.rasa_token, inbox_sample_rate=0.0,
                        gate_conversation_tests=True)
    try:
        with lead_console(settings, tmp_path, "gate", PASSWORD, LEAD_NAME) as console:
            yield console
    finally:
        if serving(stack) != rasa_model.model_path().name:
            httpx.put(f"{stack.rasa_url}/model", json={"model_file": str(rasa_model.model_path().resolve())},
                      params={"token": stack.rasa_token}, timeout=600)


def test_the_gate_blocks_a_model_that_breaks_a_saved_conversation_and_passes_a_good_one(
        console_on_rasa: Console, stack, browser) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    console = console_on_rasa
    db = console.settings.database_url
    archive = rasa_model.model_path()
    with session_scope(db) as session:
        for test in (GOOD, BROKEN):
            store.save_test(session, test, "user:test")
        saved = store.all_tests(session)
    outcomes = {o.name: o for o in runner.run_suite(saved, archive)}  # the real runner on the real model
    good, broken = outcomes[GOOD.name], outcomes[BROKEN.name]
    assert good.passed and not good.error, good
    assert not broken.passed and broken.diverged_at == 1 and not broken.error, broken

    metrics = {"accuracy": 0.93, "macro_f1": 0.92, "per_intent": _intents(greet=0.95, goodbye=0.9)}
    limits = gate.GateLimits.from_settings(console.settings)
    blocked = gate.check(metrics, metrics, limits, [], conversations=[good, broken])
    passing = gate.check(metrics, metrics, limits, [], conversations=[good])
    assert blocked["verdict"] == "blocked" and passing["verdict"] == "passed"
    candidate = console.tmp / "shop-v2.tar.gz"
    shutil.copy2(archive, candidate)
    now = utcnow()
    with session_scope(db) as session:
        session.add(_version(1, path=str(archive), metrics=metrics, active=True, activated_at=now))
        session.add(ModelActivation(version=1, previous_version=None, kind="baseline", reason="",
                                    author="make model", at=now))
        session.add(_version(2, path=str(candidate), metrics=metrics, baseline_version=1, baseline_metrics=metrics,
                             changed=[], created_by_name=LEAD_NAME, gate=blocked))
        store.record_outcomes(session, 2, [good, broken])

    # 1. The blocked candidate: the rule, the failing test with its turn, and the diff in the tests' list.
    context, page, problems = open_console(browser, console, "#models")
    expect(page.get_by_test_id("gate-rules")).to_contain_text("Every saved conversation test passes")
    expect(page.get_by_test_id("model-row-2").get_by_test_id("gate-badge")).to_have_text("blocked")
    page.get_by_test_id("model-open-2").click()
    detail = page.get_by_test_id("model-detail")
    expect(detail.get_by_test_id("gate-verdict")).to_contain_text("Blocked")
    expect(detail.get_by_test_id("gate-conversation-rule")).to_have_text("blocks")
    failing = detail.locator(f"[data-testid=gate-conversation][data-name='{BROKEN.name}']")
    expect(failing).to_have_attribute("data-status", "fail")
    expect(failing).to_contain_text("fails at turn 2")
    expect(failing).to_contain_text('("hello")')
    expect(failing).to_contain_text("intent: expected goodbye")
    expect(detail.locator(f"[data-testid=gate-conversation][data-name='{GOOD.name}']")).to_have_attribute(
        "data-status", "pass")
    expect(detail.get_by_test_id("gate-reasons")).to_contain_text(f"'{BROKEN.name}' fails at turn 2")

    tests = page.get_by_test_id("convtest")
    expect(tests).to_have_count(2)
    expect(page.get_by_test_id("convtests-total")).to_have_text("2")
    item = page.locator(f"[data-testid=convtest][data-name='{BROKEN.name}']")
    expect(item.get_by_test_id("convtest-result")).to_have_text("v2: failed at turn 2")
    diff = item.get_by_test_id("turn-diff")
    expect(diff.get_by_test_id("turn-said")).to_have_text("Version 2, turn 2: the shopper said \u201chello\u201d")
    intent_row = diff.locator("[data-testid=diff-row][data-field=intent]")
    expect(intent_row).to_have_attribute("data-differs", "yes")
    expect(intent_row.locator("td").first).to_have_text("goodbye")
    expect(intent_row.locator("td").nth(1)).not_to_have_text("goodbye")
    expect(intent_row.locator("td").nth(1)).to_have_text(broken.turns[1].intent or "none")
    expect(diff.locator("[data-testid=diff-row][data-field=actions] td").first).to_have_text("not checked")
    expect(diff.locator("[data-testid=diff-row][data-field=reply]")).to_have_attribute("data-differs", "no")
    good_item = page.locator(f"[data-testid=convtest][data-name='{GOOD.name}']")
    expect(good_item.get_by_test_id("convtest-result")).to_have_text("v2: passed")
    expect(good_item.get_by_test_id("turn-diff")).to_have_count(0)

    # 2. Activating it needs a reason: refused without one (in the page and by the API), done with one.
    activate = page.get_by_test_id("activate")
    expect(activate).to_have_text("Override the gate")
    activate.click()
    expect(page.get_by_test_id("alert")).to_contain_text("give a reason to override it")
    csrf = context.request.get(console.url + "/agent/api/me").json()["csrf_token"]
    refused = context.request.post(console.url + "/admin/api/models/2/activate", data={},
                                   headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"})
    assert refused.status == 409 and refused.json()["detail"]["error"] == "gate_failed"
    assert any(BROKEN.name in r for r in refused.json()["detail"]["reasons"])
    with session_scope(db) as session:
        assert session.scalar(select(ModelActivation).where(ModelActivation.version == 2)) is None
    page.get_by_test_id("activate-reason").fill(REASON)
    activate.click()
    expect(page.get_by_test_id("model-row-2").get_by_test_id("active-badge")).to_be_visible(timeout=300000)
    assert serving(stack) == "shop-v2.tar.gz"
    with session_scope(db) as session:
        done = session.scalars(select(ModelActivation).where(ModelActivation.version == 2)).one()
        assert (done.kind, done.reason, done.user_id) == ("override", REASON, console.lead_id)

    # 3. A good candidate: with only passing tests, the verdict is passed and so is the conversation rule.
    with session_scope(db) as session:
        store.delete_test(session, BROKEN.name)
        session.add(_version(3, path=str(archive), metrics=metrics, baseline_version=2, baseline_metrics=metrics,
                             changed=[], created_by_name=LEAD_NAME, gate=passing))
        store.record_outcomes(session, 3, [good])
    page.reload()
    expect(page.get_by_test_id("model-row-3").get_by_test_id("gate-badge")).to_have_text("passed")
    page.get_by_test_id("model-open-3").click()
    expect(page.get_by_test_id("model-title")).to_have_text("Version 3")
    expect(detail.get_by_test_id("gate-verdict")).to_contain_text("Passed")
    expect(detail.get_by_test_id("gate-conversation-rule")).to_have_text("passed")
    expect(detail.get_by_test_id("gate-conversation")).to_have_count(1)
    expect(detail.get_by_test_id("gate-conversation")).to_have_attribute("data-status", "pass")
    expect(detail.get_by_test_id("gate-reasons")).to_have_count(0)
    expect(page.get_by_test_id("activate")).to_have_text("Activate")
    expect(tests).to_have_count(1)
    expect(good_item.get_by_test_id("convtest-result")).to_have_text(["v3: passed", "v2: passed"])
    expect(page.get_by_test_id("turn-diff")).to_have_count(0)
    assert not problems, problems
    context.close()
    with session_scope(db) as session:
        assert session.scalar(select(ModelVersion.version).where(ModelVersion.active.is_(True))) == 2
