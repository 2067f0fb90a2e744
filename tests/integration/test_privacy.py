"""Privacy: redaction (texts, logs, helpdesk payloads, CSV, the gateway's card masking), export, erasure and
retention on the real test database and a real tracker store in Rasa's format (a temporary SQLite file)."""

from __future__ import annotations

import calendar
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from bot.analytics.export import to_csv
from bot.clock import utcnow
from bot.config import HelpdeskWebhook, Settings
from bot.db import Base, migrate, session_scope
from bot.handoff.delivery import TicketFacts, body_for
from bot.handoff.tables import QUEUED, RESOLVED, HelpdeskOutbox, Ticket, TicketMessage
from bot.held_messages import queue as held
from bot.privacy.erase import erase_customer
from bot.privacy.export import UnknownSubject, export_customer
from bot.privacy.redact import RedactingFilter, iban_valid, install_log_redaction, luhn_valid, mask_cards, redact
from bot.privacy.retention import apply_retention
from bot.privacy.tables import ERASE, RETENTION, PrivacyLog, email_hash
from bot.rasa_events import EVENTS, create_events_table, read_events, tracker_engine
from bot.shop.cart import CartItem, customer_cart_key
from bot.shop.tables import (
    CrmProfile,
    Customer,
    Order,
    OrderAccessGrant,
    OrderItem,
    Preference,
    Refund,
    Return,
    Shipment,
)
from bot.training.tables import LABELLED, OPEN, NluMessage
from tests.conftest import ROOT
from tests.support.json_stub import JsonStub

# --------------------------------------------------------------------------- redaction


@pytest.mark.parametrize(("given", "wanted"), [
    ("my card is 4242 4242 4242 4242 exp 12/26", "my card is [card] exp 12/26"),
    ("4111-1111-1111-1111", "[card]"),
    ("4111111111111111.", "[card]."),
    ("amex 3782 822463 10005 please", "amex [card] please"),
    ("write to Ada.Lovelace+shop@example.co.uk today", "write to [email] today"),
    ("call +1 (555) 123-4567 or 555-1234", "call [phone] or [phone]"),
    ("+44 20 7946 0958", "[phone]"),
    ("my IBAN is DE89 3704 0044 0532 0130 00 thanks", "my IBAN is [iban] thanks"),
    ("GB82WEST12345698765432", "[iban]"),
    # left alone: not valid, or not personal
    ("4242 4242 4242 4241", "4242 4242 4242 4241"),  # Luhn fails
    ("GB82WEST12345698765433", "GB82WEST12345698765433"),  # mod-97 fails
    ("where is order NW-100234?", "where is order NW-100234?"),
    ("sizes 8 10 12 14 16 in stock", "sizes 8 10 12 14 16 in stock"),
    ("delivered on 2026-05-01 or 01.05.2026", "delivered on 2026-05-01 or 01.05.2026"),
    ("jackets between 20 and 40, under 1299.99 dollars", "jackets between 20 and 40, under 1299.99 dollars"),
    ("tracking 1Z999AA10123456784 and 12345678901234", "tracking 1Z999AA10123456784 and 12345678901234"),
])
def test_redact_finds_personal_data_and_leaves_ordinary_numbers(given: str, wanted: str) -> None:
    assert redact(given) == wanted


def test_mask_cards_keeps_the_last_four_digits_and_nothing_else_changes() -> None:
    assert mask_cards("pay with 4242 4242 4242 4242, mail a@b.com") == "pay with •••• 4242, mail a@b.com"
    assert mask_cards("5555555555554444 and 4242 4242 4242 4241") == "•••• 4444 and 4242 4242 4242 4241"
    assert mask_cards("order NW-100234, 2 items") == "order NW-100234, 2 items"
    assert luhn_valid("4242424242424242") and not luhn_valid("4242424242424241")
    assert iban_valid("de89 3704 0044 0532 0130 00") and not iban_valid("DE88370400440532013000")


def test_log_records_are_redacted_whichever_logger_makes_them() -> None:
    install_log_redaction()
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep()
    child = logging.getLogger("bot.test_privacy.child")
    child.addHandler(handler)
    child.setLevel(logging.INFO)
    try:
        child.info("shopper %s paid with %s", "ada@example.com", "4242 4242 4242 4242")
        try:
            raise ValueError("card 4111111111111111")
        except ValueError:
            child.exception("failed for +1 555 123 4567")
    finally:
        child.removeHandler(handler)
    assert seen[0].getMessage() == "shopper [email] paid with [card]"
    formatted = logging.Formatter().format(seen[1])
    assert "[phone]" in formatted and "[card]" in formatted and "4111111111111111" not in formatted
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "IBAN %s", ("GB82WEST12345698765432",), None)
    assert RedactingFilter().filter(record) and record.getMessage() == "IBAN [iban]"


def test_helpdesk_payload_is_redacted_only_when_the_webhook_asks() -> None:
    packet = {"customer": {"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+1 555 123 4567"},
              "transcript": [{"role": "shopper", "text": "card 4242 4242 4242 4242, IBAN GB82WEST12345698765432"}],
              "summary": "Ada Lovelace wants a refund"}
    ticket = TicketFacts(1, "conv-x", None, "refund", "", 10, QUEUED, utcnow())
    hook = {"name": "g", "kind": "generic", "url": "https://example.invalid/hook"}
    redacted = json.dumps(body_for(HelpdeskWebhook(**hook, redact=True), ticket, packet, public_url=""))
    plain = json.dumps(body_for(HelpdeskWebhook(**hook), ticket, packet, public_url=""))
    for secret in ("ada@example.com", "Ada Lovelace", "4242 4242", "GB82WEST", "555 123"):
        assert secret not in redacted and secret in plain
    assert "[card]" in redacted and "[iban]" in redacted


def test_analytics_csv_cells_are_redacted() -> None:
    report = {"since": "2026-01-01", "until": "2026-01-31",
              "top_intents": {"intents": [{"intent": "mail ada@example.com", "count": 1, "share": 1.0}]}}
    csv_text = to_csv("top_intents", report)
    assert "ada@example.com" not in csv_text and "mail [email]" in csv_text


class RecordingRasa(JsonStub):
    """A real HTTP server on 127.0.0.1 that answers Rasa's REST channel and keeps what it was sent."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        def answer(path: str, body: dict[str, Any]) -> bytes:
            received.append(body)
            return b'[{"text": "ok"}]' if path.startswith("/webhooks/rest") else b"{}"

        super().__init__(answer)


def test_gateway_masks_card_numbers_before_rasa_sees_them(catalog: int) -> None:
    rasa = RecordingRasa()
    try:
        app = create_gateway(rasa.url)
        with TestClient(app) as client:
            response = client.post("/api/chat", json={"conversation_id": "conv-card-0001",
                                                      "text": "my card 4242 4242 4242 4242 was charged twice"})
            assert response.status_code == 200 and response.json()["replies"] == [{"text": "ok"}]
            with client.websocket_connect("/ws/chat?conversation_id=conv-card-0002") as socket:
                socket.send_text(json.dumps({"type": "message", "text": "card 5555-5555-5555-4444 please"}))
                frames = [socket.receive_json() for _ in range(3)]
                assert {"type": "bot", "messages": [{"text": "ok"}]} in frames
    finally:
        rasa.close()
    messages = [body["message"] for body in rasa.received if "message" in body]
    assert messages == ["my card •••• 4242 was charged twice", "card •••• 4444 please"]


def create_gateway(rasa_url: str) -> Any:
    from bot.web.app import create_app

    return create_app(Settings(rasa_url=rasa_url, actions_url=rasa_url, rasa_timeout_s=5.0))


# --------------------------------------------------------------------------- a customer with a footprint


def _ts(at: datetime) -> float:
    return float(calendar.timegm(at.timetuple()))


def write_events(url: str, rows: list[tuple[str, str, dict[str, Any], datetime]]) -> None:
    """(sender, type, event JSON, when) rows as Rasa's SQLTrackerStore stores them."""
    create_events_table(url)
    records = []
    for sender, kind, event, at in rows:
        event = {"event": kind, "timestamp": _ts(at), **event}
        records.append({"sender_id": sender, "type_name": kind, "timestamp": _ts(at),
                        "intent_name": (event.get("parse_data") or {}).get("intent", {}).get("name"),
                        "action_name": event.get("name"), "data": json.dumps(event)})
    with tracker_engine(url).begin() as conn:
        conn.execute(EVENTS.insert(), records)


@pytest.fixture
def footprint(catalog: int, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A customer with an account, orders (one as a guest), carts, a ticket, NLU inbox rows and conversations,
    next to another shopper's conversation that must stay untouched."""
    tag = uuid.uuid4().hex[:8]
    email = f"ada.{tag}@example.com"
    tracker = f"sqlite:///{tmp_path / 'tracker.sqlite3'}"
    now = utcnow()
    signed_in, guest, other = f"conv-{tag}-signed", f"conv-{tag}-guest", f"conv-{tag}-other"
    with session_scope() as s:
        product_id = s.scalar(text("SELECT id FROM products ORDER BY id LIMIT 1"))
        customer = Customer(email=email, name="Ada Lovelace", phone="+44 20 7946 0958", postcode="N1 9GU",
                            consent_personalization=True, consent_updated_at=now)
        s.add(customer)
        s.flush()
        s.add(Preference(customer_id=customer.id, kind="size", value="M", created_at=now))
        s.add(CrmProfile(customer_id=customer.id, segment="loyal", orders_count=1, lifetime_value=59.0,
                         computed_at=now))
        orders = []
        for n, owner in enumerate((customer.id, None)):
            order = Order(number=f"PV-{tag}{n}", customer_id=owner, email=email.upper() if owner is None else email,
                          status="delivered", subtotal=59.0, total=59.0, ship_name="Ada Lovelace",
                          ship_line1="12 Analytical Row", ship_city="London", ship_postcode="N1 9GU",
                          ship_country="GB", placed_at=now - timedelta(days=10))
            order.items.append(OrderItem(sku=f"SKU-{tag}", title="Rain jacket", quantity=1, unit_price=59.0))
            s.add(order)
            orders.append(order)
        s.flush()
        orders[0].shipment = Shipment(carrier="DHL", tracking_number="JD0001", shipped_at=now - timedelta(days=9))
        ret = Return(rma=f"RMA-{tag}", order_id=orders[0].id, reason="too_small",
                     comment="call me on +44 20 7946 0958", items=[], amount=59.0, created_at=now)
        s.add(ret)
        s.flush()
        s.add(Refund(order_id=orders[0].id, return_id=ret.id, amount=59.0, reason="return", created_at=now))
        s.add(OrderAccessGrant(conversation_id=guest, order_id=orders[1].id, granted_at=now,
                               expires_at=now + timedelta(hours=2)))
        s.add(CartItem(cart_key=customer_cart_key(customer.id), product_id=product_id, quantity=1))
        s.add(CartItem(cart_key=signed_in, product_id=product_id, quantity=2))
        s.add(CartItem(cart_key=other, product_id=product_id, quantity=1))
        ticket = Ticket(conversation_id=signed_in, customer_id=customer.id, reason="human_request",
                        reason_detail=f"asked by {email}", status=QUEUED, created_at=now, followup_email=email,
                        context={"customer": {"name": "Ada Lovelace", "email": email}})
        ticket.messages.append(TicketMessage(role="shopper", text="I am Ada, reach me at " + email, created_at=now))
        s.add(ticket)
        s.flush()
        s.add(HelpdeskOutbox(ticket_id=ticket.id, target="desk", kind="generic", url="https://x.invalid",
                             payload={"context": {"customer": {"email": email}}},
                             idempotency_key=f"key-{tag}", next_attempt_at=now, created_at=now))
        held.hold(s, signed_in, f"waiting for rasa: I am Ada Lovelace, {email}", {"customer_id": customer.id})
        held.hold(s, other, "waiting for rasa too", {})
        base = 10_000_000 + int(tag, 16) % 1_000_000 * 10
        for i, sender in enumerate((signed_in, other)):
            s.add(NluMessage(event_id=base + i, sender_id=sender, text="hi", group_key=f"hi-{tag}-{i}",
                             timestamp=now))
        ids = {"customer": customer.id, "orders": [o.id for o in orders], "ticket": ticket.id}
    write_events(tracker, [
        (signed_in, "user", {"text": "hello", "metadata": {"customer_id": ids["customer"], "channel": "widget"},
                             "parse_data": {"intent": {"name": "greet"}}}, now),
        (signed_in, "bot", {"text": "Hi Ada!"}, now),
        (guest, "user", {"text": f"my email is {email.upper()}", "metadata": {}}, now),
        (other, "user", {"text": "hello", "metadata": {"customer_id": ids["customer"] + 1}}, now),
    ])
    yield {"email": email, "tracker": tracker, "tag": tag, "conversations": [guest, signed_in], "other": other,
           **ids}
    with session_scope() as s:  # leave no personal data in the shared test database
        erase_customer(s, email, tracker, actor="test:teardown")


def test_export_holds_everything_about_the_customer(footprint: dict[str, Any]) -> None:
    with session_scope() as s:
        doc = export_customer(s, footprint["email"].upper(), footprint["tracker"])
    json.dumps(doc)  # plain JSON
    assert doc["customer"]["name"] == "Ada Lovelace" and doc["customer"]["phone"] == "+44 20 7946 0958"
    assert doc["crm_profile"]["segment"] == "loyal" and [p["value"] for p in doc["preferences"]] == ["M"]
    assert sorted(o["id"] for o in doc["orders"]) == sorted(footprint["orders"])  # the guest order too
    first = next(o for o in doc["orders"] if o["customer_id"])
    assert first["items"][0]["title"] == "Rain jacket" and first["shipment"]["carrier"] == "DHL"
    assert first["returns"][0]["comment"] and first["refunds"][0]["amount"] == 59.0
    assert {c["cart_key"] for c in doc["carts"]} == {customer_cart_key(footprint["customer"]),
                                                     footprint["conversations"][1]}
    assert doc["tickets"][0]["messages"][0]["text"].startswith("I am Ada")
    conversations = {c["conversation_id"]: c["events"] for c in doc["conversations"]}
    assert sorted(conversations) == footprint["conversations"]  # signed in, and the guest who typed the email
    assert [e["type"] for e in conversations[footprint["conversations"][1]]] == ["user", "bot"]
    assert [m["sender_id"] for m in doc["nlu_review"]] == [footprint["conversations"][1]]


def _all_text(session: Any) -> str:
    """Every value of every table the project owns, as one string."""
    parts = []
    for table in Base.metadata.sorted_tables:
        for row in session.execute(select(table)):
            parts.append(json.dumps([str(v) for v in row]))
    return "\n".join(parts)


def test_erase_removes_personal_data_keeps_anonymised_orders_and_is_logged(footprint: dict[str, Any]) -> None:
    email, tracker = footprint["email"], footprint["tracker"]
    with session_scope() as s:
        result = erase_customer(s, email, tracker, actor="test:lead")
    assert not result.already_erased
    counts = result.counts
    assert counts["customers"] == 1 and counts["orders"] == 2 and counts["conversations"] == 2
    assert counts["tracker_events"] == 3 and counts["cart_items"] == 2 and counts["ticket_messages"] == 1
    assert counts["held_messages"] == 1
    with session_scope() as s:
        everything = _all_text(s)
        for secret in (email, "Ada Lovelace", "7946 0958", "Analytical Row", "N1 9GU", "I am Ada, reach"):
            assert secret.lower() not in everything.lower(), secret
        customer = s.get(Customer, footprint["customer"])
        assert customer is not None and customer.email == f"erased-{customer.id}@invalid"
        assert not customer.consent_personalization  # history is no longer used for personalization
        orders = [s.get(Order, i) for i in footprint["orders"]]
        assert [o.total for o in orders if o] == [59.0, 59.0] and all(o and o.items for o in orders)
        assert orders[1] is not None and orders[1].email == f"erased-order-{orders[1].id}@invalid"
        assert orders[0] is not None and orders[0].ship_country == "GB" and orders[0].refunds
        assert s.get(CrmProfile, footprint["customer"]) is None
        assert s.scalars(select(Preference).where(Preference.customer_id == footprint["customer"])).all() == []
        ticket = s.get(Ticket, footprint["ticket"])
        assert ticket is not None and ticket.context == {} and ticket.messages == []
        assert s.scalars(select(HelpdeskOutbox).where(HelpdeskOutbox.ticket_id == ticket.id)).all() == []
        # the other shopper keeps their cart and inbox row
        assert s.scalars(select(CartItem).where(CartItem.cart_key == footprint["other"])).all()
        assert s.scalars(select(NluMessage).where(NluMessage.sender_id == footprint["other"])).all()
        assert held.has_held(s, footprint["other"])
        held.delete_conversations(s, [footprint["other"]])  # no stack in this session should replay it
        log = s.scalars(select(PrivacyLog).where(PrivacyLog.subject_hash == email_hash(email))).all()
        assert [(r.action, r.actor) for r in log] == [(ERASE, "test:lead")]
        assert email not in json.dumps(log[0].counts)
    assert {e.sender_id for e in read_events(tracker)} == {footprint["other"]}
    # idempotent: a second run finds nothing and says so; an address never seen is an error
    with session_scope() as s:
        assert erase_customer(s, email, tracker).already_erased
    with session_scope() as s, pytest.raises(UnknownSubject, match="nothing is held"):
        erase_customer(s, f"nobody-{footprint['tag']}@example.com", tracker)


def _cli(*args: str, tracker: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHOP_TRACKER_STORE_URL": tracker}
    return subprocess.run([sys.executable, "-m", "bot", "privacy", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_export_then_erase(footprint: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "export.json"
    done = _cli("export", footprint["email"], "--out", str(out), tracker=footprint["tracker"])
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["customer"]["name"] == "Ada Lovelace"
    assert out.stat().st_mode & 0o077 == 0  # readable by its owner only
    unknown = _cli("export", f"nobody-{footprint['tag']}@example.com", tracker=footprint["tracker"])
    assert unknown.returncode == 1 and "nothing is held" in unknown.stderr
    erased = _cli("erase", footprint["email"], "--yes", tracker=footprint["tracker"])
    assert erased.returncode == 0, erased.stderr
    assert json.loads(erased.stdout)["erased"]["customers"] == 1
    with session_scope() as s:
        actions = s.scalars(select(PrivacyLog.action).where(
            PrivacyLog.subject_hash == email_hash(footprint["email"])).order_by(PrivacyLog.id)).all()
    assert actions == ["export", ERASE]


def test_retention_deletes_what_is_older_than_the_period(catalog: int, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    tracker = f"sqlite:///{tmp_path / 'tracker.sqlite3'}"
    now = utcnow()
    old, recent, ongoing = now - timedelta(days=400), now - timedelta(days=5), f"conv-{tag}-ongoing"
    write_events(tracker, [
        (f"conv-{tag}-old", "user", {"text": "hi"}, old), (f"conv-{tag}-old", "bot", {"text": "hello"}, old),
        (ongoing, "user", {"text": "hi"}, old), (ongoing, "user", {"text": "still here"}, recent),
        (f"conv-{tag}-new", "user", {"text": "hi"}, recent),
    ])
    base = 20_000_000 + int(tag, 16) % 1_000_000 * 10
    with session_scope() as s:
        s.add_all([NluMessage(event_id=base + i, sender_id=f"conv-{tag}-nlu", text="hi", group_key=f"g-{tag}-{i}",
                              timestamp=at, status=status)
                   for i, (at, status) in enumerate([(old, OPEN), (old, LABELLED), (recent, OPEN)])])
        tickets = [Ticket(conversation_id=f"conv-{tag}-t{i}", reason="human_request", status=status,
                          created_at=old, resolved_at=old if status == RESOLVED else None)
                   for i, status in enumerate([RESOLVED, QUEUED])]
        tickets[0].messages.append(TicketMessage(role="shopper", text="hello", created_at=old))
        s.add_all(tickets)
        s.flush()
        ticket_ids = [t.id for t in tickets]
        held.hold(s, f"conv-{tag}-held", "held since last year", {}, now=old)
    with session_scope() as s:
        assert apply_retention(s, tracker, 0).counts == {}  # 0 keeps everything
        result = apply_retention(s, tracker, 365, actor="test:cron")
        assert not held.has_held(s, f"conv-{tag}-held") and result.counts["held_messages"] >= 1
    assert result.counts["conversations"] == 1 and result.counts["tracker_events"] == 2
    assert result.counts["tickets"] >= 1 and result.counts["nlu_messages"] >= 1
    assert {e.sender_id for e in read_events(tracker)} == {ongoing, f"conv-{tag}-new"}
    with session_scope() as s:
        left = s.scalars(select(NluMessage.status).where(NluMessage.sender_id == f"conv-{tag}-nlu")
                         .order_by(NluMessage.id)).all()
        assert left == [LABELLED, OPEN]  # the labelled example stays, the recent one too
        assert s.get(Ticket, ticket_ids[0]) is None and s.get(Ticket, ticket_ids[1]) is not None
        log = s.scalars(select(PrivacyLog).where(PrivacyLog.action == RETENTION, PrivacyLog.actor == "test:cron"))
        assert [r.counts["days"] for r in log] == [365]


# --------------------------------------------------------------------------- erasure leaves no bytes behind


def _sqlite_bytes(db: Path) -> bytes:
    """The raw bytes of a SQLite database file and of its write-ahead log and shared-memory index."""
    files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    return b"".join(f.read_bytes() for f in files if f.exists())


def _shopper_in_files(tmp_path: Path, name: str, email: str) -> tuple[str, str]:
    """A shop database and a tracker store, two SQLite files in WAL mode, holding a shopper with ``email``:
    an account, an order, a ticket with messages, NLU inbox rows and conversation events."""
    db_url, tracker = f"sqlite:///{tmp_path / f'{name}.sqlite3'}", f"sqlite:///{tmp_path / f'{name}-tracker.sqlite3'}"
    migrate(db_url)
    now = utcnow()
    conversation = f"conv-{name}-1"
    with session_scope(db_url) as s:
        customer = Customer(email=email, name="Grace Hopper", phone="+1 202 555 0143", postcode="20500",
                            consent_personalization=True, consent_updated_at=now)
        s.add(customer)
        s.flush()
        s.add(Order(number=f"WAL-{name}", customer_id=customer.id, email=email, status="delivered", subtotal=10.0,
                    total=10.0, ship_name="Grace Hopper", ship_line1="1 Compiler Way", ship_city="Arlington",
                    ship_postcode="20500", ship_country="US", placed_at=now))
        ticket = Ticket(conversation_id=conversation, customer_id=customer.id, reason="human_request",
                        reason_detail=f"asked by {email}", status=QUEUED, created_at=now, followup_email=email,
                        context={"customer": {"email": email}})
        for i in range(20):
            ticket.messages.append(TicketMessage(role="shopper", text=f"message {i}: write to {email}", created_at=now))
        s.add(ticket)
        s.add_all([NluMessage(event_id=i + 1, sender_id=conversation, text=f"my email is {email} ({i})",
                              group_key=f"g-{i}", timestamp=now) for i in range(20)])
    write_events(tracker, [
        (conversation, "user", {"text": f"hello, I am {email}", "metadata": {"channel": "widget"}}, now)
        for _ in range(20)])
    for url in (db_url, tracker):  # both are in WAL mode, as the shop's engines make them
        with tracker_engine(url).connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    return db_url, tracker


def test_erase_leaves_no_bytes_of_the_email_in_sqlite_files_or_their_write_ahead_logs(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:10]
    email = f"grace.{tag}@wal-erasure.example"
    # without reclaiming the space, the deleted rows are still in the files: what this test looks for is there
    control_db, control_tracker = _shopper_in_files(tmp_path, "control", email)
    with session_scope(control_db) as s:
        assert erase_customer(s, email, control_tracker).counts["customers"] == 1
    leftover = _sqlite_bytes(tmp_path / "control.sqlite3") + _sqlite_bytes(tmp_path / "control-tracker.sqlite3")
    assert email.encode() in leftover

    db_url, tracker = _shopper_in_files(tmp_path, "shop", email)
    env = {**os.environ, "DATABASE_URL": db_url, "SHOP_TRACKER_STORE_URL": tracker}
    done = subprocess.run([sys.executable, "-m", "bot", "privacy", "erase", email, "--yes"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["erased"]["customers"] == 1 and out["erased"]["tracker_events"] == 20
    assert set(out["reclaimed"].values()) == {"checkpointed and vacuumed"} and len(out["reclaimed"]) == 2
    for db in (tmp_path / "shop.sqlite3", tmp_path / "shop-tracker.sqlite3"):
        raw = _sqlite_bytes(db)
        assert raw and email.encode() not in raw and tag.encode() not in raw, db
        assert b"Grace Hopper" not in raw and b"Compiler Way" not in raw
    with session_scope(db_url) as s:  # the database still works and keeps the anonymised order
        assert s.scalar(select(Order.email).where(Order.number == "WAL-shop")) is not None


def test_retention_leaves_no_bytes_of_an_old_conversation_in_sqlite_files(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:10]
    email = f"ada.{tag}@wal-retention.example"
    db_url, tracker = f"sqlite:///{tmp_path / 'shop.sqlite3'}", f"sqlite:///{tmp_path / 'tracker.sqlite3'}"
    migrate(db_url)
    old = utcnow() - timedelta(days=400)
    write_events(tracker, [(f"conv-old-{tag}", "user", {"text": f"write to {email} please"}, old)] * 30
                 + [(f"conv-new-{tag}", "user", {"text": "still talking"}, utcnow())])
    with tracker_engine(tracker).connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    env = {**os.environ, "DATABASE_URL": db_url, "SHOP_TRACKER_STORE_URL": tracker}
    done = subprocess.run([sys.executable, "-m", "bot", "privacy", "retention", "--days", "365"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["deleted"]["tracker_events"] == 30 and out["deleted"]["conversations"] == 1, out
    assert set(out["reclaimed"].values()) == {"checkpointed and vacuumed"}, out
    raw = _sqlite_bytes(tmp_path / "tracker.sqlite3")
    assert raw and email.encode() not in raw and b"still talking" in raw


def test_reclaiming_space_on_postgresql_is_left_to_the_operator_and_says_how() -> None:
    from bot.privacy.erase import reclaim_space

    done = reclaim_space("postgresql+psycopg://shop:s3cret-pw@db.internal:5432/shop")
    assert not done.done and "VACUUM" in done.note and "VACUUM FULL" in done.note
    assert "s3cret-pw" not in done.database and "db.internal" in done.database


# --------------------------------------------------------------------------- personal data in NLU data

NLU_TEXT = "pls send it to Grace.Hopper@Navy.example or call +1 202 555 0143, card 4242.4242.4242.4242 thx"


def test_inbox_stores_messages_without_personal_data_and_keeps_entities_in_place(tmp_path: Path) -> None:
    from bot.training.nlu_inbox import ingest

    tracker = f"sqlite:///{tmp_path / 'tracker.sqlite3'}"
    email_at = NLU_TEXT.index("Grace")
    entity = {"start": email_at, "end": email_at + len("Grace.Hopper@Navy.example"), "entity": "email",
              "value": "grace.hopper@navy.example", "extractor": "RegexEntityExtractor"}
    parse = {"intent": {"name": "request_email_followup", "confidence": 0.4}, "entities": [entity],
             "intent_ranking": [{"name": "request_email_followup", "confidence": 0.4}]}
    write_events(tracker, [("conv-nlu-1", "user", {"text": NLU_TEXT, "parse_data": parse}, utcnow())])
    db_url = f"sqlite:///{tmp_path / 'console.sqlite3'}"
    migrate(db_url)
    with session_scope(db_url) as s:
        assert ingest(s, tracker, threshold=0.7, sample_rate=0.0) == 1
        row = s.scalars(select(NluMessage)).one()
        text, entities = row.text, row.entities
    assert text == "pls send it to someone@example.com or call 555-0100, card •••• 4242 thx"
    assert entities == [{"start": 15, "end": 34, "entity": "email", "value": "someone@example.com"}]
    assert text[15:34] == "someone@example.com"
    raw = _sqlite_bytes(tmp_path / "console.sqlite3")
    for secret in (b"Hopper", b"hopper", b"202 555", b"4242.4242"):
        assert secret not in raw


def test_label_export_writes_no_personal_data_even_for_rows_stored_before_redaction(tmp_path: Path) -> None:
    from bot.training.nlu_yaml import MARKER, export_labels

    root = tmp_path / "root"
    (root / "data" / "nlu").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "domain.yml").write_text((ROOT / "domain.yml").read_text())
    (root / "tests" / "nlu_test.yml").write_text(f'version: "3.1"\nnlu:\n{MARKER}\n')
    db_url = f"sqlite:///{tmp_path / 'console.sqlite3'}"
    migrate(db_url)
    email_at = NLU_TEXT.index("Grace")
    now = utcnow()
    with session_scope(db_url) as s:  # as an inbox from before the redaction stored them: verbatim
        s.add(NluMessage(event_id=1, sender_id="conv-a", text=NLU_TEXT, group_key="a", timestamp=now,
                         status=LABELLED, label_intent="request_email_followup", label_target="train",
                         labelled_at=now, label_entities=[{"start": email_at, "end": email_at + 25, "entity": "email",
                                                           "value": "grace.hopper@navy.example"}]))
        s.add(NluMessage(event_id=2, sender_id="conv-b", text="my email is ada@lovelace.example, order NW-100234",
                         group_key="b", timestamp=now, status=LABELLED, label_intent="order_status",
                         label_target="test", labelled_at=now,
                         label_entities=[{"start": 40, "end": 49, "entity": "order_number", "value": "NW-100234"}]))
        result = export_labels(s, root)
    assert (result.train_examples, result.test_examples) == (1, 1)
    train, test = result.train_path.read_text(), result.test_path.read_text()
    assert ("pls send it to [someone@example.com](email) or call 555-0100, card •••• 4242 thx" in train)
    assert "my email is someone@example.com, order [NW-100234](order_number)" in test
    for secret in ("Hopper", "hopper", "lovelace", "202 555", "4242.4242"):
        assert secret not in train + test
