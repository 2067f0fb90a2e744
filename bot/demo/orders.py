"""Deterministic demo customers and orders over the demo catalog.

The same seed, ``now`` and catalog always give the same customers and orders. Orders cover every
status (placed, paid, shipped with carrier and tracking number, delivered inside and outside the
return window, cancelled, returned, refund pending, refunded) with shipments, returns and refunds
that agree with it. Each customer has 1 to 12 orders whose items go together (same department,
often the same brand), so recommendations have a co-purchase signal to learn from.

Loading is idempotent: customers are keyed by email and orders by number, and what exists is
left alone, so running it again (even later, with another ``now``) changes nothing.

A few **showcase** customers, one per interesting state, are documented for trying the flows by
hand; ``demo_customers`` lists them for the gateway's "sign in as a demo customer" switch.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.catalog.tables import Product
from bot.knowledge.shop_policy_file import ShopPolicy, get_policy
from bot.shop.orders import RETURN_REASONS, utcnow
from bot.shop.tables import (
    CANCELLED,
    DELIVERED,
    PAID,
    PLACED,
    REFUND_PENDING,
    REFUNDED,
    RETURNED,
    SHIPPED,
    Customer,
    Order,
    OrderItem,
    Refund,
    Return,
    Shipment,
)

FIRST_NUMBER = 100001

FIRST_NAMES = (
    "Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Sophia", "Elijah", "Mia", "James", "Harper", "Lucas",
    "Evelyn", "Mason", "Aria", "Ethan", "Chloe", "Logan", "Zoe", "Mateo", "Nora", "Leo", "Maya", "Julian",
    "Priya", "Arjun", "Yuki", "Kenji", "Fatima", "Omar", "Lena", "Jonas", "Camille", "Hugo", "Sofia", "Diego",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee",
    "Thompson", "White", "Harris", "Clark", "Lewis", "Walker", "Hall", "Young", "Patel", "Nguyen", "Kim",
    "Schmidt", "Dubois", "Rossi", "Tanaka", "Okafor",
)
STREETS = (
    "Maple Avenue", "Oak Street", "Pine Road", "Cedar Lane", "Elm Street", "Washington Avenue", "Lake Drive",
    "Hillside Road", "Park Place", "Sunset Boulevard", "River Road", "Church Street", "Highland Avenue",
)
# (city, region, postcode, country); mostly US, a few international.
PLACES = (
    ("Springfield", "IL", "62704", "US"), ("Austin", "TX", "78701", "US"), ("Portland", "OR", "97205", "US"),
    ("Denver", "CO", "80202", "US"), ("Seattle", "WA", "98101", "US"), ("Boston", "MA", "02108", "US"),
    ("San Francisco", "CA", "94110", "US"), ("Chicago", "IL", "60614", "US"), ("Atlanta", "GA", "30303", "US"),
    ("Madison", "WI", "53703", "US"), ("Brooklyn", "NY", "11201", "US"), ("Phoenix", "AZ", "85004", "US"),
    ("Raleigh", "NC", "27601", "US"), ("Minneapolis", "MN", "55401", "US"), ("Miami", "FL", "33131", "US"),
    ("London", "", "NW1 6XE", "GB"), ("Manchester", "", "M1 1AE", "GB"), ("Toronto", "ON", "M5H 2N2", "CA"),
    ("Berlin", "", "10115", "DE"), ("Paris", "", "75001", "FR"),
)
US_CARRIERS = ("UPS", "USPS", "FedEx")


@dataclass(frozen=True)
class Showcase:
    """A demo customer whose newest order is in one interesting state, for trying a flow by hand."""

    first: str
    last: str
    status: str
    note: str  # what to try with them
    consent: bool = True
    postcode_place: int = 0  # index into PLACES
    guest: bool = False  # the order is a guest order (no account): verify with number + email/postcode


SHOWCASES: tuple[Showcase, ...] = (
    Showcase("Ava", "Martin", PLACED, "order placed, not paid yet: cancel it or change its address", True, 0),
    Showcase("Ben", "Carter", PAID, "paid, not shipped: cancelling starts a refund", True, 1),
    Showcase("Chloe", "Nguyen", SHIPPED, "on its way: track it; cancelling offers a return instead", True, 2),
    Showcase("Daniel", "Kim", DELIVERED, "delivered 6 days ago: return some items", True, 3),
    Showcase("Emma", "Rossi", "delivered_old", "delivered 2 months ago: the return window has passed", False, 4),
    Showcase("Felix", "Wagner", CANCELLED, "cancelled after payment: refund status", True, 18),
    Showcase("Grace", "Lee", RETURNED, "return requested, parcel on its way back: track the refund", True, 5),
    Showcase("Hugo", "Silva", REFUND_PENDING, "return received, refund pending", False, 15),
    Showcase("Isla", "Brown", REFUNDED, "returned and refunded", True, 17),
    Showcase("Sam", "Taylor", PAID, "guest order (no account): verify with the order number and email or postcode",
             False, 6, guest=True),
)


@dataclass(frozen=True)
class DemoCustomer:
    id: int | None  # None for a guest (no account)
    name: str
    email: str
    postcode: str
    note: str
    order_number: str  # the showcase order
    status: str  # its status now


@dataclass
class DemoStats:
    customers_added: int = 0
    orders_added: int = 0
    orders_existing: int = 0


# --------------------------------------------------------------------------- building blocks


def _email(first: str, last: str, taken: set[str]) -> str:
    base = f"{first}.{last}".lower().replace(" ", "")
    email, n = f"{base}@example.com", 2
    while email in taken:
        email, n = f"{base}{n}@example.com", n + 1
    taken.add(email)
    return email


def _tracking_number(rng: random.Random, carrier: str) -> str:
    digits = "0123456789"
    if carrier == "UPS":
        return "1Z" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTVWXY") for _ in range(16))
    if carrier == "FedEx":
        return "".join(rng.choice(digits) for _ in range(12))
    if carrier == "USPS":
        return "9400" + "".join(rng.choice(digits) for _ in range(18))
    return "".join(rng.choice(digits) for _ in range(10))  # DHL


class _Catalog:
    """Priced products grouped for correlated baskets (department, and department + brand)."""

    def __init__(self, products: list[Product]) -> None:
        self.products = products
        self.by_department: dict[str, list[Product]] = defaultdict(list)
        self.by_brand: dict[tuple[str, str], list[Product]] = defaultdict(list)
        for p in products:
            self.by_department[p.department].append(p)
            self.by_brand[(p.department, p.brand)].append(p)
        self.departments = sorted(self.by_department)

    def basket(self, rng: random.Random, departments: list[str], size: str) -> list[tuple[Product, int, str]]:
        department = rng.choice(departments)
        pool = self.by_department[department]
        anchor = rng.choice(pool)
        count = rng.choices([1, 2, 3, 4], weights=[40, 30, 20, 10])[0]
        chosen = [anchor]
        same_brand = [p for p in self.by_brand[(department, anchor.brand)] if p.id != anchor.id]
        while len(chosen) < count:
            source = same_brand if same_brand and rng.random() < 0.6 else pool
            candidate = rng.choice(source)
            if candidate not in chosen:
                chosen.append(candidate)
            elif len(chosen) >= len(pool):
                break
        lines = []
        for p in chosen:
            sizes = list(p.sizes or [])
            chosen_size = size if size in sizes else (rng.choice(sizes) if sizes else "")
            lines.append((p, 2 if rng.random() < 0.12 else 1, chosen_size))
        return lines


def add_order(
    session: Session,
    rng: random.Random,
    *,
    number: str,
    customer: Customer | None,
    email: str,
    name: str,
    place: tuple[str, str, str, str],
    lines: list[tuple[Product, int, str]],
    status: str,
    placed_at: datetime,
    now: datetime,
    policy: ShopPolicy,
    method: str | None = None,
    delivered_at: datetime | None = None,
) -> Order:
    """Create one order in ``status`` with the shipment, return and refunds that go with it.

    ``delivered_at`` fixes the delivery time of delivered (and returned/refunded) orders, so a
    caller can place them inside or outside the return window exactly. The order is flushed.
    """
    order = _build_order(session, rng, number=number, customer=customer, email=email, name=name, place=place,
                         lines=lines, status=status, placed_at=placed_at, now=now, policy=policy, method=method,
                         delivered_at=delivered_at)
    _link_returns(session, order)
    return order


def _build_order(
    session: Session,
    rng: random.Random,
    *,
    number: str,
    customer: Customer | None,
    email: str,
    name: str,
    place: tuple[str, str, str, str],
    lines: list[tuple[Product, int, str]],
    status: str,
    placed_at: datetime,
    now: datetime,
    policy: ShopPolicy,
    method: str | None,
    delivered_at: datetime | None,
) -> Order:
    city, region, postcode, country = place
    methods = {m["name"]: m for m in policy.fact("shipping.methods")}
    method = method or rng.choices(["Standard", "Express", "Next day"], weights=[75, 20, 5])[0]
    spec = methods.get(method, {"price": 4.95, "days_min": 3, "days_max": 5})
    subtotal = round(sum(float(p.price or 0) * q for p, q, _ in lines), 2)
    free_over = float(policy.fact("shipping.free_over"))
    fee = 0.0 if method == "Standard" and subtotal >= free_over else float(spec["price"])
    if country != "US":
        fee = float(policy.fact("shipping.international.price_from"))
    order = Order(
        number=number, customer=customer, email=email.lower(), status=status, currency="USD",
        subtotal=subtotal, shipping_fee=round(fee, 2), total=round(subtotal + fee, 2), shipping_method=method,
        ship_name=name, ship_line1=f"{rng.randint(2, 980)} {rng.choice(STREETS)}",
        ship_line2=rng.choice(["", "", "", f"Apt {rng.randint(1, 40)}"]),
        ship_city=f"{city}, {region}" if region and country in ("US", "CA") else city,
        ship_postcode=postcode, ship_country=country, placed_at=placed_at, updated_at=placed_at,
    )
    order.items = [
        OrderItem(product_id=p.id, sku=p.sku, title=p.title, size=size, color=p.color, quantity=q,
                  unit_price=float(p.price or 0), returned_quantity=0)
        for p, q, size in lines
    ]
    session.add(order)
    if status == PLACED:
        return order
    order.paid_at = placed_at + timedelta(minutes=rng.randint(1, 90))
    if status == CANCELLED:
        order.cancelled_at = order.paid_at + timedelta(hours=rng.randint(1, 20))
        refund_done = now - order.cancelled_at > timedelta(days=7)
        order.refunds = [Refund(amount=order.total, reason="cancellation", created_at=order.cancelled_at,
                                status="refunded" if refund_done else "pending",
                                completed_at=order.cancelled_at + timedelta(days=3) if refund_done else None)]
        order.updated_at = order.cancelled_at
        return order
    if status == PAID:
        return order
    carrier = "DHL" if country != "US" else ("UPS" if method != "Standard" else rng.choice(US_CARRIERS))
    transit = int(spec["days_max"]) if country == "US" else 9
    if delivered_at is not None:
        shipped_at = delivered_at - timedelta(days=transit, hours=rng.randint(0, 8))
    else:
        shipped_at = order.paid_at + timedelta(hours=rng.randint(12, 40))
    shipment = Shipment(carrier=carrier, tracking_number=_tracking_number(rng, carrier), shipped_at=shipped_at,
                        expected_delivery=(shipped_at + timedelta(days=transit)).replace(hour=20, minute=0, second=0,
                                                                                           microsecond=0))
    order.shipment = shipment
    order.updated_at = shipped_at
    if status == SHIPPED:
        return order
    shipment.delivered_at = delivered_at or min(shipped_at + timedelta(days=transit, hours=-rng.randint(0, 20)),
                                                now - timedelta(hours=2))
    order.updated_at = shipment.delivered_at
    if status == DELIVERED:
        return order
    # returned (parcel on its way back), refund_pending (received), refunded (money sent back)
    for item in order.items:
        item.returned_quantity = item.quantity
    # every step lies in the past: at most ``now`` minus an hour
    latest = now - timedelta(hours=1)
    requested = min(shipment.delivered_at + timedelta(days=rng.randint(1, 10), hours=rng.randint(0, 12)), latest)
    ret = Return(
        rma=f"RMA-D{number.split('-')[-1]}", status="requested", reason=rng.choice(sorted(RETURN_REASONS)),
        items=[], amount=subtotal, idempotency_key=f"demo:{number}", created_at=requested,
    )
    order.returns = [ret]
    refund = Refund(amount=subtotal, reason="return", status="pending", created_at=requested)
    order.refunds = [refund]
    if status in (REFUND_PENDING, REFUNDED):
        ret.status = "received"
        ret.received_at = min(requested + timedelta(days=rng.randint(3, 6)), latest)
    if status == REFUNDED:
        ret.status = "refunded"
        refund.status = "refunded"
        refund.completed_at = min((ret.received_at or requested) + timedelta(days=rng.randint(1, 4)), latest)
    order.updated_at = refund.completed_at or ret.received_at or requested
    return order


def _link_returns(session: Session, order: Order) -> None:
    """Fill the return's item list and the refund's return id once the rows have ids."""
    session.flush()
    if not order.returns:
        return
    ret = order.returns[0]
    ret.items = [{"item_id": i.id, "quantity": i.quantity} for i in order.items]
    for refund in order.refunds:
        if refund.reason == "return":
            refund.return_id = ret.id


# --------------------------------------------------------------------------- the whole demo


def _status_for_age(rng: random.Random, age: timedelta) -> str:
    days = age.total_seconds() / 86400
    if days < 1:
        return rng.choice([PLACED, PAID])
    if days < 3:
        return PAID if rng.random() < 0.8 else PLACED
    if days < 6:
        return SHIPPED
    r = rng.random()
    if r < 0.07:
        return CANCELLED
    if r < 0.17:
        if days < 25:
            return rng.choice([RETURNED, REFUND_PENDING])
        return REFUNDED
    return DELIVERED


def _plan(rng: random.Random, customers: int) -> list[dict[str, Any]]:
    """Who the demo customers are (showcases first), deterministic for the seed."""
    taken: set[str] = set()
    people: list[dict[str, Any]] = []
    for show in SHOWCASES:
        people.append({"first": show.first, "last": show.last, "email": _email(show.first, show.last, taken),
                       "place": PLACES[show.postcode_place], "consent": show.consent, "showcase": show})
    while len(people) < customers:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        place = PLACES[rng.randrange(len(PLACES))] if rng.random() < 0.2 else PLACES[rng.randrange(15)]
        people.append({"first": first, "last": last, "email": _email(first, last, taken), "place": place,
                       "consent": rng.random() < 0.55, "showcase": None})
    return people


def load_demo_orders(
    session: Session,
    now: datetime | None = None,
    seed: int = 7,
    customers: int = 60,
    policy: ShopPolicy | None = None,
) -> DemoStats:
    """Insert the demo customers and their orders that are not there yet (idempotent)."""
    now = (now or utcnow()).replace(microsecond=0)
    policy = policy or get_policy()
    products = list(session.scalars(select(Product).where(Product.price.is_not(None), Product.price > 0)
                                    .order_by(Product.id)))
    if not products:
        raise ValueError("the catalog has no priced products: load the demo catalog first")
    catalog = _Catalog(products)
    rng = random.Random(seed)
    stats = DemoStats()
    existing_numbers = set(session.scalars(select(Order.number).where(Order.number.like("NW-%"))))
    next_number = FIRST_NUMBER

    def number() -> str:
        nonlocal next_number
        value = f"NW-{next_number}"
        next_number += 1
        return value

    for person in _plan(rng, customers):
        show: Showcase | None = person["showcase"]
        name = f"{person['first']} {person['last']}"
        favourites = rng.sample(catalog.departments, k=min(2, len(catalog.departments)))
        size = rng.choice(["S", "M", "L", "XL", "9", "10"])
        phone = f"+1 555 01{rng.randint(10, 99)} {rng.randint(1000, 9999)}"  # drawn always: same stream on re-runs
        customer: Customer | None = None
        if not (show and show.guest):
            customer = session.scalar(select(Customer).where(Customer.email == person["email"]))
            if customer is None:
                customer = Customer(email=person["email"], name=name, postcode=person["place"][2], phone=phone,
                                    consent_personalization=person["consent"],
                                    consent_updated_at=now - timedelta(days=400) if person["consent"] else None,
                                    created_at=now - timedelta(days=600))
                session.add(customer)
                stats.customers_added += 1
        # history: older orders, statuses following their age
        history = 0 if show and show.guest else rng.choices(range(1, 13), weights=[18, 16, 13, 11, 9, 8, 6, 5, 4,
                                                                                   4, 3, 3])[0]
        if show and history > 1:
            history -= 1  # the showcase order is one of their orders
        # a showcase customer's history is older than their showcase order, which stays their newest
        low = 75 if show else 0.05
        placed = sorted(now - timedelta(days=low + (540 - low) * rng.random() ** 1.7) for _ in range(history))
        orders: list[tuple[str, datetime, datetime | None]] = [(_status_for_age(rng, now - t), t, None)
                                                               for t in placed]
        if show:
            orders.append(_showcase_timing(show, now))
        for status, placed_at, delivered_at in orders:
            num = number()
            lines = catalog.basket(rng, favourites, size)
            sub_rng = random.Random(f"{seed}:{num}")
            if num in existing_numbers:
                stats.orders_existing += 1
                continue
            add_order(session, sub_rng, number=num, customer=customer, email=person["email"], name=name,
                              place=person["place"], lines=lines, status=status, placed_at=placed_at.replace(
                                  microsecond=0), now=now, policy=policy,
                              method="Standard" if show else None, delivered_at=delivered_at)
            stats.orders_added += 1
    session.flush()
    return stats


def _showcase_timing(show: Showcase, now: datetime) -> tuple[str, datetime, datetime | None]:
    """(status, placed_at, delivered_at) that put the showcase order in its state for ``now``."""
    days = timedelta(days=1)
    match show.status:
        case "placed":
            return PLACED, now - timedelta(hours=3), None
        case "paid":
            return PAID, now - timedelta(hours=20), None
        case "shipped":
            return SHIPPED, now - 2 * days, None
        case "delivered":
            return DELIVERED, now - 12 * days, now - 6 * days
        case "delivered_old":
            return DELIVERED, now - 70 * days, now - 62 * days
        case "cancelled":
            return CANCELLED, now - 3 * days, None
        case _:  # returned, refund_pending, refunded
            return show.status, now - 24 * days, now - 18 * days


def demo_customers(session: Session) -> list[DemoCustomer]:
    """The showcase customers (and the guest) with their showcase order as it stands now."""
    result = []
    for show in SHOWCASES:
        email = f"{show.first}.{show.last}@example.com".lower()
        customer = None if show.guest else session.scalar(select(Customer).where(Customer.email == email))
        if customer is None and not show.guest:
            continue
        query = select(Order).where(Order.email == email).order_by(Order.placed_at.desc(), Order.id.desc()).limit(1)
        order = session.scalar(query)
        if order is None:
            continue
        result.append(DemoCustomer(id=customer.id if customer else None, name=f"{show.first} {show.last}",
                                   email=email, postcode=order.ship_postcode, note=show.note,
                                   order_number=order.number, status=order.status))
    return result
