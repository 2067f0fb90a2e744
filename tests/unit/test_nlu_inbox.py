"""The NLU inbox: ingest from Rasa's stored events, grouping, filters, labels with history, the export to
Rasa YAML (loaded by Rasa's own loader), and the HTTP API for leads.

Rasa's tracker store is a real SQLite file per test with Rasa's ``events`` table, written row by row as
Rasa writes it. The console's tables live in a database of this module's own; the training root (domain,
training data, test set) is a temporary copy, so nothing here touches ``data/`` or ``tests/nlu_test.yml``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.auth import users
from bot.config import Settings
from bot.db import session_scope
from bot.rasa_events import EVENTS, create_events_table, tracker_engine
from bot.training import nlu_inbox
from bot.training.nlu_inbox import InboxError, InboxQuery, ingest, label_messages, list_groups, sampled
from bot.training.nlu_yaml import MARKER, export_labels, group_key, known_intents, strip_markup
from bot.training.tables import IngestState, ModelVersion, NluLabelEvent, NluMessage
from bot.web.app import create_app
from bot.web.routes.nlu_inbox import router as inbox_router
from tests.conftest import ROOT
from tests.support.console_login import login as console_login
from tests.support.scratch_db import emptied_session, migrated_sqlite

RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"
PASSWORD = "correct horse battery staple"
DAY = datetime(2024, 5, 6, 9, 0, 0)  # a Monday, naive UTC
EPOCH = datetime(1970, 1, 1)
HAND_NLU = """version: "3.1"
nlu:
- intent: greet
  examples: |
    - hello there
    - good morning
- intent: track_order
  examples: |
    - where is my order [NW-100234](order_number)
"""
CURATED = """version: "3.1"
# Hand-curated held-out test set (kept byte for byte by the export)
nlu:
- intent: greet
  examples: |
    - hiya, anyone home?
    - Good evening!
"""


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_sqlite(tmp_path_factory, "inbox-db", "console.sqlite3")


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    with emptied_session(db_url, NluLabelEvent, NluMessage, IngestState, ModelVersion) as s:
        yield s


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A training root: the real domain, a small hand-written training file, a small curated test set."""
    base = tmp_path / "root"
    (base / "data" / "nlu").mkdir(parents=True)
    (base / "tests").mkdir()
    shutil.copy(ROOT / "domain.yml", base / "domain.yml")
    (base / "data" / "nlu" / "hand.yml").write_text(HAND_NLU)
    (base / "tests" / "nlu_test.yml").write_text(CURATED + MARKER + "\n")
    return base


class Tracker:
    """Rasa's SQL tracker store: its ``events`` table, rows written the way Rasa writes them."""

    def __init__(self, url: str) -> None:
        self.url = url
        create_events_table(url)
        self.clock = DAY

    def _add(self, sender: str, event: dict[str, Any], intent: str | None = None, action: str | None = None,
             at: datetime | None = None) -> int:
        self.clock = at or self.clock + timedelta(seconds=1)
        stamp = (self.clock - EPOCH).total_seconds()
        event = {**event, "timestamp": stamp}
        with tracker_engine(self.url).begin() as conn:
            done = conn.execute(EVENTS.insert().values(sender_id=sender, type_name=event["event"], timestamp=stamp,
                                                       intent_name=intent, action_name=action,
                                                       data=json.dumps(event)))
            return int(done.inserted_primary_key[0])

    def user(self, sender: str, text: str, intent: str = "greet", confidence: float = 0.95,
             ranking: list[tuple[str, float]] | None = None, entities: list[dict[str, Any]] | None = None,
             at: datetime | None = None) -> int:
        ranking = ranking or [(intent, confidence), ("goodbye", round((1 - confidence) / 2, 4))]
        parse = {"text": text, "intent": {"name": intent, "confidence": confidence}, "entities": entities or [],
                 "intent_ranking": [{"name": n, "confidence": c} for n, c in ranking], "message_id": uuid.uuid4().hex,
                 "metadata": {}}
        return self._add(sender, {"event": "user", "metadata": {}, "text": text, "parse_data": parse,
                                  "input_channel": "rest", "message_id": parse["message_id"]}, intent=intent, at=at)

    def action(self, sender: str, name: str) -> int:
        return self._add(sender, {"event": "action", "metadata": {}, "name": name, "policy": "RulePolicy",
                                  "confidence": 1.0, "action_text": None, "hide_rasa_events": False}, action=name)

    def bot(self, sender: str, text: str) -> int:
        return self._add(sender, {"event": "bot", "metadata": {}, "text": text, "data": {}})

    def slot(self, sender: str, name: str, value: Any) -> int:
        return self._add(sender, {"event": "slot", "metadata": {}, "name": name, "value": value})

    def simple(self, sender: str, kind: str) -> int:
        return self._add(sender, {"event": kind, "metadata": {}})


@pytest.fixture
def tracker(tmp_path: Path) -> Tracker:
    return Tracker(f"sqlite:///{tmp_path / 'rasa_tracker.sqlite3'}")


def run_ingest(session: Session, tracker: Tracker, sample_rate: float = 0.0, chunk: int = 5000) -> int:
    return ingest(session, tracker.url, threshold=0.7, sample_rate=sample_rate, chunk=chunk)


def rows(session: Session) -> dict[str, NluMessage]:
    session.expire_all()
    return {row.text: row for row in session.scalars(select(NluMessage))}


def reasons(row: NluMessage) -> list[str]:
    return nlu_inbox.reasons_of(row)


def fallback_ranking(real: str, confidence: float) -> list[tuple[str, float]]:
    """What Rasa's FallbackClassifier stores: nlu_fallback first (at its threshold), the real ranking after."""
    return [("nlu_fallback", 0.4), (real, confidence), ("goodbye", round(confidence / 2, 4))]


def label(session: Session, root: Path, **kwargs: Any) -> int:
    kwargs.setdefault("user_id", None)
    kwargs.setdefault("author", "Lena Lead")
    done = label_messages(session, root, **kwargs)
    session.commit()
    return done


# --------------------------------------------------------------------------- ingest


def test_ingest_flags_the_reasons_and_skips_payloads_empty_and_paused_messages(session: Session,
                                                                                tracker: Tracker) -> None:
    tracker.simple("c1", "session_started")
    tracker.user("c1", "where is my parcel", "track_order", 0.95)
    tracker.slot("c1", "requested_slot", "order_number")
    tracker.action("c1", "track_order_form")
    tracker.user("c1", '/product_details{"product_id": "12"}', "product_details", 1.0)
    tracker.action("c1", "action_product_details")
    tracker.user("c1", "   ", "greet", 0.3)
    tracker.user("c2", "asdf qwerty", "nlu_fallback", 0.4, ranking=fallback_ranking("greet", 0.31))
    tracker.action("c2", "utter_default")
    tracker.user("c3", "I want a human now", "contact_human_agent", 0.92)
    tracker.slot("c3", "sentiment", -0.4)
    tracker.action("c3", "action_escalate")
    tracker.bot("c3", "I'm getting a colleague for you.")
    tracker.simple("c3", "pause")
    tracker.user("c3", "hello?? anyone", "greet", 0.2)  # to the agent while the bot is paused: not for the inbox
    tracker.simple("c3", "resume")
    tracker.user("c3", "thanks for the help", "thank", 0.55)
    tracker.action("c3", "action_listen")
    tracker.user("c4", "hmm maybe the other one", "affirm", 0.81)
    tracker.action("c4", "action_default_fallback")  # the dialogue's fallback (RulePolicy core fallback)

    assert run_ingest(session, tracker) == 5
    got = rows(session)
    assert sorted(got) == ["I want a human now", "asdf qwerty", "hmm maybe the other one", "thanks for the help",
                           "where is my parcel"]
    parcel = got["where is my parcel"]
    assert (parcel.intent, parcel.confidence, reasons(parcel), parcel.in_inbox) == ("track_order", 0.95, [], False)
    fallback = got["asdf qwerty"]
    # the intent is the real prediction behind nlu_fallback, and its confidence
    assert (fallback.intent, fallback.confidence) == ("greet", 0.31)
    assert reasons(fallback) == ["fallback", "low_confidence"] and fallback.in_inbox
    human = got["I want a human now"]
    assert reasons(human) == ["escalated"] and human.in_inbox
    assert reasons(got["thanks for the help"]) == ["low_confidence"]
    assert reasons(got["hmm maybe the other one"]) == ["fallback"]
    assert parcel.timestamp == DAY + timedelta(seconds=2) and parcel.sender_id == "c1"
    assert parcel.status == "open" and parcel.group_key == "where is my parcel"

    # idempotent: nothing new, nothing doubled; the cursor sits on the last event read
    assert run_ingest(session, tracker) == 0
    assert session.scalar(select(func.count(NluMessage.id))) == 5
    assert nlu_inbox.cursor_of(session, tracker.url) == tracker.action("c9", "action_listen") - 1


def test_an_escalation_stored_after_the_ingest_still_flags_the_message(session: Session, tracker: Tracker) -> None:
    tracker.user("late", "this is useless, my shoes never came", "complaint", 0.9)
    tracker.user("other", "good morning", "greet", 0.99)
    tracker.user("early", "show me the blue one", "product_details", 0.88)
    tracker.action("early", "utter_ask_which")
    assert run_ingest(session, tracker) == 3
    assert not rows(session)["this is useless, my shoes never came"].in_inbox

    # Rasa stores the bot's turn after the inbox read the message (the policy ran in the meantime)
    tracker.slot("late", "sentiment", -0.7)
    tracker.action("late", "action_escalate")
    tracker.action("early", "action_escalate")  # not "early"'s next action: utter_ask_which was
    assert run_ingest(session, tracker) == 0
    got = rows(session)
    assert reasons(got["this is useless, my shoes never came"]) == ["escalated"]
    assert got["this is useless, my shoes never came"].in_inbox
    assert reasons(got["show me the blue one"]) == []


def test_chunked_ingest_sees_actions_pauses_and_restarts_across_chunk_borders(session: Session,
                                                                             tracker: Tracker) -> None:
    tracker.user("a", "i need a person", "contact_human_agent", 0.95)
    tracker.action("a", "action_listen")
    tracker.slot("a", "x", 1)
    tracker.user("b", "no idea what i want", "search_product", 0.5)
    tracker.action("a", "action_escalate")
    tracker.simple("a", "pause")
    tracker.action("b", "action_default_fallback")
    tracker.user("a", "are you there", "greet", 0.3)  # paused: skipped, even in a later chunk
    tracker.simple("a", "restart")
    tracker.user("a", "hi again", "greet", 0.4)
    tracker.user("c", "cheapest red jacket", "search_product", 0.97)
    tracker.simple("c", "restart")
    tracker.action("c", "action_escalate")  # after a restart: no message is waiting for it
    assert run_ingest(session, tracker, chunk=1) == 4
    got = rows(session)
    assert sorted(got) == ["cheapest red jacket", "hi again", "i need a person", "no idea what i want"]
    assert reasons(got["i need a person"]) == ["escalated"]
    assert reasons(got["no idea what i want"]) == ["fallback", "low_confidence"]
    assert reasons(got["hi again"]) == ["low_confidence"]
    assert reasons(got["cheapest red jacket"]) == []


def test_sampling_is_deterministic_and_only_for_confident_messages(session: Session, tracker: Tracker) -> None:
    share = sum(sampled(i, 0.03) for i in range(1, 20_001)) / 20_000
    assert 0.025 < share < 0.035
    assert [sampled(i, 0.03) for i in range(1, 500)] == [sampled(i, 0.03) for i in range(1, 500)]
    assert not any(sampled(i, 0.0) for i in range(1, 500)) and all(sampled(i, 1.0) for i in range(1, 500))

    ids = [tracker.user(f"s{i}", f"confident message number {i}", "greet", 0.97) for i in range(40)]
    unsure = tracker.user("s-low", "unsure one", "greet", 0.5)
    run_ingest(session, tracker, sample_rate=0.5)
    got = {row.event_id: row for row in rows(session).values()}
    assert [got[i].sampled for i in ids] == [sampled(i, 0.5) for i in ids]
    assert 5 < sum(got[i].sampled for i in ids) < 35
    assert all(got[i].in_inbox == got[i].sampled for i in ids)
    assert not got[unsure].sampled and got[unsure].in_inbox


def test_two_ingests_at_once_store_each_message_once(db_url: str, session: Session, tracker: Tracker) -> None:
    for i in range(300):
        tracker.user(f"conv{i % 7}", f"message {i} about socks", "search_product", 0.5)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with session_scope(db_url) as own:
                run_ingest(own, tracker, chunk=50)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert session.scalar(select(func.count(NluMessage.id))) == 300

    # A run that read the cursor before another one moved it loses the race and changes nothing.
    tracker.user("conv1", "one more about socks", "search_product", 0.5)
    events = list(nlu_inbox.read_events(tracker.url, after_id=0, types=nlu_inbox.EVENT_TYPES))
    with pytest.raises((IntegrityError, nlu_inbox._Raced)), session_scope(db_url) as stale:
        nlu_inbox._ingest_chunk(stale, tracker.url, 0, events, 0.7, 0.0)
    assert run_ingest(session, tracker) == 1
    assert session.scalar(select(func.count(NluMessage.id))) == 301


# --------------------------------------------------------------------------- grouping and filters


def test_group_key_joins_near_duplicates() -> None:
    assert group_key("Where is my order 12345?!") == group_key("where is my ORDER #98") == "where is my order #"
    assert group_key("Don’t  like   it") == group_key("dont like it") == "dont like it"
    assert group_key("Crème brûlée, s'il vous plaît") == "creme brulee sil vous plait"
    assert group_key("x" * 400) == "x" * 255
    assert group_key("?!") == "?!"


def _inbox_fixture(tracker: Tracker) -> None:
    tracker.user("a1", "Where is my order 123?", "track_order", 0.62, at=DAY)
    tracker.user("a2", "where is my order #456", "track_order", 0.55, at=DAY + timedelta(hours=1))
    tracker.user("a3", "WHERE IS MY ORDER 789!!", "check_refund_policy", 0.41, at=DAY + timedelta(days=1))
    tracker.user("b1", "do you sell tents", "search_product", 0.6, at=DAY + timedelta(days=2))
    tracker.user("b2", "Do you sell tents?", "search_product", 0.3, at=DAY + timedelta(days=2, hours=1))
    tracker.user("c1", "blorp", "nlu_fallback", 0.4, ranking=fallback_ranking("greet", 0.2),
                 at=DAY + timedelta(days=3))
    tracker.user("d1", "the best shop ever", "greet", 0.99, at=DAY + timedelta(days=3))  # confident: not listed


def test_groups_are_counted_sorted_and_summarised(session: Session, tracker: Tracker, root: Path) -> None:
    _inbox_fixture(tracker)
    run_ingest(session, tracker)
    page = list_groups(session, InboxQuery(), root)
    assert page["total_groups"] == 3 and page["page"] == 1 and page["page_size"] == 50
    first, second, third = page["groups"]
    assert first["group_key"] == "where is my order #" and first["count"] == 3
    assert first["text"] == "WHERE IS MY ORDER 789!!"  # the most recent
    assert first["texts"] == ["WHERE IS MY ORDER 789!!", "where is my order #456", "Where is my order 123?"]
    assert first["intent"] == "track_order" and first["confidence"] == 0.41
    assert first["reasons"] == ["low_confidence"] and first["status"] == "open"
    assert first["first_at"] == "2024-05-06T09:00:00Z" and first["last_at"] == "2024-05-07T09:00:00Z"
    assert (first["label_intent"], first["label_target"]) == (None, None)
    assert len(first["message_ids"]) == 3
    # equal counts: the more recent group first
    assert (second["group_key"], second["count"]) == ("do you sell tents", 2)
    assert (third["text"], third["reasons"], third["intent"]) == ("blorp", ["fallback", "low_confidence"], "greet")
    assert "track_order" in page["intents"] and "nlu_fallback" not in page["intents"]
    assert "order_number" in page["entities"] and "color" in page["entities"]


@pytest.mark.parametrize(("params", "expected"), [
    ({"q": "TENTS"}, ["do you sell tents"]),
    ({"q": "order #4"}, ["where is my order #"]),
    ({"intent": "check_refund_policy"}, ["where is my order #"]),
    ({"reason": "fallback"}, ["blorp"]),
    ({"min_conf": "0.5", "max_conf": "0.61"}, ["do you sell tents", "where is my order #"]),
    ({"max_conf": "0.2"}, ["blorp"]),
    ({"since": "2024-05-08"}, ["do you sell tents", "blorp"]),
    ({"until": "2024-05-07"}, ["where is my order #"]),
    ({"since": "2024-05-07", "until": "2024-05-07"}, ["where is my order #"]),
    ({"status": "labelled"}, []),
])
def test_filters(session: Session, tracker: Tracker, root: Path, params: dict[str, str], expected: list[str]) -> None:
    _inbox_fixture(tracker)
    run_ingest(session, tracker)
    page = list_groups(session, InboxQuery.parse(params), root)
    assert [g["group_key"] for g in page["groups"]] == expected
    if "min_conf" in params:  # a filter narrows the messages, and a group shows only the matching ones
        assert [g["count"] for g in page["groups"]] == [1, 1]


def test_paging_and_bad_filters(session: Session, tracker: Tracker, root: Path) -> None:
    _inbox_fixture(tracker)
    run_ingest(session, tracker)
    pages = [list_groups(session, InboxQuery.parse({"page": str(p), "page_size": "2"}), root) for p in (1, 2, 3)]
    assert [[g["text"] for g in p["groups"]] for p in pages] == [
        ["WHERE IS MY ORDER 789!!", "Do you sell tents?"], ["blorp"], []]
    assert all(p["total_groups"] == 3 for p in pages)
    for bad in ({"reason": "angry"}, {"status": "done"}, {"min_conf": "high"}, {"max_conf": "1.5"},
                {"since": "yesterday"}, {"since": "2024-05-09", "until": "2024-05-08"}, {"page_size": "1000"}):
        with pytest.raises(InboxError) as refused:
            InboxQuery.parse(bad)
        assert refused.value.status == 400 and refused.value.code == "bad_filter"


# --------------------------------------------------------------------------- labels


def test_bulk_label_by_group_with_history_and_reopen(session: Session, tracker: Tracker, root: Path) -> None:
    _inbox_fixture(tracker)
    run_ingest(session, tracker)
    assert label(session, root, group_keys=["where is my order #"], action="intent", intent="track_order",
                 user_id=None, author="Lena Lead", now=DAY + timedelta(days=5)) == 3
    got = rows(session)
    assert {r.status for t, r in got.items() if "order" in t.lower()} == {"labelled"}
    group = list_groups(session, InboxQuery(status="all"), root)["groups"][0]
    assert (group["status"], group["label_intent"], group["label_target"]) == ("labelled", "track_order", "train")
    assert list_groups(session, InboxQuery(), root)["total_groups"] == 2  # open ones only by default

    # the same label again changes nothing and writes no history
    assert label(session, root, group_keys=["where is my order #"], action="intent", intent="track_order") == 0
    one = got["where is my order #456"]
    assert label(session, root, message_ids=[one.id], action="reopen", author="Sam Senior",
                 now=DAY + timedelta(days=6)) == 1
    detail = nlu_inbox.message_detail(session, one.id, tracker.url)
    assert detail["message"]["status"] == "open" and detail["message"]["label_intent"] is None
    assert detail["message"]["labelled_by"] == "Sam Senior"
    assert [(h["status"], h["intent"], h["author"], h["at"]) for h in detail["history"]] == [
        ("open", None, "Sam Senior", "2024-05-12T09:00:00Z"),
        ("labelled", "track_order", "Lena Lead", "2024-05-11T09:00:00Z")]
    # the group is open again because one of its messages is, and lists only that one
    groups = list_groups(session, InboxQuery(), root)["groups"]
    reopened = [g for g in groups if g["group_key"] == "where is my order #"]
    assert [(g["count"], g["message_ids"], g["status"]) for g in reopened] == [(1, [one.id], "open")]

    blorp = got["blorp"]
    assert label(session, root, message_ids=[blorp.id], action="out_of_scope", target="test") == 1
    assert label(session, root, group_keys=["do you sell tents"], action="ignore") == 2
    session.expire_all()
    assert (blorp.status, blorp.label_target) == ("out_of_scope", "test")
    assert session.scalar(select(func.count(NluLabelEvent.id))) == 3 + 1 + 1 + 2


def test_label_refusals(session: Session, tracker: Tracker, root: Path) -> None:
    _inbox_fixture(tracker)
    run_ingest(session, tracker)
    got = rows(session)
    one, other = got["blorp"].id, got["do you sell tents"].id

    def refused(**kwargs: Any) -> tuple[int, str]:
        kwargs.setdefault("action", "intent")
        with pytest.raises(InboxError) as caught:
            label(session, root, **kwargs)
        session.rollback()
        return caught.value.status, caught.value.code

    assert refused(message_ids=[one], intent="weather_report") == (400, "unknown_intent")
    assert refused(message_ids=[one], intent="Weather Report", new_intent=True) == (400, "bad_intent_name")
    assert refused(message_ids=[one], intent="nlu_fallback", new_intent=True) == (400, "bad_intent_name")
    assert refused(message_ids=[one]) == (400, "missing_intent")
    assert refused(message_ids=[], group_keys=[], intent="greet") == (400, "empty_selection")
    assert refused(message_ids=[999_999], intent="greet") == (404, "not_found")
    assert refused(group_keys=["no such group"], intent="greet") == (404, "not_found")
    ents = [{"start": 0, "end": 3, "entity": "category"}]
    assert refused(message_ids=[one, other], intent="greet", entities=ents) == (400, "entities_need_one_message")
    assert refused(message_ids=[one], action="ignore", entities=ents) == (400, "entities_need_intent")
    assert refused(message_ids=[one], intent="greet", entities=[{"start": 2, "end": 9, "entity": "category"}]) == (
        400, "bad_offsets")
    assert refused(message_ids=[one], intent="greet", entities=[{"start": 0, "end": 5, "entity": "mood"}]) == (
        400, "unknown_entity")
    assert refused(message_ids=[other], intent="search_product", entities=[
        {"start": 12, "end": 17, "entity": "category"}, {"start": 4, "end": 13, "entity": "brand"}]) == (
        400, "overlapping_entities")
    assert session.scalar(select(func.count(NluLabelEvent.id))) == 0  # nothing half-done

    # a new intent needs the flag once; afterwards it is a known intent
    assert label(session, root, message_ids=[one], action="intent", intent="weather_report", new_intent=True) == 1
    assert "weather_report" in known_intents(root, session)
    assert label(session, root, message_ids=[other], action="intent", intent="weather_report") == 1
    # entity offsets are trimmed to the words; the value defaults to the words
    assert label(session, root, message_ids=[other], action="intent", intent="search_product",
                 entities=[{"start": 11, "end": 17, "entity": "category"}]) == 1
    session.expire_all()
    assert session.get(NluMessage, other).label_entities == [  # type: ignore[union-attr]
        {"start": 12, "end": 17, "entity": "category", "value": "tents"}]


def test_pending_labels_counts_changes_since_the_last_training(session: Session, tracker: Tracker,
                                                               root: Path) -> None:
    _inbox_fixture(tracker)
    run_ingest(session, tracker)
    got = rows(session)
    label(session, root, message_ids=[got["blorp"].id], action="out_of_scope", now=DAY)
    label(session, root, group_keys=["do you sell tents"], action="intent", intent="search_product",
          now=DAY + timedelta(days=2))
    label(session, root, group_keys=["where is my order #"], action="ignore", now=DAY + timedelta(days=2))
    assert nlu_inbox.pending_labels(session, None) == 3
    assert nlu_inbox.pending_labels(session, DAY + timedelta(days=1)) == 2
    session.add(ModelVersion(version=1, created_at=DAY + timedelta(days=1)))
    session.commit()
    summary = nlu_inbox.labels_summary(session, root)
    assert summary == {"pending": 2, "by_intent": {"out_of_scope": {"train": 1, "test": 0},
                                                   "search_product": {"train": 2, "test": 0}}, "new_intents": []}


# --------------------------------------------------------------------------- export


def _label_texts(session: Session, tracker: Tracker, root: Path, items: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Each (text, action, options) becomes a message in the tracker, ingested and labelled in that order."""
    for i, (text, _, _) in enumerate(items):
        tracker.user(f"exp{i}", text, "greet", 0.3)
    run_ingest(session, tracker)
    got = rows(session)
    for i, (text, action, options) in enumerate(items):
        label(session, root, message_ids=[got[text].id], action=action, now=DAY + timedelta(minutes=i), **options)


def rasa_load(*paths: Path) -> list[list[dict[str, Any]]]:
    """Loads each file with Rasa 3.6's own loader (the Rasa venv) and returns its examples."""
    assert RASA_PYTHON.exists(), f"the Rasa venv is missing ({RASA_PYTHON}): run `make` first"
    script = (
        "import json, sys\n"
        "from rasa.shared.nlu.training_data.loading import load_data\n"
        "out = []\n"
        "for path in sys.argv[1:]:\n"
        "    data = load_data(path)\n"
        "    out.append([{'text': m.get('text'), 'intent': m.get('intent'), 'entities': [\n"
        "        {k: e[k] for k in ('start', 'end', 'entity', 'value')} for e in m.get('entities') or []]}\n"
        "        for m in data.training_examples])\n"
        "print('RESULT ' + json.dumps(out))\n")
    done = subprocess.run([str(RASA_PYTHON), "-W", "error::UserWarning", "-c", script, *map(str, paths)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))  # type: ignore[no-any-return]


def test_export_writes_rasa_yaml_that_rasas_loader_reads(session: Session, tracker: Tracker, root: Path) -> None:
    curated_bytes = (root / "tests" / "nlu_test.yml").read_bytes()
    _label_texts(session, tracker, root, [
        ("do you sell red tents", "intent", {"intent": "search_product", "entities": [
            {"start": 12, "end": 15, "entity": "color"}, {"start": 16, "end": 21, "entity": "category"}]}),
        ("make that two", "intent", {"intent": "update_cart_quantity", "entities": [
            {"start": 10, "end": 13, "entity": "quantity", "value": "2"}]}),
        ("what's the weather [today]", "out_of_scope", {}),
        ("is it going to rain", "intent", {"intent": "weather_report", "new_intent": True}),
        ("a tent for four people", "intent", {"intent": "search_product"}),
        ("  cancel order NW-100777 ", "intent", {"intent": "cancel_order", "entities": [
            {"start": 15, "end": 24, "entity": "order_number"}], "target": "test"}),
        ("ok bye", "ignore", {}),
        ("still open", "reopen", {}),
    ])
    result = export_labels(session, root)
    assert (result.train_examples, result.test_examples) == (5, 1)
    assert result.new_intents == ["weather_report"] and result.conflicts == []
    assert result.train_path == root / "data" / "nlu" / "lead_labels.yml"
    assert result.test_path == root / "tests" / "nlu_test.yml"
    assert result.train_path.read_text() == (
        "# Generated from the support leads' labels in the console (/admin) when a training starts.\n"
        "# Do not edit by hand: change the labels in the console instead; this file is rewritten each time.\n"
        'version: "3.1"\n'
        "nlu:\n"
        "- intent: out_of_scope\n"
        "  examples: |\n"
        "    - what's the weather (today)\n"
        "- intent: search_product\n"
        "  examples: |\n"
        "    - a tent for four people\n"
        "    - do you sell [red](color) [tents](category)\n"
        "- intent: update_cart_quantity\n"
        "  examples: |\n"
        '    - make that [two]{"entity": "quantity", "value": "2"}\n'
        "- intent: weather_report\n"
        "  examples: |\n"
        "    - is it going to rain\n")
    test_file = result.test_path.read_bytes()
    assert test_file.startswith(curated_bytes)  # the hand-curated part, byte for byte, marker included
    assert test_file[len(curated_bytes):].decode() == (
        "- intent: cancel_order\n  examples: |\n    - cancel order [NW-100777](order_number)\n")

    train, test = rasa_load(result.train_path, result.test_path)
    assert sorted((e["intent"], e["text"]) for e in train) == [
        ("out_of_scope", "what's the weather (today)"), ("search_product", "a tent for four people"),
        ("search_product", "do you sell red tents"), ("update_cart_quantity", "make that two"),
        ("weather_report", "is it going to rain")]
    by_text = {e["text"]: e["entities"] for e in train + test}
    assert by_text["do you sell red tents"] == [
        {"start": 12, "end": 15, "entity": "color", "value": "red"},
        {"start": 16, "end": 21, "entity": "category", "value": "tents"}]
    assert by_text["make that two"] == [{"start": 10, "end": 13, "entity": "quantity", "value": "2"}]
    assert sorted((e["intent"], e["text"]) for e in test) == [
        ("cancel_order", "cancel order NW-100777"), ("greet", "Good evening!"), ("greet", "hiya, anyone home?")]
    assert by_text["cancel order NW-100777"] == [
        {"start": 13, "end": 22, "entity": "order_number", "value": "NW-100777"}]


def test_export_keeps_the_curated_test_set_and_replaces_only_the_generated_part(
        session: Session, tracker: Tracker, root: Path) -> None:
    test_path = root / "tests" / "nlu_test.yml"
    # odd bytes are kept as they are: CRLF line ends, trailing spaces, no final newline, no marker yet
    curated = CURATED.replace("\n", "\r\n").replace("home?", "home?   ").rstrip()
    test_path.write_bytes(curated.encode())
    _label_texts(session, tracker, root, [("track my refund pls", "intent", {"intent": "track_refund",
                                                                             "target": "test"})])
    first = export_labels(session, root)
    content = test_path.read_bytes()
    assert content.startswith(curated.encode())
    assert content[len(curated.encode()):].decode() == (
        f"\n{MARKER}\n- intent: track_refund\n  examples: |\n    - track my refund pls\n")
    assert first.test_examples == 1

    # the next export rewrites only what is below the marker, and is byte-identical when nothing changed
    assert export_labels(session, root).test_examples == 1
    assert test_path.read_bytes() == content
    message = rows(session)["track my refund pls"]
    label(session, root, message_ids=[message.id], action="reopen")
    assert export_labels(session, root).test_examples == 0
    assert test_path.read_bytes() == curated.encode() + f"\n{MARKER}\n".encode()

    # items indented under `nlu:` get generated items with the same indentation
    test_path.write_text('version: "3.1"\nnlu:\n  - intent: greet\n    examples: |\n      - hey you\n' + MARKER + "\n")
    label(session, root, message_ids=[message.id], action="intent", intent="track_refund", target="test")
    export_labels(session, root)
    assert test_path.read_text().endswith(f"{MARKER}\n  - intent: track_refund\n    examples: |\n"
                                          "      - track my refund pls\n")
    import yaml

    assert len(yaml.safe_load(test_path.read_text())["nlu"]) == 2


def test_export_conflicts_keep_test_and_training_data_apart(session: Session, tracker: Tracker, root: Path) -> None:
    _label_texts(session, tracker, root, [
        ("Where's my refund?", "intent", {"intent": "track_refund"}),
        ("wheres my refund", "intent", {"intent": "track_refund", "target": "test"}),  # same text, for the test set
        ("Hiya anyone home", "intent", {"intent": "greet"}),  # in the curated test set
        ("good morning!", "intent", {"intent": "greet", "target": "test"}),  # in the hand-written training data
        ("cheers mate", "intent", {"intent": "thank"}),
        ("Cheers, mate", "intent", {"intent": "goodbye"}),  # relabelled later: this one wins
        ("hello there", "intent", {"intent": "greet"}),  # already in training under the same intent: fine
    ])
    result = export_labels(session, root)
    reasons_by_text = {c["text"]: (c["reason"], c["exported"]) for c in result.conflicts}
    assert reasons_by_text == {
        "Where's my refund?": ("the same text is labelled for the test set", False),
        "Hiya anyone home": ("the text is in the test set", False),
        "good morning!": ("already in the training data (as 'greet')", False),
        "cheers mate": ("labelled 'goodbye' more recently", False),
    }
    assert (result.train_examples, result.test_examples) == (2, 1)
    train = result.train_path.read_text()
    assert "- Cheers, mate" in train and "- hello there" in train
    assert "refund" not in train and "cheers mate" not in train and "Hiya" not in train
    assert result.test_path.read_text().endswith("- intent: track_refund\n  examples: |\n    - wheres my refund\n")
    # the texts of the test set and of the training data share no group key
    test_keys = {group_key(strip_markup(line.strip()[2:])[0]) for line in result.test_path.read_text().splitlines()
                 if line.strip().startswith("- ") and "intent:" not in line}
    train_keys = {group_key(strip_markup(line.strip()[2:])[0]) for line in train.splitlines()
                  if line.strip().startswith("- ") and "intent:" not in line}
    assert test_keys and train_keys and not test_keys & train_keys


# --------------------------------------------------------------------------- the HTTP API


@pytest.fixture(scope="module")
def people(db_url: str) -> dict[str, users.UserView]:
    with session_scope(db_url) as s:
        tag = uuid.uuid4().hex[:6]
        return {"lead": users.create_user(s, f"lead-{tag}", PASSWORD, "lead", "Lena Lead"),
                "agent": users.create_user(s, f"agent-{tag}", PASSWORD, "agent", "Alex Agent")}


def make_client(db_url: str, tracker: Tracker, root: Path) -> TestClient:
    app = create_app(Settings(database_url=db_url, tracker_store_url=tracker.url, training_root=root,
                              rasa_url="http://127.0.0.1:9", actions_url="http://127.0.0.1:9",
                              inbox_sample_rate=0.0))
    if not any(getattr(r, "path", "") == "/admin/api/inbox" for r in app.routes):
        app.include_router(inbox_router)  # until the gateway includes it
    return TestClient(app, base_url="http://localhost")


def login(client: TestClient, user: users.UserView) -> str:
    return console_login(client, user, PASSWORD)


def test_the_inbox_api_for_a_lead(db_url: str, session: Session, tracker: Tracker, root: Path,
                                  people: dict[str, users.UserView]) -> None:
    tracker.user("web1", "hi", "greet", 0.99)
    tracker.bot("web1", "Hello! How can I help?")
    tracker.action("web1", "action_listen")
    tracker.user("web1", '/product_details{"product_id": "3"}', "product_details", 1.0)
    tracker.bot("web1", "Here it is.")
    tracker.user("web1", "does it come in grey", "product_details", 0.52)
    tracker.action("web1", "action_product_details")
    tracker.bot("web1", "It comes in black and navy.")
    tracker.user("web1", "ok thx", "thank", 0.97)
    tracker.user("web2", "Does it come in grey?", "product_details", 0.44)
    with make_client(db_url, tracker, root) as client:
        assert client.get("/admin/api/inbox").status_code == 401
        csrf = login(client, people["lead"])
        listed = client.get("/admin/api/inbox")
        assert listed.status_code == 200, listed.text
        body = listed.json()
        assert body["ingested"] == 4 and body["total_groups"] == 1
        group = body["groups"][0]
        assert (group["group_key"], group["count"], group["confidence"]) == ("does it come in grey", 2, 0.44)
        assert "search_product" in body["intents"] and "color" in body["entities"]
        assert client.get("/admin/api/inbox", params={"q": "grey", "reason": "low_confidence"}).json()[
            "total_groups"] == 1
        refused = client.get("/admin/api/inbox", params={"since": "last week"})
        assert refused.status_code == 400 and refused.json()["detail"]["error"] == "bad_filter"

        first = min(group["message_ids"])
        detail = client.get(f"/admin/api/inbox/messages/{first}").json()
        assert detail["message"]["text"] == "does it come in grey" and detail["message"]["reasons"] == [
            "low_confidence"]
        assert detail["context"] == {
            "before": [{"who": "bot", "text": "Hello! How can I help?"},
                       {"who": "shopper", "text": '/product_details{"product_id": "3"}'},
                       {"who": "bot", "text": "Here it is."}],
            "after": [{"who": "bot", "text": "It comes in black and navy."}, {"who": "shopper", "text": "ok thx"}]}
        assert detail["history"] == []
        assert client.get("/admin/api/inbox/messages/999999").status_code == 404

        body = {"message_ids": [first], "action": "intent", "intent": "product_details",
                "entities": [{"start": 16, "end": 20, "entity": "color"}], "target": "train"}
        assert client.post("/admin/api/inbox/label", json=body).status_code == 403  # no CSRF token
        done = client.post("/admin/api/inbox/label", json=body, headers={"X-CSRF-Token": csrf})
        assert done.status_code == 200 and done.json() == {"updated": 1}
        detail = client.get(f"/admin/api/inbox/messages/{first}").json()
        assert detail["message"]["label_entities"] == [{"start": 16, "end": 20, "entity": "color", "value": "grey"}]
        assert detail["message"]["labelled_by"] == "Lena Lead"
        assert [(h["status"], h["intent"], h["author"]) for h in detail["history"]] == [
            ("labelled", "product_details", "Lena Lead")]

        bulk = client.post("/admin/api/inbox/label", headers={"X-CSRF-Token": csrf},
                           json={"group_keys": [group["group_key"]], "action": "intent", "intent": "ask_colors"})
        assert bulk.status_code == 400 and bulk.json()["detail"]["error"] == "unknown_intent"
        assert bulk.json()["detail"]["message"].startswith("There is no intent 'ask_colors'")
        bulk = client.post("/admin/api/inbox/label", headers={"X-CSRF-Token": csrf},
                           json={"group_keys": [group["group_key"]], "action": "intent", "intent": "ask_colors",
                                 "new_intent": True})
        assert bulk.json() == {"updated": 2}
        malformed = client.post("/admin/api/inbox/label", headers={"X-CSRF-Token": csrf},
                                json={"message_ids": "all", "action": "shout"})
        assert malformed.status_code == 400 and malformed.json()["detail"]["error"] == "bad_request"
        missing = client.post("/admin/api/inbox/label", headers={"X-CSRF-Token": csrf},
                              json={"message_ids": [424242], "action": "ignore"})
        assert missing.status_code == 404 and missing.json()["detail"]["error"] == "not_found"

        labels = client.get("/admin/api/labels").json()
        assert labels == {"pending": 2, "by_intent": {"ask_colors": {"train": 2, "test": 0}},
                          "new_intents": ["ask_colors"]}
        assert client.get("/admin/api/inbox").json()["total_groups"] == 0  # nothing open any more
        assert "ask_colors" in client.get("/admin/api/inbox").json()["intents"]

    with make_client(db_url, tracker, root) as client:
        csrf = login(client, people["agent"])
        for path in ("/admin/api/inbox", f"/admin/api/inbox/messages/{first}", "/admin/api/labels"):
            assert client.get(path).status_code == 403
        refused = client.post("/admin/api/inbox/label", headers={"X-CSRF-Token": csrf},
                              json={"message_ids": [first], "action": "ignore"})
        assert refused.status_code == 403 and refused.json()["detail"]["error"] == "forbidden"
    session.expire_all()
    assert session.get(NluMessage, first).status == "labelled"  # type: ignore[union-attr]
