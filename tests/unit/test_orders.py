"""The order service against real databases: SQLite (a temp file) and PostgreSQL (a throwaway server).

Each backend gets the demo catalog and the demo customers and orders; each test makes the orders
it changes, so tests do not depend on one another.
"""

from __future__ import annotations

import itertools
import random
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from bot.catalog.store import upsert_products
from bot.catalog.tables import Product
from bot.db import make_engine, migrate
from bot.demo import catalog as demo
from bot.demo.orders import PLACES, SHOWCASES, add_order, demo_customers, load_demo_orders
from bot.knowledge.shop_policy_file import get_policy
from bot.shop.address import Address, AddressError, parse_address
from bot.shop.orders import (
    NOT_FOUND_TEXT,
    AccessRules,
    InvalidOrderNumber,
    NotAuthorized,
    OrderError,
    OrderService,
    OrderStateError,
    Requester,
    VerificationLocked,
    add_business_days,
    normalize_order_number,
    tracking_url,
)
from bot.shop.tables import (
    CANCELLED,
    DELIVERED,
    ORDER_STATUSES,
    PAID,
    PLACED,
    REFUNDED,
    RETURNED,
    SHIPPED,
    Customer,
    Order,
    OrderAccessGrant,
    OrderItem,
    Refund,
    Return,
)

NOW = datetime(2026, 11, 20, 12, 0, 0)  # a Friday
POLICY = get_policy()
_numbers = itertools.count(900001)


class Clock:
    """An injectable clock the tests move forward."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Shop:
    backend: str
    url: str
    engine: Engine
    sessions: sessionmaker[Session]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def shop(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('orders') / 'shop.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres").create_database("orders_test")
    migrate(url)
    engine = make_engine(url)
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    with sessions.begin() as session:
        upsert_products(session, demo.generate(300))
        load_demo_orders(session, now=NOW)
    yield Shop(request.param, url, engine, sessions)
    engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(shop: Shop, clock: Clock) -> OrderService:
    return OrderService(shop.sessions, POLICY, clock=clock, rules=AccessRules())


def new_customer(shop: Shop) -> int:
    with shop.sessions.begin() as session:
        tag = uuid.uuid4().hex[:8]
        customer = Customer(email=f"test.{tag}@example.com", name=f"Test {tag}", postcode="62704")
        session.add(customer)
        session.flush()
        return customer.id


def new_order(shop: Shop, status: str, customer_id: int | None = None, *, email: str | None = None,
              delivered_days_ago: float | None = None, items: int = 2, quantity: int = 1,
              place: tuple[str, str, str, str] = PLACES[0]) -> str:
    """A fresh order in ``status`` (placed two weeks before delivery when delivered_days_ago is given)."""
    number = f"NW-{next(_numbers)}"
    with shop.sessions.begin() as session:
        customer = session.get(Customer, customer_id) if customer_id else None
        products = session.scalars(select(Product).where(Product.price.is_not(None), Product.stock > 0)
                                   .order_by(Product.id).limit(items)).all()
        delivered_at = NOW - timedelta(days=delivered_days_ago) if delivered_days_ago is not None else None
        placed_at = (delivered_at - timedelta(days=7)) if delivered_at else NOW - timedelta(hours=5)
        add_order(session, random.Random(number), number=number, customer=customer,
                  email=email or (customer.email if customer else f"guest.{number.lower()}@example.com"),
                  name=customer.name if customer else "Guest Shopper", place=place,
                  lines=[(p, quantity, (p.sizes or [""])[0]) for p in products], status=status,
                  placed_at=placed_at, now=NOW, policy=POLICY, method="Standard", delivered_at=delivered_at)
    return number


def me(customer_id: int | None = None, client_key: str | None = None) -> Requester:
    return Requester(conversation_id=f"conv-{uuid.uuid4().hex}", customer_id=customer_id, client_key=client_key)


def snapshot(shop: Shop, number: str) -> dict:
    """Everything an order change could touch, to compare before and after."""
    with shop.sessions() as session:
        order = session.scalar(select(Order).where(Order.number == number))
        assert order is not None
        items = session.scalars(select(OrderItem).where(OrderItem.order_id == order.id).order_by(OrderItem.id)).all()
        stock = {p.id: p.stock for p in session.scalars(select(Product).where(
            Product.id.in_([i.product_id for i in items])))}
        return {
            "status": order.status, "cancelled_at": order.cancelled_at, "line1": order.ship_line1,
            "postcode": order.ship_postcode, "returned": [i.returned_quantity for i in items], "stock": stock,
            "refunds": session.scalar(select(func.count(Refund.id)).where(Refund.order_id == order.id)),
            "returns": session.scalar(select(func.count(Return.id)).where(Return.order_id == order.id)),
        }


# --------------------------------------------------------------------------- demo data


def test_demo_orders_cover_every_state_and_are_idempotent(shop: Shop) -> None:
    with shop.sessions.begin() as session:
        statuses = set(session.scalars(select(Order.status).where(Order.number.like("NW-1%"))))
        assert set(ORDER_STATUSES) <= statuses
        again = load_demo_orders(session, now=NOW + timedelta(days=3))
        assert (again.customers_added, again.orders_added) == (0, 0) and again.orders_existing > 200
        per_customer = session.execute(
            select(Order.customer_id, func.count(Order.id)).where(Order.customer_id.is_not(None),
                                                                  Order.number.like("NW-1%"))
            .group_by(Order.customer_id)).all()
        assert per_customer and all(1 <= n <= 12 for _, n in per_customer)
        emails = session.scalars(select(Customer.email).where(Customer.email.not_like("test.%"))).all()
        assert all(e.endswith("@example.com") and "." in e.split("@")[0] for e in emails)
        shipped = session.scalars(select(Order).where(Order.status == SHIPPED)).all()
        assert shipped and all(o.shipment and o.shipment.carrier and o.shipment.tracking_number for o in shipped)
        for order in session.scalars(select(Order).where(Order.status.in_([RETURNED, "refund_pending", REFUNDED]))):
            assert order.returns and order.refunds and all(i.returned_quantity == i.quantity for i in order.items)
            assert order.returns[0].items and order.refunds[0].return_id == order.returns[0].id
        # baskets hang together: most multi-item orders stay within one department
        departments = [{session.get(Product, i.product_id).department for i in o.items}
                       for o in session.scalars(select(Order).where(Order.number.like("NW-1%"))) if len(o.items) > 1]
        assert sum(len(d) == 1 for d in departments) == len(departments)


def test_demo_is_deterministic(tmp_path) -> None:
    rows = []
    for run in range(2):
        url = f"sqlite:///{tmp_path / f'd{run}.sqlite3'}"
        migrate(url)
        factory = sessionmaker(bind=make_engine(url))
        with factory.begin() as session:
            upsert_products(session, demo.generate(120))
            load_demo_orders(session, now=NOW, customers=15)
            rows.append(session.execute(select(Order.number, Order.email, Order.status, Order.total, Order.placed_at)
                                        .order_by(Order.number)).all())
    assert rows[0] == rows[1] and len(rows[0]) > 15


def test_showcase_customers_are_in_their_states(shop: Shop, service: OrderService) -> None:
    with shop.sessions() as session:
        showcase = demo_customers(session)
    assert len(showcase) == len(SHOWCASES)
    by_note = {c.email: c for c in showcase}
    assert by_note["ava.martin@example.com"].status == PLACED
    assert by_note["chloe.nguyen@example.com"].status == SHIPPED
    assert by_note["sam.taylor@example.com"].id is None  # the guest
    daniel = by_note["daniel.kim@example.com"]
    assert service.get(me(daniel.id), daniel.order_number).can_return
    emma = by_note["emma.rossi@example.com"]
    view = service.get(me(emma.id), emma.order_number)
    assert view.status == DELIVERED and not view.can_return


# --------------------------------------------------------------------------- reading


def test_track_order_of_signed_in_shopper(shop: Shop, service: OrderService) -> None:
    cid = new_customer(shop)
    number = new_order(shop, SHIPPED, cid)
    view = service.get(me(cid), number.lower().replace("-", " "))
    assert view.number == number and view.status == SHIPPED and view.status_label == "On its way"
    assert len(view.items) == 2 and view.items[0].title and view.items[0].unit_price > 0
    assert view.carrier in ("UPS", "USPS", "FedEx") and view.tracking_number
    assert view.tracking_url and view.tracking_number in view.tracking_url
    assert view.expected_delivery is not None and view.expected_delivery > view.shipped_at
    assert not view.can_cancel and not view.can_return and view.address_lines
    assert view.total == pytest.approx(view.subtotal + view.shipping_fee)


def test_recent_orders_only_for_signed_in_shoppers(shop: Shop, service: OrderService) -> None:
    cid = new_customer(shop)
    first = new_order(shop, DELIVERED, cid, delivered_days_ago=40)
    second = new_order(shop, PAID, cid)
    recent = service.recent_orders(me(cid))
    assert [o.number for o in recent] == [second, first]
    assert service.recent_orders(me(cid), limit=1)[0].number == second
    assert service.recent_orders(me(None)) == []


@pytest.mark.parametrize("typed", ["NW-{n}", "nw-{n}", "#NW-{n}", "nw {n}", " # nw{n} ", "{n}"])
def test_order_numbers_are_matched_loosely(shop: Shop, service: OrderService, typed: str) -> None:
    cid = new_customer(shop)
    number = new_order(shop, PAID, cid)
    assert service.get(me(cid), typed.format(n=number[3:])).number == number


def test_unparseable_number_says_so_without_revealing_anything(service: OrderService) -> None:
    with pytest.raises(InvalidOrderNumber, match="look like NW-"):
        service.get(me(1), "my blue jacket")
    assert normalize_order_number("hello") is None and normalize_order_number("nw-12") is None


def test_tracking_urls_per_carrier() -> None:
    assert tracking_url("UPS Ground", "1Z999") == "https://www.ups.com/track?tracknum=1Z999"
    assert "fedex.com" in (tracking_url("FedEx", "1234") or "")
    assert "usps.com" in (tracking_url("USPS", "9400") or "")
    assert "dhl.com" in (tracking_url("DHL Express", "55") or "")
    assert tracking_url("Northwind stores", "1") is None and tracking_url(None, None) is None


# --------------------------------------------------------------------------- cancel


def test_cancel_unpaid_order_restocks_without_refund(shop: Shop, service: OrderService) -> None:
    cid = new_customer(shop)
    number = new_order(shop, PLACED, cid, quantity=2)
    before = snapshot(shop, number)
    outcome = service.cancel(me(cid), number)
    assert outcome.kind == "cancelled" and outcome.order.status == CANCELLED and outcome.refund is None
    after = snapshot(shop, number)
    assert after["refunds"] == 0 and after["cancelled_at"] == NOW
    assert after["stock"] == {pid: s + 2 for pid, s in before["stock"].items()}


def test_cancel_confirmed_twice_cancels_once_with_one_refund(shop: Shop, service: OrderService) -> None:
    cid = new_customer(shop)
    number = new_order(shop, PAID, cid)
    before = snapshot(shop, number)
    first = service.cancel(me(cid), number)
    second = service.cancel(me(cid), number)
    assert first.kind == "cancelled" and second.kind == "already_cancelled"
    assert first.refund is not None and first.refund.amount == first.order.total
    assert first.refund.status == "pending" and first.refund.reason == "cancellation"
    assert second.refund == first.refund
    after = snapshot(shop, number)
    assert after["refunds"] == 1 and after["status"] == CANCELLED
    assert after["stock"] == {pid: s + 1 for pid, s in before["stock"].items()}  # restocked once


def test_concurrent_cancels_cancel_once(shop: Shop, service: OrderService) -> None:
    cid = new_customer(shop)
    number = new_order(shop, PAID, cid)
    before = snapshot(shop, number)
    results: list[str] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        results.append(service.cancel(me(cid), number).kind)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == ["already_cancelled"] * 3 + ["cancelled"]
    after = snapshot(shop, number)
    assert after["refunds"] == 1 and after["stock"] == {pid: s + 1 for pid, s in before["stock"].items()}


@pytest.mark.parametrize("status", [SHIPPED, DELIVERED])
def test_cancel_refused_once_shipped(shop: Shop, service: OrderService, status: str) -> None:
    cid = new_customer(shop)
    number = new_order(shop, status, cid, delivered_days_ago=3 if status == DELIVERED else None)
    before = snapshot(shop, number)
    outcome = service.cancel(me(cid), number)
    assert outcome.kind == "not_cancellable" and outcome.order.status == status and outcome.refund is None
    assert snapshot(shop, number) == before
    if status == DELIVERED:
        assert outcome.order.can_return  # the return path is offered instead


# --------------------------------------------------------------------------- address


def test_change_address_before_shipment(shop: Shop, service: OrderService) -> None:
    cid = new_customer(shop)
    number = new_order(shop, PAID, cid)
    view = service.change_address(me(cid), number, parse_address("12 Baker Street, London NW1 6XE, UK"))
    assert view.address_lines[1:] == ("12 Baker Street", "London NW1 6XE", "United Kingdom")
    assert snapshot(shop, number)["postcode"] == "NW1 6XE"
    assert service.get(me(cid), number).address_lines == view.address_lines


def test_change_address_refused_after_shipment(shop: Shop, service: OrderService) -> None:
    cid = new_customer(shop)
    number = new_order(shop, SHIPPED, cid)
    before = snapshot(shop, number)
    with pytest.raises(OrderStateError, match="already shipped") as err:
        service.change_address(me(cid), number, Address("1 Main St", "Austin", "78701", "US", region="TX"))
    assert err.value.kind == "shipped"
    assert snapshot(shop, number) == before


@pytest.mark.parametrize(("typed", "expected"), [
    ("12 Baker Street, London NW1 6XE, UK", Address("12 Baker Street", "London", "NW1 6XE", "GB")),
    ("123 Main St, Springfield, IL 62704", Address("123 Main St", "Springfield", "62704", "US", region="IL")),
    ("Jane Doe\n500 Elm Ave Apt 4\nAustin TX 78701-1234\nUSA",
     Address("500 Elm Ave Apt 4", "Austin", "78701-1234", "US", region="TX", name="Jane Doe")),
    ("1 Infinite Loop, Cupertino, CA 95014", Address("1 Infinite Loop", "Cupertino", "95014", "US", region="CA")),
    ("100 Queen St W, Toronto, ON m5h2n2, Canada",
     Address("100 Queen St W", "Toronto", "M5H 2N2", "CA", region="ON")),
    ("Hauptstraße 5, 10115 Berlin, Germany", Address("Hauptstraße 5", "Berlin", "10115", "DE")),
    ("8 rue de Rivoli\n75001 Paris\nFrance", Address("8 rue de Rivoli", "Paris", "75001", "FR")),
    ("Flat 3, 12 Baker Street, London NW1 6XE",
     Address("Flat 3", "London", "NW1 6XE", "GB", line2="12 Baker Street")),
])
def test_parse_address_accepts_common_forms(typed: str, expected: Address) -> None:
    assert parse_address(typed) == expected


@pytest.mark.parametrize(("typed", "message"), [
    ("Baker Street, London NW1 6XE, UK", "house number is missing"),
    ("12 Baker Street, London, UK", "postcode is missing: please add a UK postcode"),
    ("123 Main St, Springfield, IL 627", "doesn't look right for the US: I need a 5-digit ZIP"),
    ("12 Hauptstraße, 1011 Berlin, Germany", "postcode"),
    ("123 Main St, 62704", "city is missing"),
    ("London", "incomplete"),
    ("   ", "full address"),
])
def test_parse_address_says_what_is_wrong(typed: str, message: str) -> None:
    with pytest.raises(AddressError, match=message):
        parse_address(typed)


# --------------------------------------------------------------------------- returns and refunds


def test_full_return_inside_window(shop: Shop, service: OrderService) -> None:
    cid = new_customer(shop)
    number = new_order(shop, DELIVERED, cid, delivered_days_ago=10)
    items = service.returnable_items(me(cid), number)
    assert [i.returnable_quantity for i in items] == [1, 1]
    ret = service.start_return(me(cid), number, None, "too_small", "key-" + number)
    assert ret.rma.startswith("RMA-") and ret.reason_label == "Too small" and ret.status == "requested"
    assert ret.amount == pytest.approx(sum(i.unit_price for i in items))
    assert any("label" in s for s in ret.instructions) and any("unworn" in s for s in ret.instructions)
    view = service.get(me(cid), number)
    assert view.status == RETURNED and not view.can_return
    refunds = service.refund_status(me(cid), number)
    assert [(r.reason, r.status, r.rma, r.amount) for r in refunds] == [("return", "pending", ret.rma, ret.amount)]
    assert refunds[0].expected_by is None  # the parcel has not reached the warehouse yet


def test_partial_return_then_the_rest(shop: Shop, service: OrderService) -> None:
    cid = new_customer(shop)
    number = new_order(shop, DELIVERED, cid, delivered_days_ago=5, quantity=2)
    first, second = service.returnable_items(me(cid), number)
    ret = service.start_return(me(cid), number, {first.id: 1}, "changed_mind", "p1-" + number)
    assert ret.amount == pytest.approx(first.unit_price) and ret.items[0][1] == 1
    view = service.get(me(cid), number)
    assert view.status == DELIVERED and view.can_return
    assert {i.id: i.returnable_quantity for i in view.items} == {first.id: 1, second.id: 2}
    with pytest.raises(OrderError, match="up to 1"):
        service.start_return(me(cid), number, {first.id: 2}, "changed_mind", "p2-" + number)
    with pytest.raises(OrderError, match="isn't part of this order"):
        service.start_return(me(cid), number, {999999: 1}, "changed_mind", "p3-" + number)
    service.start_return(me(cid), number, None, "too_large", "p4-" + number)
    assert service.get(me(cid), number).status == RETURNED
    assert len(service.refund_status(me(cid), number)) == 2
    assert snapshot(shop, number)["returned"] == [2, 2]


def test_return_is_idempotent(shop: Shop, service: OrderService) -> None:
    cid = new_customer(shop)
    number = new_order(shop, DELIVERED, cid, delivered_days_ago=2)
    item = service.returnable_items(me(cid), number)[0]
    first = service.start_return(me(cid), number, {item.id: 1}, "damaged", "same-" + number)
    again = service.start_return(me(cid), number, {item.id: 1}, "damaged", "same-" + number)
    assert again.rma == first.rma
    after = snapshot(shop, number)
    assert (after["returns"], after["refunds"], after["returned"]) == (1, 1, [1, 0])


@pytest.mark.parametrize(("status", "days", "kind"), [
    (DELIVERED, 31, "window_passed"), (SHIPPED, None, "not_delivered"), (PAID, None, "not_delivered"),
    (CANCELLED, None, "cancelled"), (REFUNDED, 12, "returned"),
])
def test_return_refused(shop: Shop, service: OrderService, status: str, days: float | None, kind: str) -> None:
    cid = new_customer(shop)
    number = new_order(shop, status, cid, delivered_days_ago=days)
    before = snapshot(shop, number)
    with pytest.raises(OrderStateError) as err:
        service.start_return(me(cid), number, None, "too_small", "no-" + number)
    assert err.value.kind == kind
    with pytest.raises(OrderStateError):
        service.returnable_items(me(cid), number)
    assert snapshot(shop, number) == before
    if kind == "window_passed":
        assert "30-day return window" in str(err.value) and not service.get(me(cid), number).can_return


def test_return_window_edge(shop: Shop, service: OrderService, clock: Clock) -> None:
    cid = new_customer(shop)
    number = new_order(shop, DELIVERED, cid, delivered_days_ago=29)
    view = service.get(me(cid), number)
    assert view.return_deadline == NOW + timedelta(days=1)
    clock.now = view.return_deadline + timedelta(seconds=1)
    with pytest.raises(OrderStateError, match="return window"):
        service.start_return(me(cid), number, None, "too_small", "edge-" + number)


def test_return_reason_must_be_known(shop: Shop, service: OrderService) -> None:
    cid = new_customer(shop)
    number = new_order(shop, DELIVERED, cid, delivered_days_ago=1)
    with pytest.raises(OrderError, match="reasons"):
        service.start_return(me(cid), number, None, "because", "r-" + number)


def test_refund_status_of_cancelled_and_received_returns(shop: Shop, service: OrderService) -> None:
    cid = new_customer(shop)
    cancelled = new_order(shop, PAID, cid)
    service.cancel(me(cid), cancelled)
    (refund,) = service.refund_status(me(cid), cancelled)
    assert refund.reason == "cancellation" and refund.status_label == "Refund on its way"
    assert refund.expected_by == add_business_days(NOW.date(), 5) == date(2026, 11, 27)
    refunded = new_order(shop, REFUNDED, cid, delivered_days_ago=20)
    (done,) = service.refund_status(me(cid), refunded)
    assert done.status == "refunded" and done.completed_at is not None and done.rma
    assert service.refund_status(me(cid), new_order(shop, PAID, cid)) == []


def test_cancellation_fee(shop: Shop, service: OrderService) -> None:
    cid = new_customer(shop)
    fee = service.cancellation_fee(me(cid), new_order(shop, PAID, cid))
    assert fee.cancellable and fee.fee == 0 and "free" in fee.explanation
    shipped = service.cancellation_fee(me(cid), new_order(shop, SHIPPED, cid))
    assert not shipped.cancellable and shipped.fee is None and "return" in shipped.explanation


def test_delivery_estimate(shop: Shop, service: OrderService) -> None:
    cid = new_customer(shop)
    paid = service.delivery_estimate(me(cid), new_order(shop, PAID, cid))
    # placed Friday 07:00 -> 1 processing day (Monday) -> Standard 3 to 5 business days
    assert paid.source == "estimate" and (paid.earliest, paid.latest) == (date(2026, 11, 26), date(2026, 11, 30))
    shipped_number = new_order(shop, SHIPPED, cid)
    shipped = service.delivery_estimate(me(cid), shipped_number)
    expected = service.get(me(cid), shipped_number).expected_delivery
    assert shipped.source == "carrier" and expected is not None and shipped.earliest == expected.date()
    delivered = service.delivery_estimate(me(cid), new_order(shop, DELIVERED, cid, delivered_days_ago=3))
    assert delivered.source == "delivered" and delivered.delivered_at == NOW - timedelta(days=3)
    abroad = service.delivery_estimate(me(cid), new_order(shop, PAID, cid, place=PLACES[15]))
    assert abroad.latest == add_business_days(date(2026, 11, 23), 14)


# --------------------------------------------------------------------------- guest verification


def test_guest_verifies_with_email_or_postcode(shop: Shop, service: OrderService, clock: Clock) -> None:
    number = new_order(shop, PAID, email="Pat.Guest@Example.com", place=PLACES[15])  # London NW1 6XE
    by_email = me()
    assert not service.can_access(by_email, number)
    with pytest.raises(NotAuthorized):
        service.get(by_email, number)
    assert service.verify_guest(by_email, f"#{number.lower()}", "  pat.guest@EXAMPLE.com ")
    assert service.get(by_email, number).number == number
    by_postcode = me()
    assert service.verify_guest(by_postcode, number, "nw16xe")
    assert service.cancel(by_postcode, number).kind == "cancelled"
    clock.now = NOW + timedelta(hours=2, seconds=1)  # grants last two hours
    assert not service.can_access(by_email, number)


def test_lockout_after_five_failures_and_its_expiry(shop: Shop, service: OrderService, clock: Clock) -> None:
    number = new_order(shop, PAID, email="lock.me@example.com")
    who = me()
    for _ in range(4):
        assert service.verify_guest(who, number, "wrong@example.com") is False
    with pytest.raises(VerificationLocked) as err:
        service.verify_guest(who, number, "wrong@example.com")
    assert err.value.until == NOW + timedelta(minutes=15)
    with pytest.raises(VerificationLocked):  # even the right answer waits
        service.verify_guest(who, number, "lock.me@example.com")
    assert service.verification_locked_until(who) == NOW + timedelta(minutes=15)
    clock.now = NOW + timedelta(minutes=15, seconds=1)
    assert service.verification_locked_until(who) is None
    assert service.verify_guest(who, number, "lock.me@example.com")


def test_failures_outside_the_window_do_not_add_up(shop: Shop, service: OrderService, clock: Clock) -> None:
    number = new_order(shop, PAID, email="slow@example.com")
    who = me()
    for minute in (0, 5, 10, 16, 21, 26, 31):  # never 5 within 15 minutes
        clock.now = NOW + timedelta(minutes=minute)
        assert service.verify_guest(who, number, "nope") is False


def test_success_resets_the_conversation_count(shop: Shop, service: OrderService) -> None:
    number = new_order(shop, PAID, email="reset@example.com")
    who = me()
    for _ in range(4):
        assert not service.verify_guest(who, number, "x@example.com")
    assert service.verify_guest(who, number, "reset@example.com")
    for _ in range(4):
        assert not service.verify_guest(who, number, "x@example.com")


def test_client_key_is_throttled_across_conversations(shop: Shop, service: OrderService) -> None:
    number = new_order(shop, PAID, email="client@example.com")
    client = f"203.0.113.{random.randint(1, 250)}-{uuid.uuid4().hex[:6]}"
    for _ in range(4):
        assert not service.verify_guest(me(client_key=client), number, "x@example.com")
    with pytest.raises(VerificationLocked):
        service.verify_guest(me(client_key=client), number, "x@example.com")
    with pytest.raises(VerificationLocked):
        service.verify_guest(me(client_key=client), number, "client@example.com")
    assert service.verify_guest(me(client_key="another-client"), number, "client@example.com")


def test_no_enumeration(shop: Shop, service: OrderService) -> None:
    number = new_order(shop, PAID, email="real@example.com")
    unknown = "NW-899999"
    # verification: the same False (and the same count towards the lock) for both
    assert service.verify_guest(me(), unknown, "real@example.com") is False
    assert service.verify_guest(me(), number, "someone@example.com") is False
    assert service.verify_guest(me(), number, "") is False
    # reading: the same error and wording for a missing order and someone else's
    errors = []
    for n in (unknown, number):
        with pytest.raises(NotAuthorized) as err:
            service.get(me(new_customer(shop)), n)
        errors.append(str(err.value))
    assert errors == [NOT_FOUND_TEXT, NOT_FOUND_TEXT]


# --------------------------------------------------------------------------- authorization


def test_shopper_cannot_read_or_change_someone_elses_order(shop: Shop, service: OrderService) -> None:
    alice, bob = new_customer(shop), new_customer(shop)
    bobs = {status: new_order(shop, status, bob, delivered_days_ago=3 if status == DELIVERED else None)
            for status in (PAID, DELIVERED)}
    alices = new_order(shop, PAID, alice)
    guest_number = new_order(shop, PAID, email="carol@example.com")
    carol = me()  # a guest who proved her own order
    assert service.verify_guest(carol, guest_number, "carol@example.com")
    before = {n: snapshot(shop, n) for n in bobs.values()}
    with shop.sessions() as session:
        every_number = session.scalars(select(Order.number)).all()
    elsewhere = parse_address("1 Main St, Austin, TX 78701")
    for requester, own in ((me(alice), {alices}), (carol, {guest_number})):
        for number in every_number:  # guessing every number there is
            assert service.can_access(requester, number) == (number in own)
        for number in bobs.values():
            calls = [
                lambda n=number, r=requester: service.get(r, n),
                lambda n=number, r=requester: service.cancel(r, n),
                lambda n=number, r=requester: service.change_address(r, n, elsewhere),
                lambda n=number, r=requester: service.start_return(r, n, None, "too_small", f"steal-{n}"),
                lambda n=number, r=requester: service.returnable_items(r, n),
                lambda n=number, r=requester: service.refund_status(r, n),
                lambda n=number, r=requester: service.cancellation_fee(r, n),
                lambda n=number, r=requester: service.delivery_estimate(r, n),
            ]
            for call in calls:
                with pytest.raises(NotAuthorized):
                    call()
    assert {n: snapshot(shop, n) for n in bobs.values()} == before
    assert service.recent_orders(me(alice))[0].number == alices
    assert bobs[PAID] not in {o.number for o in service.recent_orders(me(alice), limit=50)}


def test_grant_belongs_to_one_conversation(shop: Shop, service: OrderService) -> None:
    number = new_order(shop, PAID, email="dan@example.com")
    dan = me()
    assert service.verify_guest(dan, number, "dan@example.com")
    assert service.can_access(dan, number) and not service.can_access(me(), number)
    with shop.sessions() as session:
        grants = session.scalars(select(OrderAccessGrant).where(
            OrderAccessGrant.conversation_id == dan.conversation_id)).all()
    assert len(grants) == 1 and grants[0].expires_at == NOW + timedelta(hours=2)


# --------------------------------------------------------------------------- all or nothing


def _break_refunds(shop: Shop) -> None:
    with shop.engine.begin() as conn:
        if shop.backend == "sqlite":
            conn.execute(text("CREATE TRIGGER refunds_broken BEFORE INSERT ON refunds "
                              "BEGIN SELECT RAISE(ABORT, 'refunds are broken'); END"))
        else:
            conn.execute(text("CREATE FUNCTION refunds_broken() RETURNS trigger AS $$ BEGIN "
                              "RAISE EXCEPTION 'refunds are broken'; END $$ LANGUAGE plpgsql"))
            conn.execute(text("CREATE TRIGGER refunds_broken BEFORE INSERT ON refunds "
                              "FOR EACH ROW EXECUTE FUNCTION refunds_broken()"))


def _fix_refunds(shop: Shop) -> None:
    with shop.engine.begin() as conn:
        if shop.backend == "sqlite":
            conn.execute(text("DROP TRIGGER refunds_broken"))
        else:
            conn.execute(text("DROP TRIGGER refunds_broken ON refunds"))
            conn.execute(text("DROP FUNCTION refunds_broken()"))


def test_failure_half_way_leaves_nothing_half_done(shop: Shop, service: OrderService) -> None:
    cid = new_customer(shop)
    paid = new_order(shop, PAID, cid)
    delivered = new_order(shop, DELIVERED, cid, delivered_days_ago=4)
    before = {n: snapshot(shop, n) for n in (paid, delivered)}
    _break_refunds(shop)  # the refund is the last write of a cancel and of a return
    try:
        with pytest.raises(DBAPIError, match="refunds are broken"):
            service.cancel(me(cid), paid)
        with pytest.raises(DBAPIError, match="refunds are broken"):
            service.start_return(me(cid), delivered, None, "too_small", "broken-" + delivered)
    finally:
        _fix_refunds(shop)
    assert {n: snapshot(shop, n) for n in (paid, delivered)} == before  # status, stock, items, rows
    assert service.cancel(me(cid), paid).kind == "cancelled"  # and it works once repaired
    assert service.start_return(me(cid), delivered, None, "too_small", "broken-" + delivered).rma


def test_runs_on_the_backend_it_claims(shop: Shop) -> None:
    assert shop.engine.dialect.name == ("sqlite" if shop.backend == "sqlite" else "postgresql")
    with shop.sessions() as session:
        assert session.scalar(select(func.count(Order.id))) > 200
