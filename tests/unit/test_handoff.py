"""Handoff: tickets API (claim races on real SQLite and PostgreSQL), priority, support hours, the context
packet from a real rasa_sdk Tracker, and ``action_escalate`` online and offline with the email follow-up."""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from actions.handoff import (
    BAD_EMAIL_TEXT,
    ActionAskFollowupEmail,
    ActionEscalate,
    ActionSaveFollowup,
    ValidateFollowupForm,
    transcript,
)
from bot.catalog.tables import Product
from bot.config import get_settings
from bot.db import make_engine, migrate, session_scope
from bot.demo.orders import add_order
from bot.handoff import tickets
from bot.handoff.context import build_packet
from bot.handoff.hours import HoursError, SupportHours, support_hours
from bot.handoff.priority import priority, sort_key
from bot.handoff.tables import CLAIMED, QUEUED, RESOLVED, AgentPresence, HelpdeskOutbox, Ticket, TicketMessage
from bot.knowledge.shop_policy_file import get_policy
from bot.shop import cart, crm
from bot.shop.tables import DELIVERED, PAID, SHIPPED, Customer
from tests.conftest import ROOT

DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text())
# Wednesday 2025-03-12 15:00 UTC is 11:00 in New York (open); Sunday 2025-03-16 is closed all day.
OPEN = datetime(2025, 3, 12, 15, 0)
SUNDAY = datetime(2025, 3, 16, 15, 0)


@pytest.fixture
def hours_as_scheduled() -> Iterator[None]:
    """The support schedule decides (whatever SHOP_HANDOFF_ALWAYS_OPEN other test modules set)."""
    before = os.environ.get("SHOP_HANDOFF_ALWAYS_OPEN")
    os.environ["SHOP_HANDOFF_ALWAYS_OPEN"] = "false"
    get_settings.cache_clear()
    yield
    if before is None:
        os.environ.pop("SHOP_HANDOFF_ALWAYS_OPEN", None)
    else:
        os.environ["SHOP_HANDOFF_ALWAYS_OPEN"] = before
    get_settings.cache_clear()


# --------------------------------------------------------------------------- a private database per test


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A fresh, migrated SQLite file: queue positions and presence start empty."""
    url = f"sqlite:///{tmp_path / 'handoff.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


def _open(sessions: sessionmaker[Session], conversation: str | None = None, points: int = 20,
          now: datetime = OPEN, reason: str = "explicit_request") -> int:
    with sessions.begin() as session:
        ticket, created = tickets.open_ticket(session, conversation_id=conversation or f"conv-{uuid.uuid4().hex[:10]}",
                                              customer_id=None, reason=reason, reason_detail="", priority=points,
                                              context={"summary": "s", "transcript": [
                                                  {"role": "shopper", "text": "where is my parcel"}]}, now=now)
        assert created
        return ticket.id


def _opener(sessions: sessionmaker[Session], conversation_id: str, key: str) -> Callable[[int], tuple[int, bool]]:
    """``open_one(i)``: opens the conversation's ticket (context ``{key: i}``) in a transaction of its own, as
    escalating does; returns (ticket id, whether this call created it)."""

    def open_one(i: int) -> tuple[int, bool]:
        with sessions.begin() as session:
            ticket, created = tickets.open_ticket(session, conversation_id=conversation_id, customer_id=None,
                                                  reason="explicit_request", context={key: i}, priority=20)
            return ticket.id, created

    return open_one


def _race(workers: int, target: Callable[[int], Any]) -> list[Any]:
    """Run ``target(i)`` in ``workers`` threads released at the same moment; results or exceptions."""
    barrier = threading.Barrier(workers)
    results: list[Any] = [None] * workers

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except Exception as exc:  # collected and asserted by the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


# --------------------------------------------------------------------------- tickets API


def test_one_open_ticket_per_conversation_and_a_new_one_after_resolving(sessions: sessionmaker[Session]) -> None:
    first = _open(sessions, "conv-one-ticket")
    with sessions.begin() as session:
        again, created = tickets.open_ticket(session, conversation_id="conv-one-ticket", customer_id=None,
                                             reason="negative_mood", context={}, priority=99)
        assert (again.id, created, again.reason, again.priority) == (first, False, "explicit_request", 20)
        assert tickets.open_ticket_for(session, "conv-one-ticket").id == first
    with sessions.begin() as session:
        tickets.claim(session, first, agent_id=1)
    with sessions.begin() as session:  # claimed is still open
        assert tickets.open_ticket(session, conversation_id="conv-one-ticket", customer_id=None,
                                   reason="explicit_request", context={}, priority=1)[1] is False
        tickets.resolve(session, first, agent_id=1)
    with sessions.begin() as session:
        assert tickets.open_ticket_for(session, "conv-one-ticket") is None
    second = _open(sessions, "conv-one-ticket")
    assert second != first
    # the database refuses a second open ticket even when code skips the check
    with pytest.raises(Exception, match="UNIQUE"), sessions.begin() as session:
        session.add(Ticket(conversation_id="conv-one-ticket", reason="x", reason_detail="", priority=1,
                           status=QUEUED, context={}, created_at=OPEN))
        session.flush()


def test_concurrent_escalations_of_one_conversation_open_one_ticket(sessions: sessionmaker[Session]) -> None:
    results = _race(8, _opener(sessions, "conv-race-open", "n"))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(created for _, created in results) == 1
    assert len({ticket_id for ticket_id, _ in results}) == 1
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Ticket)
                              .where(Ticket.conversation_id == "conv-race-open")) == 1


def test_two_agents_claiming_at_once_one_wins(sessions: sessionmaker[Session]) -> None:
    for round_ in range(5):
        ticket_id = _open(sessions)

        def claim(agent: int, ticket_id: int = ticket_id) -> int:
            with sessions.begin() as session:
                return tickets.claim(session, ticket_id, agent_id=100 + agent, agent_name=f"agent{agent}").assignee_id

        results = _race(6, claim)
        winners = [r for r in results if isinstance(r, int)]
        losers = [r for r in results if isinstance(r, tickets.AlreadyClaimed)]
        assert len(winners) == 1 and len(losers) == 5, (round_, results)
        assert all(exc.assignee_id == winners[0] for exc in losers)
        with sessions() as session:
            view = tickets.get_view(session, ticket_id)
            assert (view.status, view.assignee_id) == (CLAIMED, winners[0])
            joined = [m.text for m in view.messages if m.role == "system"]
            assert joined == [f"agent{winners[0] - 100} joined the conversation"]  # one system line, the winner's


def test_claim_transfer_resolve_and_their_errors(sessions: sessionmaker[Session]) -> None:
    ticket_id = _open(sessions)
    with sessions.begin() as session:
        assert tickets.claim(session, ticket_id, 1).status == CLAIMED
        assert tickets.claim(session, ticket_id, 1).assignee_id == 1  # a double click is harmless
        with pytest.raises(tickets.AlreadyClaimed):
            tickets.claim(session, ticket_id, 2)
        with pytest.raises(tickets.NotAssignee):
            tickets.transfer(session, ticket_id, 2, 3)  # not agent 2's to give
        with pytest.raises(tickets.NotAssignee):
            tickets.resolve(session, ticket_id, 2)
        moved = tickets.transfer(session, ticket_id, 1, 2, note="knows the returns")
        assert (moved.status, moved.assignee_id) == (CLAIMED, 2)
        back = tickets.transfer(session, ticket_id, 2, None)
        assert (back.status, back.assignee_id, back.claimed_at) == (QUEUED, None, None)
        assert tickets.transfer(session, ticket_id, None, 5, force=True).assignee_id == 5  # a lead assigns
        done = tickets.resolve(session, ticket_id, 5)
        assert done.status == RESOLVED and done.resolved_at is not None
        with pytest.raises(tickets.TicketClosed):
            tickets.resolve(session, ticket_id, 5)
        with pytest.raises(tickets.TicketClosed):
            tickets.claim(session, ticket_id, 1)
        with pytest.raises(tickets.TicketNotFound):
            tickets.claim(session, 999999, 1)
        lines = [m.text for m in tickets.get_view(session, ticket_id).messages]
    assert lines == ["Transferred to another agent: knows the returns", "Sent back to the queue",
                     "Transferred to another agent", "Resolved"]
    # a queued ticket can be resolved straight away (answered by email); its resolver becomes the assignee
    other = _open(sessions)
    with sessions.begin() as session:
        assert tickets.resolve(session, other, 7).assignee_id == 7


def test_messages_rating_and_followup_email(sessions: sessionmaker[Session]) -> None:
    ticket_id = _open(sessions, "conv-rating")
    with sessions.begin() as session:
        tickets.claim(session, ticket_id, 1)
        tickets.add_message(session, ticket_id, "shopper", "  still waiting  ", sentiment=-0.4)
        tickets.add_message(session, ticket_id, "agent", "Let me check", author="ana")
        tickets.add_message(session, ticket_id, "note", "VIP, be quick", author="ana")
        for role, words in (("robot", "x"), ("agent", "   "), ("agent", "x" * 4001)):
            with pytest.raises(ValueError):
                tickets.add_message(session, ticket_id, role, words)
        with pytest.raises(ValueError):
            tickets.set_followup_email(session, ticket_id, "jane@")
        assert tickets.set_followup_email(session, ticket_id, " Jane.Doe@Example.COM ").followup_email == \
            "Jane.Doe@example.com"
        with pytest.raises(ValueError, match="once it is resolved"):
            tickets.rate(session, ticket_id, "conv-rating", 5)
        tickets.resolve(session, ticket_id, 1)
        with pytest.raises(tickets.TicketClosed):
            tickets.add_message(session, ticket_id, "agent", "too late")
        tickets.add_message(session, ticket_id, "note", "closed: parcel found")  # notes still allowed
        for bad in (0, 6, True, 4.5, "5"):
            with pytest.raises(ValueError):
                tickets.rate(session, ticket_id, "conv-rating", bad)  # type: ignore[arg-type]
        with pytest.raises(tickets.TicketNotFound):
            tickets.rate(session, ticket_id, "conv-someone-else", 5)  # only the ticket's own conversation
        assert tickets.rate(session, ticket_id, "conv-rating", 4).rating == 4
        with pytest.raises(ValueError, match="already rated"):
            tickets.rate(session, ticket_id, "conv-rating", 1)
        view = tickets.get_view(session, ticket_id)
    assert [(m.role, m.text) for m in view.messages][:3] == [
        ("shopper", "still waiting"), ("agent", "Let me check"), ("note", "VIP, be quick")]
    assert view.rating == 4 and view.last_message == "still waiting"
    data = json.loads(json.dumps(view.as_dict()))  # JSON-ready
    assert data["created_at"].endswith("Z") and data["messages"][1]["author"] == "ana"
    assert data["context"]["summary"] == "s"


def test_queue_orders_by_priority_plus_waiting_time(sessions: sessionmaker[Session]) -> None:
    per_point = get_settings().handoff_wait_minutes_per_point
    old_low = _open(sessions, points=20, now=OPEN - timedelta(minutes=40 * per_point))  # waited 40 points' worth
    fresh_high = _open(sessions, points=50, now=OPEN)
    fresh_low = _open(sessions, points=20, now=OPEN)
    claimed = _open(sessions, points=90, now=OPEN)
    resolved = _open(sessions, points=95, now=OPEN)
    with sessions.begin() as session:
        tickets.claim(session, claimed, 1)
        tickets.resolve(session, resolved, None, force=True)
    with sessions() as session:
        views = tickets.queue(session, now=OPEN)
        by_id = {v.id: v for v in views}
        waiting = [v.id for v in views if v.status == QUEUED]
        assert waiting == [old_low, fresh_high, fresh_low]  # 20 + 40 beats 50 beats 20
        assert resolved not in by_id and by_id[claimed].status == CLAIMED
        assert by_id[old_low].waiting_minutes == pytest.approx(40 * per_point)
        assert by_id[old_low].sort_key == pytest.approx(sort_key(20, OPEN - timedelta(minutes=40 * per_point), OPEN,
                                                                 per_point))
        assert by_id[fresh_low].last_message == "where is my parcel"  # from the packet before any live message
        ticket = session.get(Ticket, fresh_low)
        estimate = tickets.wait_estimate(session, ticket, now=OPEN)
        assert (estimate.position, estimate.basis, estimate.agents_online) == (3, "default", 0)
        assert estimate.minutes == round(3 * get_settings().handoff_default_wait_minutes)


def test_presence_and_wait_estimate_from_recent_claims(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        tickets.touch_presence(session, 1, "ana", now=OPEN - timedelta(seconds=10))
        tickets.touch_presence(session, 1, "ana", now=OPEN)  # an upsert, not a second row
        tickets.touch_presence(session, 2, "ben", now=OPEN - timedelta(minutes=5))  # gone quiet
        assert session.scalar(select(func.count()).select_from(AgentPresence)) == 2
        assert tickets.agents_online(session, now=OPEN) == 1
        assert tickets.agents_online(session, now=OPEN + timedelta(minutes=30)) == 0
        assert tickets.agents_online(session, now=OPEN - timedelta(days=1)) == 0  # a later sighting says nothing
        tickets.touch_presence(session, 2, "ben", now=OPEN)
        assert tickets.agents_online(session, now=OPEN) == 2
        tickets.clear_presence(session, 2)
        assert tickets.agents_online(session, now=OPEN) == 1
    # three tickets claimed after 2, 4 and 9 minutes: the median (4) per position
    for minutes in (2, 4, 9):
        ticket_id = _open(sessions, now=OPEN - timedelta(hours=1))
        with sessions.begin() as session:
            tickets.claim(session, ticket_id, 1, now=OPEN - timedelta(hours=1) + timedelta(minutes=minutes))
    first, second = _open(sessions, points=30), _open(sessions, points=20)
    with sessions() as session:
        one = tickets.wait_estimate(session, session.get(Ticket, first), now=OPEN)
        two = tickets.wait_estimate(session, session.get(Ticket, second), now=OPEN)
        assert (one.position, one.minutes, one.basis) == (1, 4, "recent")
        assert (two.position, two.minutes) == (2, 8)
        tickets.touch_presence(session, 3, "cy", now=OPEN)  # two agents share the queue
        assert tickets.wait_estimate(session, session.get(Ticket, second), now=OPEN).minutes == 4


def test_priority_follows_reason_segment_mood_and_value() -> None:
    base = priority("explicit_request", None, None, None)
    assert priority("explicit_request", "vip", None, None) > priority("explicit_request", "regular", None, None) \
        == base
    assert priority("very_negative_message", None, None, None) > priority("negative_mood", None, None, None) > base
    assert priority("gave_up", None, None, None) > priority("repeated_request", None, None, None) > base
    # how far the model's score went past its threshold adds up to 10 points; a rule's decision adds none
    assert priority("negative_mood", None, None, None, 1.0, 0.9) == priority("negative_mood", None, None, None) + 10
    assert priority("negative_mood", None, None, None, 0.95, 0.9) == priority("negative_mood", None, None, None) + 5
    assert priority("explicit_request", None, None, None, 1.0, 0.0) == base
    assert priority("explicit_request", None, -0.9, None) > priority("explicit_request", None, -0.2, None) > base
    assert priority("explicit_request", None, 0.8, None) == base  # a good mood takes nothing away
    assert priority("explicit_request", None, None, 5000) > priority("explicit_request", None, None, 50) > base
    assert priority("explicit_request", None, float("nan"), float("inf")) == base
    most = priority("very_negative_message", "vip", -1.0, 1e9)
    assert most == 40 + 30 + 25 + 15
    # a fresh VIP request beats a plain one, until the plain one has waited long enough
    per_point = 2.0
    vip = priority("explicit_request", "vip", None, 1000)
    plain = priority("explicit_request", None, None, None)
    assert sort_key(vip, OPEN, OPEN, per_point) > sort_key(plain, OPEN - timedelta(minutes=30), OPEN, per_point)
    assert sort_key(vip, OPEN, OPEN, per_point) < sort_key(plain, OPEN - timedelta(minutes=120), OPEN, per_point)


# --------------------------------------------------------------------------- support hours


def test_support_hours_from_the_policy_file_agree_with_its_text() -> None:
    hours = support_hours()
    assert hours.describe() in get_policy().fact("shop.support.hours")
    ny = {  # UTC -> open? (New York is UTC-4 from 2025-03-09, UTC-5 before)
        datetime(2025, 3, 12, 11, 59): False,  # Wed 7:59
        datetime(2025, 3, 12, 12, 0): True,  # Wed 8:00
        datetime(2025, 3, 12, 23, 59): True,  # Wed 19:59
        datetime(2025, 3, 13, 0, 0): False,  # Wed 20:00
        datetime(2025, 3, 15, 13, 0): True,  # Sat 9:00
        datetime(2025, 3, 15, 18, 0): False,  # Sat 14:00
        datetime(2025, 3, 16, 15, 0): False,  # Sunday
        datetime(2025, 3, 7, 12, 30): False,  # Fri 7:30 before the clocks changed (UTC-5)
        datetime(2025, 3, 7, 13, 0): True,  # Fri 8:00 (UTC-5)
    }
    assert {moment: hours.is_open(moment) for moment in ny} == ny
    assert hours.next_opening(SUNDAY) == datetime(2025, 3, 17, 12, 0)  # Monday 8:00 New York
    assert hours.next_opening_text(SUNDAY) == "tomorrow at 8:00 (Eastern Time)"
    assert hours.next_opening_text(datetime(2025, 3, 15, 19, 0)) == "on Monday at 8:00 (Eastern Time)"
    assert hours.next_opening_text(datetime(2025, 3, 12, 10, 0)) == "today at 8:00 (Eastern Time)"
    assert hours.next_opening_text(OPEN) == "now"


def test_support_hours_edge_cases_and_clear_errors() -> None:
    def make(schedule: dict[str, Any], **support: Any) -> SupportHours:
        return SupportHours.from_policy({"shop": {"timezone": "Europe/Berlin",
                                                  "support": {"schedule": schedule, **support}}})

    night = make({"friday": "22:00-02:00", "saturday": "closed"}, closed_dates=["2025-03-21"])
    assert night.is_open(datetime(2025, 3, 14, 21, 30))  # Fri 22:30 Berlin (UTC+1)
    assert night.is_open(datetime(2025, 3, 15, 0, 30))  # Sat 1:30, still Friday's shift
    assert not night.is_open(datetime(2025, 3, 15, 1, 0))  # Sat 2:00
    assert not night.is_open(datetime(2025, 3, 21, 21, 30))  # a closed date
    assert night.next_opening(datetime(2025, 3, 15, 12, 0)) == datetime(2025, 3, 28, 21, 0)  # skips the 21st
    assert night.next_opening_text(datetime(2025, 3, 15, 12, 0)) == "on March 28 at 22:00 (Europe/Berlin)"
    split = make({d: "09:00-12:00, 13:00-24:00" for d in ("monday", "tuesday")})
    assert split.describe() == "Monday and Tuesday 9:00 to 12:00 and 13:00 to 0:00"
    assert not split.is_open(datetime(2025, 3, 10, 11, 30)) and split.is_open(datetime(2025, 3, 10, 22, 59))
    never = make({})
    assert never.next_opening(OPEN) is None and never.next_opening_text(OPEN) == "as soon as possible"
    for schedule, support, message in (
        ({"monday": "8-20"}, {}, "not a range"),
        ({"monday": "08:00-25:00"}, {}, "not a time of day"),
        ({"funday": "08:00-20:00"}, {}, "unknown days"),
        ({"monday": 8}, {}, "expected"),
        ({}, {"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({}, {"closed_dates": ["someday"]}, "not a date"),
    ):
        with pytest.raises(HoursError, match=message):
            make(schedule, **support)
    with pytest.raises(HoursError, match="schedule: missing"):
        SupportHours.from_policy({"shop": {"support": {}}})


def test_always_open_overrides_the_schedule(hours_as_scheduled: None) -> None:
    from bot.handoff import hours

    assert not hours.is_open(SUNDAY) and hours.next_opening(SUNDAY) == datetime(2025, 3, 17, 12, 0)
    assert hours.hours_text() == get_policy().fact("shop.support.hours")
    os.environ["SHOP_HANDOFF_ALWAYS_OPEN"] = "true"
    get_settings.cache_clear()
    assert hours.is_open(SUNDAY) and hours.next_opening(SUNDAY) == SUNDAY
    assert hours.hours_text() == "around the clock"


# --------------------------------------------------------------------------- PostgreSQL


def test_migrates_on_postgresql_and_claims_once(postgres: Any) -> None:
    url = postgres.create_database("handoff_test")
    migrate(url)
    engine = make_engine(url)
    pg = sessionmaker(bind=engine, expire_on_commit=False)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() >= "0005"
            index = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = "
                                      "'uq_tickets_open_conversation'")).scalar()
        assert "UNIQUE" in index and "resolved" in index
        opened = _race(6, _opener(pg, "pg-conv", "i"))
        assert not [r for r in opened if isinstance(r, Exception)], opened
        assert sum(created for _, created in opened) == 1 and len({t for t, _ in opened}) == 1
        ticket_id = opened[0][0]

        def claim(agent: int) -> int:
            with pg.begin() as session:
                return tickets.claim(session, ticket_id, agent_id=agent + 1).assignee_id

        claims = _race(6, claim)
        assert len([c for c in claims if isinstance(c, int)]) == 1
        assert len([c for c in claims if isinstance(c, tickets.AlreadyClaimed)]) == 5
        with pg.begin() as session:
            tickets.touch_presence(session, 1, "ana", now=OPEN)
            tickets.touch_presence(session, 1, "ana", now=OPEN)
            assert tickets.agents_online(session, now=OPEN) == 1
            tickets.add_message(session, ticket_id, "shopper", "hello?", sentiment=0.0)
            assert [v.id for v in tickets.queue(session)] == [ticket_id]
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- the action, on real trackers


@pytest.fixture
def handoff_db(hours_as_scheduled: None) -> Iterator[None]:
    """The shared test database with no open tickets and nobody online, before and after."""
    def clean() -> None:
        with session_scope() as session:
            session.execute(update(Ticket).where(Ticket.status != RESOLVED).values(status=RESOLVED))
            session.execute(AgentPresence.__table__.delete())

    clean()
    yield
    clean()


def _agent_online(now: datetime) -> None:
    with session_scope() as session:
        tickets.touch_presence(session, 4242, "ana", now=now)


class Chat:
    """A conversation as Rasa would send it to the action server: events with NLU parses and sentiment."""

    def __init__(self, customer_id: int | None = None, segment: str | None = None) -> None:
        self.sender = f"handoff-{uuid.uuid4().hex[:12]}"
        self.metadata: dict[str, Any] = {}
        if customer_id:
            self.metadata["customer_id"] = customer_id
        if segment:
            self.metadata["segment"] = segment
        self.events: list[dict[str, Any]] = [{"event": "action", "name": "action_session_start", "timestamp": 1.0},
                                             {"event": "session_started", "timestamp": 1.0}]
        self.slots: dict[str, Any] = {}
        self.clock = 1_741_790_000.0

    def _tick(self) -> float:
        self.clock += 7
        return self.clock

    def user(self, text: str, intent: str, confidence: float = 0.95, sentiment: float | None = None,
             entities: list[dict[str, Any]] | None = None) -> Chat:
        parse: dict[str, Any] = {"text": text, "intent": {"name": intent, "confidence": confidence},
                                 "entities": entities or []}
        if sentiment is not None:
            parse["sentiment"] = {"compound": sentiment, "lexicon": []}
        self.events.append({"event": "user", "text": text, "parse_data": parse, "metadata": dict(self.metadata),
                            "timestamp": self._tick()})
        return self

    def bot(self, text: str = "", **data: Any) -> Chat:
        self.events.append({"event": "action", "name": "action_x", "timestamp": self._tick()})
        self.events.append({"event": "bot", "text": text or None, "data": data, "metadata": {},
                            "timestamp": self._tick()})
        return self

    def agent(self, text: str, username: str) -> Chat:
        self.events.append({"event": "bot", "text": text, "data": {}, "metadata": {"agent": username},
                            "timestamp": self._tick()})
        return self

    def slot(self, **values: Any) -> Chat:
        for name, value in values.items():
            self.events.append({"event": "slot", "name": name, "value": value, "timestamp": self._tick()})
            self.slots[name] = value
        return self

    def tracker(self, active_loop: str | None = None) -> Tracker:
        latest = next(e for e in reversed(self.events) if e["event"] == "user")
        latest_message = {**latest["parse_data"], "metadata": latest["metadata"]}
        return Tracker(self.sender, dict(self.slots), latest_message, list(self.events), False, None,
                       {"name": active_loop} if active_loop else {}, "action_listen")

    def run(self, action: Any, active_loop: str | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        dispatcher = CollectingDispatcher()
        result = action.run(dispatcher, self.tracker(active_loop), DOMAIN)
        events = asyncio.run(result) if asyncio.iscoroutine(result) else result
        for event in events:
            if event.get("event") == "slot":
                self.slots[event["name"]] = event["value"]
        return events, dispatcher.messages


def _ticket(conversation_id: str) -> Ticket:
    with session_scope() as session:
        found = tickets.open_ticket_for(session, conversation_id)
        assert found is not None
        return found


def _customer_with_orders_and_cart() -> tuple[int, list[str], int]:
    tag = uuid.uuid4().hex[:8]
    now = datetime(2025, 3, 1, 12, 0)
    with session_scope() as session:
        customer = Customer(email=f"pat.{tag}@example.com", name=f"Pat {tag}", postcode="62704",
                            phone="+1 555 010 9999")
        session.add(customer)
        session.flush()
        products = list(session.scalars(select(Product).where(Product.price > 0, Product.stock > 5)
                                        .order_by(Product.id).limit(30)))
        rng = random.Random(tag)
        numbers = []
        for i, status in enumerate((DELIVERED, SHIPPED, PAID)):
            number = f"NW-{rng.randrange(700000, 799999)}"
            add_order(session, rng, number=number, customer=customer, email=customer.email, name=customer.name,
                      place=("Springfield", "IL", "62704", "US"), lines=[(p, 1, "") for p in rng.sample(products, 2)],
                      status=status, placed_at=now - timedelta(days=20 - i * 5), now=now, policy=get_policy(),
                      method="Standard", delivered_at=now - timedelta(days=12) if status == DELIVERED else None)
            numbers.append(number)
        plain = next(p for p in products if not p.sizes and not (p.attributes or {}).get("colors"))
        cart.add_item(session, cart.customer_cart_key(customer.id), plain.id, 2)
        return customer.id, numbers, plain.id


def test_escalation_opens_a_ticket_with_the_whole_context_and_pauses(handoff_db: None) -> None:
    customer_id, numbers, product_id = _customer_with_orders_and_cart()
    chat = Chat(customer_id=customer_id)
    chat.user("hi", "greet", sentiment=0.0).bot("Welcome back!", buttons=[{"title": "Track my order",
                                                                            "payload": "/track_order"}])
    chat.user("waterproof jacket under 80", "search_product", 0.91, sentiment=0.0)
    chat.bot("Here are some jackets:", custom={"type": "product_cards", "products": [{"title": "Storm Shell"}]})
    chat.slot(search_query="waterproof jacket", search_filters={"max_price": 80.0}, shown_products=[1, 2],
              order_contact="secret@example.com", requested_slot=None)
    chat.user("/track_order", "track_order", 1.0).bot("Which order?")
    chat.agent("(earlier) Hi, Ana here", "ana")
    chat.user("my order STILL hasn't arrived, this is useless", "track_order", 0.88, sentiment=-0.72)
    chat.user("let me talk to a human", "contact_human_agent", 0.97, sentiment=0.0)
    _agent_online(OPEN)

    events, messages = chat.run(ActionEscalate(clock=lambda: OPEN))

    assert [e["event"] for e in events[-2:]] == ["pause", "action"] and events[-1]["name"] == "action_listen"
    assert {"event": "active_loop", "name": None, "timestamp": None} in events
    assert {"event": "slot", "name": "requested_slot", "value": None, "timestamp": None} in events
    text = messages[0]["text"]
    assert text.startswith("I'm bringing in a person from our team. You're next in line, so it should take about ")
    assert "won't have to repeat anything" in text
    ticket = _ticket(chat.sender)
    with session_scope() as session:  # from recent claims when other tests left some, else the default
        expected_wait = tickets.wait_estimate(session, session.get(Ticket, ticket.id), OPEN).minutes
    assert messages[1]["custom"] == {"type": "handoff", "state": "queued", "ticket_id": ticket.id, "position": 1,
                                     "wait_minutes": expected_wait}
    assert (ticket.reason, ticket.customer_id, ticket.status) == ("explicit_request", customer_id, QUEUED)
    packet = ticket.context
    # the transcript: every message, with intent, confidence and sentiment on the shopper's
    roles = [(m["role"], m["text"].split("\n")[0]) for m in packet["transcript"]]
    assert roles == [("shopper", "hi"), ("bot", "Welcome back!"), ("shopper", "waterproof jacket under 80"),
                     ("bot", "Here are some jackets:"), ("shopper", "Track my order"), ("bot", "Which order?"),
                     ("agent", "(earlier) Hi, Ana here"),
                     ("shopper", "my order STILL hasn't arrived, this is useless"),
                     ("shopper", "let me talk to a human")]
    angry = packet["transcript"][7]
    assert (angry["intent"], angry["confidence"], angry["sentiment"]) == ("track_order", 0.88, -0.72)
    assert angry["at"].endswith("Z")
    assert packet["transcript"][1]["text"].endswith("[buttons: Track my order]")
    assert "[product cards: Storm Shell]" in packet["transcript"][3]["text"]
    assert packet["transcript"][4]["sentiment"] is None  # a button payload has no mood
    assert packet["transcript"][4]["clicked"] is True and packet["transcript"][4]["intent"] == "track_order"
    assert "clicked" not in packet["transcript"][0]
    assert packet["transcript"][6]["author"] == "ana"
    # reason, mood trajectory (one value per shopper message), profile, orders, cart, search, slots
    assert packet["reason"] == "explicit_request" and packet["decision"]["reason"] == "explicit_request"
    assert len(packet["mood_trajectory"]) == 5 and packet["mood_trajectory"][3] < 0
    assert packet["mood"] == packet["mood_trajectory"][-1]
    with session_scope() as session:
        profile = crm.profile(session, customer_id)
    assert packet["customer"]["segment"] == profile.segment
    assert packet["customer"]["lifetime_value"] == pytest.approx(profile.lifetime_value)
    assert packet["customer"]["email"] == profile.email and profile.lifetime_value > 0
    assert [o["number"] for o in packet["orders"]] == list(reversed(numbers))  # newest first
    assert packet["orders"][0]["items"] and packet["orders"][0]["status"] == PAID
    assert packet["cart"]["item_count"] == 2 and packet["cart"]["items"][0]["product_id"] == product_id
    assert packet["last_search"] == {"query": "waterproof jacket", "filters": {"max_price": 80.0}}
    assert packet["slots"] == {"search_filters": {"max_price": 80.0}, "search_query": "waterproof jacket",
                               "shown_products": [1, 2]}  # no transient proof, no form machinery
    assert "secret@example.com" not in json.dumps(packet)
    assert ticket.priority == priority("explicit_request", profile.segment, packet["mood"], profile.lifetime_value)
    assert packet["summary"].startswith(f"{profile.segment_label} customer {profile.name}: explicit request")


def test_escalation_without_agents_offers_email_and_keeps_the_bot_going(handoff_db: None) -> None:
    chat = Chat()
    chat.user("where is my order", "track_order", sentiment=0.0).bot("Which order?")
    chat.user("human please", "contact_human_agent", sentiment=0.0)
    events, messages = chat.run(ActionEscalate(clock=lambda: SUNDAY))  # closed, nobody online
    assert not [e for e in events if e["event"] == "pause"]
    assert {"event": "followup", "name": "action_listen", "timestamp": None} in events
    ticket = _ticket(chat.sender)
    text = messages[0]["text"]
    assert text.startswith("Our team is offline right now. They're here Monday to Friday 8:00 to 20:00, Saturday "
                           "9:00 to 14:00 (Eastern Time), next tomorrow at 8:00 (Eastern Time).")
    assert f"request #{ticket.id}" in text and "Shall we email you" in text
    assert [b["payload"] for b in messages[0]["buttons"]] == ["/request_followup", "/deny"]
    assert messages[1]["custom"] == {"type": "handoff", "state": "offline", "ticket_id": ticket.id,
                                     "hours": get_policy().fact("shop.support.hours"),
                                     "next_opening": "2025-03-17T12:00:00Z"}
    assert ticket.status == QUEUED  # it waits for Monday

    # within hours but nobody online: busy, same ticket
    chat.user("is anyone there? third time I ask", "contact_human_agent", sentiment=-0.5)
    events, messages = chat.run(ActionEscalate(clock=lambda: OPEN))
    assert messages[0]["text"].startswith("Everyone on our team is busy right now")
    assert _ticket(chat.sender).id == ticket.id

    # the email follow-up form: asks only while a ticket is open, finds the address, stores it on the ticket
    form = ValidateFollowupForm()
    required = asyncio.run(form.required_slots(["followup_email"], CollectingDispatcher(), chat.tracker(), DOMAIN))
    assert required == ["followup_email"]
    chat.user("/request_followup", "request_followup", 1.0)
    chat.slot(requested_slot="followup_email")
    chat.user("my mail is jane@", "inform", sentiment=0.0)
    _, said = chat.run(form, active_loop="followup_form")
    assert [m["text"] for m in said] == [BAD_EMAIL_TEXT] and chat.slots["followup_email"] is None
    chat.user("no thanks", "deny", sentiment=0.0)
    events, _ = chat.run(form, active_loop="followup_form")
    assert not [e for e in events if e.get("name") == "followup_email"]  # nothing taken: the stop rule runs
    chat.user("ok it's Jane.Roe@Example.com", "inform", sentiment=0.0)
    chat.run(form, active_loop="followup_form")
    assert chat.slots["followup_email"] == "Jane.Roe@example.com"
    events, said = chat.run(ActionSaveFollowup(clock=lambda: SUNDAY))
    assert said[0]["text"] == (f"Thanks! We'll write to Jane.Roe@example.com about request #{ticket.id} when our "
                               "team is back, tomorrow at 8:00 (Eastern Time). Anything else I can help with "
                               "meanwhile?")
    assert chat.slots["followup_email"] is None  # kept on the ticket only
    assert _ticket(chat.sender).followup_email == "Jane.Roe@example.com"
    # asked again later: no second offer, the address is remembered
    chat.user("get me a person", "contact_human_agent", sentiment=0.0)
    _, messages = chat.run(ActionEscalate(clock=lambda: SUNDAY))
    assert "We'll email you at Jane.Roe@example.com" in messages[0]["text"] and not messages[0]["buttons"]
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Ticket)
                              .where(Ticket.conversation_id == chat.sender)) == 1


def test_an_agent_online_outside_the_hours_wins_over_the_schedule(handoff_db: None) -> None:
    """Issue 16, item 5: on Sunday (closed) with an agent's inbox open, the shopper is not told that nobody is
    there: the agent can claim the ticket now, so the bot pauses and says a person is coming."""
    _agent_online(SUNDAY)
    chat = Chat()
    chat.user("i need a human", "contact_human_agent", sentiment=0.0)
    events, messages = chat.run(ActionEscalate(clock=lambda: SUNDAY))
    text = messages[0]["text"]
    assert text.startswith("I'm bringing in a person from our team. You're next in line"), text
    assert "offline" not in text and not messages[0].get("buttons")  # no "Email me" while someone can answer
    assert messages[1]["custom"]["state"] == "queued"
    assert [e["event"] for e in events[-2:]] == ["pause", "action"]
    # once their inbox has been quiet past the presence timeout, the schedule speaks again
    later = SUNDAY + timedelta(seconds=get_settings().handoff_presence_timeout_s + 60)
    other = Chat()
    other.user("human please", "contact_human_agent", sentiment=0.0)
    _, messages = other.run(ActionEscalate(clock=lambda: later))
    assert messages[0]["text"].startswith("Our team is offline right now.")


def test_the_transcript_shows_the_words_of_the_buttons_the_shopper_pressed() -> None:
    """Issue 16, item 5: no raw ``/add_to_cart{...}`` for the agent: quick replies by their title, card buttons
    with their product, cart buttons as the widget shows them; a payload nothing offered, in words."""
    add = '/add_to_cart{"product_id": "17"}'
    remove = '/remove_from_cart{"product_id": "17"}'
    chat = Chat()
    chat.user("rain jacket", "search_product", sentiment=0.0)
    chat.bot("Here you go:", custom={"type": "product_cards", "products": [
        {"title": "Storm Shell", "buttons": [{"title": "Details", "payload": '/product_details{"product_id": "17"}'},
                                              {"title": "Add to cart", "payload": add}]}]})
    chat.user(add, "add_to_cart", 1.0)
    chat.bot("Added.", custom={"type": "cart", "lines": [
        {"title": "Storm Shell", "buttons": [{"title": "Remove", "payload": remove, "text": "Remove Storm Shell"}]}]})
    chat.user(remove, "remove_from_cart", 1.0)
    chat.bot("Shall we email you?", buttons=[{"title": "Email me", "payload": "/request_followup"},
                                              {"title": "Keep chatting with the bot", "payload": "/deny"}])
    chat.user("/request_followup", "request_followup", 1.0)
    chat.user('/inform{"order_number": "NW-100234"}', "inform", 1.0)  # offered by nothing in this conversation
    chat.user("thanks", "thank", sentiment=0.4)
    said = [(m["text"], m.get("clicked", False)) for m in transcript(chat.events) if m["role"] == "shopper"]
    assert said == [("rain jacket", False), ("Add to cart: Storm Shell", True), ("Remove Storm Shell", True),
                    ("Email me", True), ("[button: inform (order_number NW-100234)]", True), ("thanks", False)]
    packet = build_packet(transcript(chat.events), "explicit_request", None, None, [], None, None, {})
    assert [m["text"] for m in packet["transcript"] if m.get("clicked")] == [t for t, c in said if c]
    assert "{" not in json.dumps([m["text"] for m in packet["transcript"]])


def test_no_double_ticket_then_a_new_one_after_the_agent_resolves(handoff_db: None) -> None:
    _agent_online(OPEN)
    chat = Chat()
    chat.user("agent", "contact_human_agent", sentiment=0.0)
    chat.run(ActionEscalate(clock=lambda: OPEN))
    first = _ticket(chat.sender)
    chat.user("hello? anyone? this is ridiculous", "contact_human_agent", sentiment=-0.6)
    _, messages = chat.run(ActionEscalate(clock=lambda: OPEN))
    assert messages[0]["text"].startswith("You're already in the queue for a person (next in line, about ")
    again = _ticket(chat.sender)
    assert again.id == first.id
    assert again.context["transcript"][-1]["text"] == "hello? anyone? this is ridiculous"  # a fresher packet
    assert again.priority >= first.priority
    with session_scope() as session:
        tickets.claim(session, first.id, 4242)
        tickets.resolve(session, first.id, 4242)
    chat.events.append({"event": "resume", "timestamp": chat._tick()})
    chat.user("one more thing, human please", "contact_human_agent", sentiment=0.0)
    chat.run(ActionEscalate(clock=lambda: OPEN))
    assert _ticket(chat.sender).id != first.id
    # the packet's mood and turns start over after the hand-back; the transcript keeps everything
    latest = _ticket(chat.sender).context
    assert len(latest["mood_trajectory"]) == 1 and len(latest["transcript"]) == 3


def test_policy_reasons_reach_the_ticket_and_a_form_is_left(handoff_db: None) -> None:
    _agent_online(OPEN)
    angry = Chat()
    angry.user("i want to return something", "get_refund", sentiment=0.0)
    angry.slot(requested_slot="order_number")
    angry.user("my order never arrived and nobody answers, unacceptable!!", "inform", 0.8, sentiment=-0.86)
    events, _ = angry.run(ActionEscalate(clock=lambda: OPEN), active_loop="return_form")
    assert {"event": "active_loop", "name": None, "timestamp": None} in events  # the form is left
    ticket = _ticket(angry.sender)
    assert ticket.reason == "service_complaint" and "-0.86" in ticket.reason_detail
    assert ticket.context["decision"]["signals"] == ["furious", "anger"]

    lost = Chat()
    for words in ("where is my parcel", "where's my parcel??", "parcel?"):
        lost.bot("Sorry, I didn't quite get that. Could you rephrase it?").user(words, "nlu_fallback", 0.3,
                                                                                sentiment=0.0)
    lost.run(ActionEscalate(clock=lambda: OPEN))
    lost_ticket = _ticket(lost.sender)
    assert lost_ticket.reason == "bot_not_understanding", lost_ticket.reason_detail
    assert "bot_repeats" in lost_ticket.context["decision"]["signals"]
    assert lost_ticket.context["decision"]["score"] >= lost_ticket.context["decision"]["threshold"] > 0

    vip = Chat(segment="vip")
    vip.user("my refund still hasn't come through", "inform", 0.9, sentiment=-0.62)
    vip.run(ActionEscalate(clock=lambda: OPEN))
    vip_ticket = _ticket(vip.sender)
    assert vip_ticket.reason_detail.endswith("(vip customer: 10% bar, sooner)"), vip_ticket.reason_detail
    assert vip_ticket.priority > _ticket(lost.sender).priority


def test_escalation_queues_helpdesk_deliveries_with_the_ticket(handoff_db: None,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_HELPDESK_WEBHOOKS", json.dumps([
        {"name": "desk", "kind": "generic", "url": "http://127.0.0.1:9/desk"},
        {"name": "chat", "kind": "slack", "url": "http://127.0.0.1:9/slack", "redact": True}]))
    get_settings.cache_clear()
    try:
        chat = Chat()
        chat.user("human please, call me on +1 555 123 4567", "contact_human_agent", sentiment=0.0)
        chat.run(ActionEscalate(clock=lambda: SUNDAY))
        chat.user("human please", "contact_human_agent", sentiment=0.0)
        chat.run(ActionEscalate(clock=lambda: SUNDAY))  # same ticket: nothing queued twice
        ticket = _ticket(chat.sender)
        with session_scope() as session:
            rows = session.scalars(select(HelpdeskOutbox).where(HelpdeskOutbox.ticket_id == ticket.id)
                                   .order_by(HelpdeskOutbox.target)).all()
            assert [(r.target, r.kind, r.status, r.attempts) for r in rows] == [
                ("chat", "slack", "pending", 0), ("desk", "generic", "pending", 0)]
            assert rows[1].payload["ticket"]["id"] == ticket.id
            assert "+1 555 123 4567" in json.dumps(rows[1].payload)
            assert "+1 555 123 4567" not in json.dumps(rows[0].payload)  # redacted for that webhook
            session.execute(HelpdeskOutbox.__table__.delete().where(HelpdeskOutbox.ticket_id == ticket.id))
    finally:
        monkeypatch.delenv("SHOP_HELPDESK_WEBHOOKS")
        get_settings.cache_clear()


def test_signed_in_shopper_is_offered_their_address_and_no_ticket_means_no_form(handoff_db: None) -> None:
    customer_id, _, _ = _customer_with_orders_and_cart()
    chat = Chat(customer_id=customer_id)
    chat.user("email me", "request_followup", sentiment=0.0)
    required = asyncio.run(ValidateFollowupForm().required_slots(["followup_email"], CollectingDispatcher(),
                                                                 chat.tracker(), DOMAIN))
    assert required == []  # nothing to follow up on
    _, said = chat.run(ActionSaveFollowup())
    assert said[0]["text"].startswith("There's no open request with our team right now")
    _, asked = chat.run(ActionAskFollowupEmail())
    with session_scope() as session:
        email = session.get(Customer, customer_id).email
    assert asked[0]["buttons"] == [{"title": f"Use {email}", "payload": f'/inform{{"email": "{email}"}}'}]
    with session_scope() as session:  # no ticket was opened by any of this
        assert tickets.open_ticket_for(session, chat.sender) is None
        assert session.scalar(select(func.count()).select_from(TicketMessage)
                              .join(Ticket).where(Ticket.conversation_id == chat.sender)) == 0
