"""Everything held about one customer, as JSON (``python -m bot privacy export EMAIL``).

A customer is found by email: their ``customers`` row (if they have an account), the orders placed with that
email, and the tickets that name it as follow-up address. Their conversations are the ones whose shopper
messages carry their ``customer_id`` in the metadata the gateway vouches for, the ones in which they typed
their email address, the conversations of their tickets and those that proved one of their orders
(``order_access_grants``). The export holds the rows of every table about them and those conversations'
events as Rasa's tracker store keeps them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bot.clock import utcnow
from bot.handoff.tables import Ticket
from bot.rasa_events import EVENTS, has_events, read_events, tracker_engine
from bot.shop.cart import CartItem, customer_cart_key
from bot.shop.tables import CrmProfile, Customer, Order, OrderAccessGrant, Preference
from bot.training.tables import NluMessage

FORMAT_VERSION = 1


class UnknownSubject(LookupError):
    """No customer, order or ticket is known for an email address."""

    def __init__(self, email: str) -> None:
        super().__init__(f"nothing is held about {email!r}: no customer, order or ticket has that email address")
        self.email = email


@dataclass
class Subject:
    """One person's footprint: their account (if any), orders, tickets and conversations."""

    email: str
    customer: Customer | None
    orders: list[Order]
    tickets: list[Ticket]
    conversations: list[str] = field(default_factory=list)

    @property
    def customer_id(self) -> int | None:
        return self.customer.id if self.customer else None

    @property
    def cart_keys(self) -> list[str]:
        keys = list(self.conversations)
        if self.customer is not None:
            keys.insert(0, customer_cart_key(self.customer.id))
        return keys


def normalise_email(email: str) -> str:
    value = (email or "").strip().lower()
    if "@" not in value or len(value) > 254 or any(c.isspace() for c in value):
        raise ValueError(f"not an email address: {email!r}")
    return value


def _metadata_customer(data: str | None) -> int | None:
    try:
        event = json.loads(data or "{}")
    except ValueError:
        return None
    metadata = event.get("metadata") if isinstance(event, dict) else None
    value = metadata.get("customer_id") if isinstance(metadata, dict) else None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _typed_email(data: str | None, email: str) -> bool:
    try:
        event = json.loads(data or "{}")
    except ValueError:
        return False
    return isinstance(event, dict) and email in str(event.get("text") or "").lower()


def tracker_conversations(tracker_url: str, customer_id: int | None, email: str) -> set[str]:
    """Conversations in Rasa's tracker store where the customer was signed in or typed their email."""
    if not has_events(tracker_url):
        return set()
    found: set[str] = set()
    conditions = [func.lower(EVENTS.c.data).contains(email, autoescape=True)]
    if customer_id is not None:
        conditions.append(EVENTS.c.data.contains("customer_id", autoescape=True))
    query = select(EVENTS.c.sender_id, EVENTS.c.data).where(EVENTS.c.type_name == "user", or_(*conditions))
    with tracker_engine(tracker_url).connect() as conn:
        for sender_id, data in conn.execute(query):
            if sender_id in found:
                continue
            if (customer_id is not None and _metadata_customer(data) == customer_id) or _typed_email(data, email):
                found.add(sender_id)
    return found


def find_subject(session: Session, email: str, tracker_url: str) -> Subject:
    """Everything that points to ``email``; raises :class:`UnknownSubject` when nothing does."""
    email = normalise_email(email)
    customer = session.scalar(select(Customer).where(func.lower(Customer.email) == email))
    order_filter = func.lower(Order.email) == email
    if customer is not None:
        order_filter = or_(order_filter, Order.customer_id == customer.id)
    orders = list(session.scalars(select(Order).where(order_filter).order_by(Order.placed_at, Order.id)))
    conversations = tracker_conversations(tracker_url, customer.id if customer else None, email)
    if orders:
        conversations |= set(session.scalars(select(OrderAccessGrant.conversation_id).where(
            OrderAccessGrant.order_id.in_([o.id for o in orders]))))
    ticket_filter = func.lower(Ticket.followup_email) == email
    if customer is not None:
        ticket_filter = or_(ticket_filter, Ticket.customer_id == customer.id)
    if conversations:
        ticket_filter = or_(ticket_filter, Ticket.conversation_id.in_(sorted(conversations)))
    tickets = list(session.scalars(select(Ticket).where(ticket_filter).order_by(Ticket.id)))
    conversations |= {t.conversation_id for t in tickets}
    if customer is None and not orders and not tickets:
        raise UnknownSubject(email)
    return Subject(email, customer, orders, tickets, sorted(conversations))


# --------------------------------------------------------------------------- rows as JSON


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def row_dict(row: Any, leave_out: Iterable[str] = ()) -> dict[str, Any]:
    """A mapped row's columns as plain JSON values."""
    skip = set(leave_out)
    return {c.key: _plain(getattr(row, c.key)) for c in row.__table__.columns if c.key not in skip}


def _order(order: Order) -> dict[str, Any]:
    out = row_dict(order)
    out["items"] = [row_dict(item) for item in order.items]
    out["shipment"] = row_dict(order.shipment) if order.shipment else None
    out["returns"] = [row_dict(r) for r in order.returns]
    out["refunds"] = [row_dict(r) for r in order.refunds]
    return out


def _carts(session: Session, keys: list[str]) -> list[dict[str, Any]]:
    if not keys:
        return []
    lines = session.scalars(select(CartItem).where(CartItem.cart_key.in_(keys)).order_by(CartItem.id)).all()
    carts: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        item = row_dict(line)
        item["title"] = line.product.title if line.product else None
        carts.setdefault(line.cart_key, []).append(item)
    return [{"cart_key": key, "items": items} for key, items in carts.items()]


def _conversations(tracker_url: str, conversations: list[str]) -> list[dict[str, Any]]:
    events: dict[str, list[dict[str, Any]]] = {c: [] for c in conversations}
    if conversations:
        for event in read_events(tracker_url, sender_ids=conversations):
            events[event.sender_id].append({
                "id": event.id, "type": event.type_name, "timestamp": event.timestamp,
                "at": (datetime.fromtimestamp(event.timestamp, UTC).replace(tzinfo=None).isoformat()
                       if event.timestamp else None),
                "intent": event.intent_name, "action": event.action_name, "data": event.data})
    return [{"conversation_id": c, "events": events[c]} for c in conversations]


def export_subject(session: Session, subject: Subject, tracker_url: str,
                   now: datetime | None = None) -> dict[str, Any]:
    """The export document of a subject found by :func:`find_subject`."""
    customer = subject.customer
    profile = session.get(CrmProfile, customer.id) if customer else None
    preferences = (session.scalars(select(Preference).where(Preference.customer_id == customer.id)
                                   .order_by(Preference.id)).all() if customer else [])
    nlu = (session.scalars(select(NluMessage).where(NluMessage.sender_id.in_(subject.conversations))
                           .order_by(NluMessage.id)).all() if subject.conversations else [])
    return {
        "format": "shop-assistant-privacy-export", "version": FORMAT_VERSION,
        "exported_at": (now or utcnow()).isoformat(), "email": subject.email,
        "customer": row_dict(customer) if customer else None,
        "crm_profile": row_dict(profile) if profile else None,
        "preferences": [row_dict(p) for p in preferences],
        "orders": [_order(o) for o in subject.orders],
        "carts": _carts(session, subject.cart_keys),
        "tickets": [row_dict(t) | {"messages": [row_dict(m) for m in t.messages]} for t in subject.tickets],
        "conversations": _conversations(tracker_url, subject.conversations),
        "nlu_review": [row_dict(m, leave_out=("labelled_by",)) for m in nlu],
    }


def export_customer(session: Session, email: str, tracker_url: str, now: datetime | None = None) -> dict[str, Any]:
    """Everything held about ``email`` (see the module's docstring); raises :class:`UnknownSubject`."""
    return export_subject(session, find_subject(session, email, tracker_url), tracker_url, now)
