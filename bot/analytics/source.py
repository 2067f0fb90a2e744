"""Where the figures come from: Rasa's stored events (its tracker store) and the ticket rows in our database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.analytics import metrics
from bot.analytics.metrics import Period, TicketRow
from bot.db import session_scope
from bot.handoff.tables import Ticket
from bot.rasa_events import RasaEvent, read_events

EVENT_TYPES = ("user", "bot", "action")
CHUNK = 500


def relevant_events(tracker_url: str, period: Period) -> Iterator[RasaEvent]:
    """The events of the period that some figure counts: shopper messages, handoffs and cart adds
    (the other bot and action events are dropped as they are read, to keep memory small)."""
    for event in read_events(tracker_url, since=period.start_ts, until=period.end_ts, types=EVENT_TYPES):
        if event.type_name == "user" or metrics.is_handoff(event) or metrics.cart_added(event) is not None:
            yield event


def _row(ticket: Ticket) -> TicketRow:
    return TicketRow(conversation_id=ticket.conversation_id, reason=ticket.reason, created_at=ticket.created_at,
                     rating=ticket.rating, rated_at=ticket.rated_at)


def ticket_rows(session: Session, period: Period, conversation_ids: set[str]) -> list[TicketRow]:
    """Tickets of the given conversations (for the handoff reasons) and tickets rated in the period."""
    found: dict[int, TicketRow] = {}
    rated = select(Ticket).where(Ticket.rated_at >= period.start, Ticket.rated_at < period.end)
    for ticket in session.scalars(rated):
        found[ticket.id] = _row(ticket)
    ids = sorted(conversation_ids)
    for i in range(0, len(ids), CHUNK):
        chunk = select(Ticket).where(Ticket.conversation_id.in_(ids[i:i + CHUNK]))
        for ticket in session.scalars(chunk):
            found[ticket.id] = _row(ticket)
    return list(found.values())


def report(tracker_url: str, database_url: str, period: Period) -> dict[str, Any]:
    """Every figure of the period (``metrics.compute_all``), read from the stores."""
    events = list(relevant_events(tracker_url, period))
    handed_off = {e.sender_id for e in events if metrics.is_handoff(e)}
    with session_scope(database_url) as session:
        tickets = ticket_rows(session, period, handed_off)
    return metrics.compute_all(events, tickets, period.since, period.until)


def conversations(tracker_url: str, database_url: str, period: Period, limit: int) -> dict[str, Any]:
    """The ``limit`` latest conversations of the period (``metrics.conversation_rows``), read from the stores."""
    events = list(relevant_events(tracker_url, period))
    newest = metrics.conversation_rows(events, [], period, limit)
    ids = [row["conversation_id"] for row in newest["conversations"]]
    if not ids:
        return newest
    with session_scope(database_url) as session:
        tickets = [_row(t) for t in session.scalars(select(Ticket).where(Ticket.conversation_id.in_(ids)))]
    return metrics.conversation_rows(events, tickets, period, limit)
