"""Saved conversation tests: the store, capturing from a tracker in Rasa's format (a temporary SQLite file),
YAML export and import, seeding, and the console API through the real app."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from bot.auth import users
from bot.config import Settings
from bot.convtests import store, yaml_io
from bot.convtests.capture import from_conversation
from bot.convtests.seed import seed
from bot.convtests.spec import ConversationTest, ExpectedTurn, ReplyKind, TestOutcome, TurnResult
from bot.convtests.tables import ConversationTestResult, ConversationTestRow
from bot.db import session_scope
from bot.rasa_events import EVENTS, create_events_table, tracker_engine
from bot.web.app import create_app
from tests.support.console_login import login as console_login
from tests.support.scratch_db import emptied_session, migrated_sqlite

PASSWORD = "a long enough password"
GREET = ExpectedTurn("hello", "greet", ("action_greet",), ReplyKind.TEXT)
SEARCH = ExpectedTurn("show me boots", "search_product", ("action_search_products",), ReplyKind.PRODUCT_CARDS)


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_sqlite(tmp_path_factory, "convtests-db", "shop.sqlite3")


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    with emptied_session(db_url, ConversationTestResult, ConversationTestRow) as s:
        yield s


def write_events(url: str, sender: str, events: list[dict[str, Any]]) -> None:
    """Events of one conversation as Rasa's SQLTrackerStore stores them."""
    create_events_table(url)
    rows = [{"sender_id": sender, "type_name": e["event"], "timestamp": 1_700_000_000.0 + i,
             "intent_name": (e.get("parse_data") or {}).get("intent", {}).get("name"), "action_name": e.get("name"),
             "data": json.dumps({"timestamp": 1_700_000_000.0 + i, **e})} for i, e in enumerate(events)]
    with tracker_engine(url).begin() as conn:
        conn.execute(EVENTS.insert(), rows)


def user(text: str, intent: str | None) -> dict[str, Any]:
    return {"event": "user", "text": text, "parse_data": {"intent": {"name": intent, "confidence": 0.9}}}


def action(name: str) -> dict[str, Any]:
    return {"event": "action", "name": name}


def bot(text: str, custom: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"event": "bot", "text": text, "data": {"custom": custom}}


CONVERSATION = [
    action("action_session_start"), {"event": "session_started"}, action("action_listen"),
    user("hi there", "greet"), action("action_greet"), bot("Hi!"), action("action_listen"),
    user("show me boots", "search_product"), action("action_search_products"),
    bot("Here you go", {"type": "product_cards", "products": [{"id": 1}]}), action("action_listen"),
    user('/add_to_cart{"product_id": "7"}', "add_to_cart"), action("action_add_to_cart"), bot("Added."),
    action("action_listen"),
    user("where is my order", "track_order"), action("track_order_form"),
    {"event": "active_loop", "name": "track_order_form"},
    {"event": "slot", "name": "requested_slot", "value": "order_number"}, bot("Your order number?"),
    action("action_listen"),
    user("it is NW-100234, mail me at ada.lovelace@example.org", "inform"), action("track_order_form"),
    {"event": "slot", "name": "requested_slot", "value": None}, {"event": "active_loop", "name": None},
    action("action_track_order"), bot("It ships tomorrow."), action("action_listen"),
    user("I want a person", "contact_human_agent"), action("action_escalate"), {"event": "pause"},
    user("hello? anyone", "greet"),
]
EXPECTED = (
    ExpectedTurn("hi there", "greet", ("action_greet",), ReplyKind.TEXT),
    ExpectedTurn("show me boots", "search_product", ("action_search_products",), ReplyKind.PRODUCT_CARDS),
    ExpectedTurn('/add_to_cart{"product_id": "7"}', "add_to_cart", ("action_add_to_cart",), ReplyKind.TEXT),
    ExpectedTurn("where is my order", "track_order", ("track_order_form",), ReplyKind.FORM_QUESTION),
    ExpectedTurn("it is NW-100234, mail me at someone@example.com", "inform",
                 ("track_order_form", "action_track_order"), ReplyKind.TEXT),
    ExpectedTurn("I want a person", "contact_human_agent", ("action_escalate",), ReplyKind.HANDOFF),
)


# --------------------------------------------------------------------------- store


def test_store_round_trip_duplicate_and_delete(session: Session) -> None:
    test = ConversationTest("boots", (GREET, SEARCH), source="yaml")
    test_id = store.save_test(session, test, "user:lena")
    assert test_id > 0 and store.all_tests(session) == [test]
    with pytest.raises(ValueError, match="exists already"):
        store.save_test(session, ConversationTest("boots", (GREET,)), "user:lena")
    store.delete_test(session, "boots")
    assert store.all_tests(session) == []
    with pytest.raises(LookupError):
        store.delete_test(session, "boots")


def test_outcomes_are_kept_per_model_version(session: Session) -> None:
    store.save_test(session, ConversationTest("boots", (GREET, SEARCH)), "seed")
    store.save_test(session, ConversationTest("hello", (GREET,)), "seed")
    wrong = TurnResult(1, "show me boots", SEARCH, "greet", ("action_greet",), ReplyKind.TEXT, False,
                       ("intent: expected search_product, got greet",))
    right = TurnResult(0, "hello", GREET, "greet", ("action_greet",), ReplyKind.TEXT, True)
    store.record_outcomes(session, 3, [TestOutcome("boots", True, (right,))])
    store.record_outcomes(session, 4, [TestOutcome("boots", False, (right, wrong), diverged_at=1),
                                       TestOutcome("gone meanwhile", True, ())])
    store.record_outcomes(session, 4, [TestOutcome("boots", False, (right, wrong), diverged_at=1)])  # rerun
    results = store.latest_results(session)
    assert results["hello"] == {}
    assert sorted(results["boots"]) == [3, 4]
    assert results["boots"][3]["passed"] and results["boots"][3]["diverged_at"] is None
    v4 = results["boots"][4]
    assert (v4["passed"], v4["diverged_at"], v4["differences"]) == (
        False, 1, ["intent: expected search_product, got greet"])
    assert v4["turns"][1]["expected"]["intent"] == "search_product" and v4["turns"][1]["intent"] == "greet"


# --------------------------------------------------------------------------- capture


def test_capture_makes_one_turn_per_shopper_message(tmp_path: Path) -> None:
    tracker = f"sqlite:///{tmp_path / 'tracker.sqlite3'}"
    write_events(tracker, "conv-1", CONVERSATION)
    write_events(tracker, "conv-2", [user("unrelated", "greet")])
    test = from_conversation(tracker, "conv-1", " my test ", source="nlu-inbox:conv-1")
    assert test.name == "my test" and test.source == "nlu-inbox:conv-1"
    assert test.turns == EXPECTED
    assert "ada.lovelace" not in json.dumps([t.user for t in test.turns])


# --------------------------------------------------------------------------- YAML


def test_yaml_round_trip_is_lossless(tmp_path: Path) -> None:
    tests = [ConversationTest("captured", EXPECTED, source="agent-inbox:conv-1"),
             ConversationTest("unchecked", (ExpectedTurn("two\nlines: {x} # not a comment"),
                                            ExpectedTurn("  spaced  ", "greet")))]
    text = yaml_io.dumps(tests)
    assert "- user: |" in text and "reply_kinds:" in text
    back = yaml_io.loads(text)
    assert back[0] == tests[0]
    assert back[1] == ConversationTest("unchecked", (ExpectedTurn("two\nlines: {x} # not a comment"),
                                                     ExpectedTurn("spaced", "greet")))
    yaml_io.export_file(tests, tmp_path / "out.yml")
    assert yaml_io.import_file(tmp_path / "out.yml")[0] == tests[0]


@pytest.mark.parametrize(("text", "message"), [
    ("stories: 3", "'stories:' list"),
    ("stories:\n- story: bad one\n  steps:\n  - action: action_greet\n", "story 'bad one', step 1: action"),
    ("stories:\n- story: kinds\n  metadata: {reply_kinds: [cards]}\n  steps:\n  - user: hi\n", "unknown reply kind"),
    ("stories:\n- story: two\n  metadata: {reply_kinds: [text, text]}\n  steps:\n  - user: hi\n", "one entry per"),
    ("stories:\n- story: a\n  steps:\n  - user: hi\n- story: a\n  steps:\n  - user: ho\n", "appears twice"),
    ("stories:\n- story: a\n  steps:\n  - checkpoint: x\n", "'checkpoint' and 'or'"),
])
def test_yaml_import_errors_name_the_story(text: str, message: str) -> None:
    with pytest.raises(yaml_io.ConvTestYamlError, match=re.escape(message)):
        yaml_io.loads(text)


def test_rasa_test_stories_are_read() -> None:
    text = ("stories:\n- story: track\n  steps:\n  - user: |\n      where is my [NW-1](order_number)\n"
            "    intent: track_order\n  - action: track_order_form\n  - active_loop: track_order_form\n"
            "  - slot_was_set:\n    - requested_slot: order_number\n  - action: action_listen\n  - user: |\n      hm\n")
    [test] = yaml_io.loads(text)
    assert test.turns == (ExpectedTurn("where is my NW-1", "track_order", ("track_order_form",),
                                       ReplyKind.FORM_QUESTION), ExpectedTurn("hm"))


# --------------------------------------------------------------------------- seeding


def test_seeding_is_idempotent(session: Session) -> None:
    added = seed(session)
    tests = {t.name: t for t in store.all_tests(session)}
    assert added == len(tests) > 65  # every test story plus the multi-turn seed conversations
    assert tests["greet main path"].turns == (ExpectedTurn("hey there good evening", "greet", ("action_greet",)),)
    multi = tests["seed a side question inside the order tracking form"]
    assert [t.reply for t in multi.turns] == [ReplyKind.FORM_QUESTION, ReplyKind.FORM_QUESTION]
    assert multi.turns[1].intent is None
    assert seed(session) == 0 and len(store.all_tests(session)) == len(tests)


# --------------------------------------------------------------------------- API


def _login(client: TestClient, user: users.UserView) -> str:
    return console_login(client, user, PASSWORD)


def test_the_api_saves_lists_and_deletes(db_url: str, session: Session, tmp_path: Path) -> None:
    tracker = f"sqlite:///{tmp_path / 'tracker.sqlite3'}"
    write_events(tracker, "conv-api", CONVERSATION)
    tag = uuid.uuid4().hex[:6]
    with session_scope(db_url) as s:
        lead = users.create_user(s, f"lead-{tag}", PASSWORD, "lead", "Lena Lead")
        agent = users.create_user(s, f"agent-{tag}", PASSWORD, "agent", "Alex Agent")
    app = create_app(Settings(database_url=db_url, tracker_store_url=tracker, rasa_url="http://127.0.0.1:9",
                              actions_url="http://127.0.0.1:9"))
    body = {"conversation_id": "conv-api", "name": "from the inbox", "origin": "nlu-inbox"}
    path = "/admin/api/conversation-tests"
    with TestClient(app, base_url="http://localhost") as client:
        assert client.post(path, json=body).status_code == 401
        assert client.get(path).status_code == 401
        csrf = _login(client, agent)
        assert client.post(path, json=body, headers={"X-CSRF-Token": csrf}).status_code == 403
        client.post("/agent/logout", headers={"X-CSRF-Token": csrf})
        csrf = _login(client, lead)
        assert client.post(path, json=body).status_code == 403  # no CSRF token
        saved = client.post(path, json=body, headers={"X-CSRF-Token": csrf})
        assert saved.status_code == 201, saved.text
        assert [t["reply"] for t in saved.json()["turns"]] == [t.reply for t in EXPECTED]
        again = client.post(path, json=body, headers={"X-CSRF-Token": csrf})
        assert again.status_code == 409 and again.json()["detail"]["error"] == "duplicate_name"
        unknown = client.post(path, json={**body, "conversation_id": "nobody", "name": "x"},
                              headers={"X-CSRF-Token": csrf})
        assert unknown.status_code == 404
        assert client.post(path, json={"name": "no conversation"}, headers={"X-CSRF-Token": csrf}).status_code == 422
        assert client.post(path, json={**body, "name": "   "}, headers={"X-CSRF-Token": csrf}).status_code == 422

        store.record_outcomes(session, 5, [TestOutcome("from the inbox", True, ())])
        session.commit()
        [listed] = client.get(path).json()["tests"]
        assert listed["name"] == "from the inbox" and listed["source"] == "nlu-inbox:conv-api"
        assert listed["created_by"] == "user:Lena Lead" and listed["results"]["5"]["passed"] is True
        gone = client.delete(f"{path}/from the inbox", headers={"X-CSRF-Token": csrf})
        assert gone.status_code == 200 and client.get(path).json()["tests"] == []
        assert client.delete(f"{path}/from the inbox", headers={"X-CSRF-Token": csrf}).status_code == 404


def test_a_rasa_story_ends_where_it_assumes_the_shops_data() -> None:
    """Slots a story takes as given (an order's email) and a form that ends depend on the shop's data in a
    replay: the seeded test stops at that turn and checks only its intent."""
    text = ("stories:\n- story: cancel\n  steps:\n  - user: |\n      cancel order NW-1\n    intent: cancel_order\n"
            "  - action: cancel_order_form\n  - active_loop: cancel_order_form\n"
            "  - slot_was_set:\n    - requested_slot: email\n  - user: |\n      a@b.example\n    intent: inform\n"
            "  - action: cancel_order_form\n  - slot_was_set:\n    - email: a@b.example\n"
            "  - active_loop: null\n  - action: action_cancel_order\n  - user: |\n      yes\n    intent: affirm\n"
            "  - action: action_confirm\n")
    [test] = yaml_io.loads(text)
    assert test.turns == (ExpectedTurn("cancel order NW-1", "cancel_order", ("cancel_order_form",),
                                       ReplyKind.FORM_QUESTION), ExpectedTurn("a@b.example", "inform"))
    ended = text.replace("  - slot_was_set:\n    - email: a@b.example\n", "")
    [test] = yaml_io.loads(ended)
    assert test.turns[1] == ExpectedTurn("a@b.example", "inform") and len(test.turns) == 2


def test_a_fresh_install_is_seeded_once(session: Session) -> None:
    from bot.convtests.seed import seed_if_empty

    assert seed_if_empty(session) > 65
    store.delete_test(session, "greet main path")
    assert seed_if_empty(session) == 0  # a test a lead deleted stays deleted
    assert "greet main path" not in {t.name for t in store.all_tests(session)}
