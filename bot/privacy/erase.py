"""Erasure of a customer's personal data (``python -m bot privacy erase EMAIL``).

Kept for accounting: orders with their items, shipments, returns and refunds, with the email replaced by
``erased-<customer id>@invalid`` (``erased-order-<order id>@invalid`` for a guest's order) and the shipping
name and address emptied (the country stays, for tax). Anonymised: the customer row (email, name, phone,
postcode; consent withdrawn), return comments, tickets (kept as counts for analytics: reason, status,
times, rating; their messages, context packet, follow-up email and helpdesk deliveries deleted).
Deleted: preferences, the CRM profile, carts, order-access grants and verification throttles of their
conversations, their conversations' ``nlu_messages`` (with the label history) and the conversations'
events in Rasa's tracker store.

The shop's changes and the tracker's deletion are two databases: the tracker rows go first, inside the
shop transaction, so a failure of either leaves the shop data in place and a second run finishes the job.
Every run is logged in ``privacy_log`` with a hash of the email; erasing an address that was already
erased answers with zero counts instead of an error.

A deleted or overwritten row is not gone from the disk: SQLite keeps its bytes in free pages and in the
write-ahead log (``-wal``) until they happen to be reused. After the transaction, :func:`reclaim_space`
empties the write-ahead log and rewrites the file (``PRAGMA wal_checkpoint(TRUNCATE)``, ``VACUUM``, and a
checkpoint again) for each SQLite database (the shop's and the tracker store). On PostgreSQL it only says
what the operator must do: the old row versions stay in the table files until VACUUM reuses their space,
and only ``VACUUM FULL`` (an exclusive lock on the table, so never run from here) rewrites the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.clock import utcnow
from bot.db import make_engine, rows_affected
from bot.handoff.tables import HelpdeskOutbox, TicketMessage
from bot.held_messages import queue as held
from bot.privacy.export import Subject, UnknownSubject, find_subject, normalise_email
from bot.privacy.redact import redact
from bot.privacy.tables import ERASE, PrivacyLog, email_hash, record
from bot.rasa_events import EVENTS, has_events, tracker_engine
from bot.shop.cart import CartItem
from bot.shop.tables import CrmProfile, OrderAccessGrant, Preference, Return, VerificationThrottle
from bot.training.tables import NluLabelEvent, NluMessage


@dataclass(frozen=True)
class Erased:
    counts: dict[str, int]
    already_erased: bool = False


@dataclass(frozen=True)
class Reclaimed:
    """What :func:`reclaim_space` did to one database: ``done`` when no deleted bytes are left in its files."""

    database: str  # "sqlite:///path" or the server's dialect and host (no password)
    done: bool
    note: str


POSTGRES_NOTE = ("PostgreSQL keeps deleted row versions in the table files (and in WAL archives and backups) "
                 "until VACUUM makes the space reusable; autovacuum does so eventually, run `VACUUM "
                 "(ANALYZE)` on the shop's and the tracker's databases to do it now. Only `VACUUM FULL` rewrites "
                 "the files; it locks each table, so schedule it in a maintenance window.")


def reclaim_space(url: str) -> Reclaimed:
    """After personal data was deleted from the database at ``url`` (committed): on SQLite, empty the
    write-ahead log and rewrite the file so that the deleted bytes are gone from the disk; on other
    databases, nothing is run and the note says what to do (see the module's docstring)."""
    parsed = make_url(url)
    name = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() != "sqlite":
        return Reclaimed(name, False, POSTGRES_NOTE if parsed.get_backend_name().startswith("postgres") else
                         f"{parsed.get_backend_name()}: run the database's own compaction (VACUUM or similar) "
                         "to remove the deleted rows from its files.")
    if parsed.database in (None, "", ":memory:"):
        return Reclaimed(name, True, "in memory: nothing on disk")
    engine = make_engine(url)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.exec_driver_sql("VACUUM")  # rebuilds the file without its free pages (written to the WAL)
            busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()[0]
    except SQLAlchemyError as exc:
        return Reclaimed(name, False, f"VACUUM failed ({exc.__class__.__name__}: {str(exc).splitlines()[0]}); "
                                      "the deleted bytes may still be in the file: run the erase again")
    finally:
        engine.dispose()
    if busy:
        return Reclaimed(name, False, "vacuumed, but another process kept reading the write-ahead log, which "
                                      "still holds deleted bytes: run the erase again when the database is quiet")
    return Reclaimed(name, True, "checkpointed and vacuumed")


def erased_email(customer_id: int) -> str:
    return f"erased-{customer_id}@invalid"


def delete_tracker_conversations(tracker_url: str, conversations: list[str]) -> int:
    """Every event of these conversations from Rasa's tracker store; returns how many rows."""
    if not conversations or not has_events(tracker_url):
        return 0
    deleted = 0
    with tracker_engine(tracker_url).begin() as conn:
        for start in range(0, len(conversations), 500):
            result = conn.execute(delete(EVENTS).where(EVENTS.c.sender_id.in_(conversations[start:start + 500])))
            deleted += rows_affected(result)
    return deleted


def delete_nlu_messages(session: Session, conversations: list[str]) -> int:
    if not conversations:
        return 0
    ids = list(session.scalars(select(NluMessage.id).where(NluMessage.sender_id.in_(conversations))))
    if not ids:
        return 0
    session.execute(delete(NluLabelEvent).where(NluLabelEvent.message_id.in_(ids)))
    session.execute(delete(NluMessage).where(NluMessage.id.in_(ids)))
    return len(ids)


def _anonymise(session: Session, subject: Subject, now: datetime) -> dict[str, int]:
    counts = {"customers": 0, "orders": 0, "returns": 0, "preferences": 0, "crm_profiles": 0, "cart_items": 0,
              "tickets": 0, "ticket_messages": 0, "helpdesk_outbox": 0, "order_access_grants": 0,
              "verification_throttle": 0, "nlu_messages": 0}
    customer = subject.customer
    if customer is not None:
        customer.email = erased_email(customer.id)
        customer.name = customer.phone = customer.postcode = ""
        if customer.consent_personalization:
            customer.consent_personalization = False
            customer.consent_updated_at = now
        counts["customers"] = 1
        counts["preferences"] = rows_affected(session.execute(
            delete(Preference).where(Preference.customer_id == customer.id)))
        counts["crm_profiles"] = rows_affected(session.execute(
            delete(CrmProfile).where(CrmProfile.customer_id == customer.id)))
    for order in subject.orders:
        order.email = erased_email(order.customer_id) if order.customer_id else f"erased-order-{order.id}@invalid"
        order.ship_name = order.ship_line1 = order.ship_line2 = order.ship_city = order.ship_postcode = ""
        counts["orders"] += 1
    order_ids = [o.id for o in subject.orders]
    if order_ids:
        counts["returns"] = rows_affected(session.execute(
            update(Return).where(Return.order_id.in_(order_ids), Return.comment != "").values(comment="")
            .execution_options(synchronize_session=False)))
        counts["order_access_grants"] += rows_affected(session.execute(
            delete(OrderAccessGrant).where(OrderAccessGrant.order_id.in_(order_ids))))
    keys = subject.cart_keys
    if keys:
        counts["cart_items"] = rows_affected(session.execute(delete(CartItem).where(CartItem.cart_key.in_(keys))))
    conversations = subject.conversations
    if conversations:
        counts["order_access_grants"] += rows_affected(session.execute(
            delete(OrderAccessGrant).where(OrderAccessGrant.conversation_id.in_(conversations))))
        counts["verification_throttle"] = rows_affected(session.execute(delete(VerificationThrottle).where(
            VerificationThrottle.key.in_([f"conv:{c}"[:160] for c in conversations]))))
        counts["held_messages"] = held.delete_conversations(session, conversations)
    ticket_ids = [t.id for t in subject.tickets]
    if ticket_ids:
        counts["ticket_messages"] = rows_affected(session.execute(
            delete(TicketMessage).where(TicketMessage.ticket_id.in_(ticket_ids))))
        counts["helpdesk_outbox"] = rows_affected(session.execute(
            delete(HelpdeskOutbox).where(HelpdeskOutbox.ticket_id.in_(ticket_ids))))
        for ticket in subject.tickets:
            ticket.context = {}
            ticket.followup_email = None
            ticket.reason_detail = redact(ticket.reason_detail or "")
            ticket.customer_id = None
        counts["tickets"] = len(ticket_ids)
    counts["nlu_messages"] = delete_nlu_messages(session, conversations)
    session.flush()
    return counts


def erase_customer(session: Session, email: str, tracker_url: str, *, actor: str | None = None,
                   now: datetime | None = None) -> Erased:
    """Erase what is held about ``email`` (see the module's docstring) and log it.

    Raises :class:`UnknownSubject` for an address nothing is known about and that was never erased.
    """
    email = normalise_email(email)
    now = now or utcnow()
    try:
        subject = find_subject(session, email, tracker_url)
    except UnknownSubject:
        erased_before = session.scalar(select(PrivacyLog.id).where(
            PrivacyLog.action == ERASE, PrivacyLog.subject_hash == email_hash(email)).limit(1))
        if erased_before is None:
            raise
        record(session, ERASE, {"already_erased": 1}, at=now, actor=actor, email=email)
        return Erased({}, already_erased=True)
    counts = _anonymise(session, subject, now)
    counts["conversations"] = len(subject.conversations)
    counts["tracker_events"] = delete_tracker_conversations(tracker_url, subject.conversations)
    record(session, ERASE, counts, at=now, actor=actor, email=email)
    return Erased(counts)
