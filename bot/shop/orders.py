"""The order service: who may see an order, and every change a shopper can make to one.

Access rules: a shopper signed in through the shop (the gateway verified a signed token and set
``Requester.customer_id``) sees their own orders; a guest proves an order is theirs with the order
number plus the order's email or delivery postcode (``verify_guest``), which grants this
conversation access for a while. Anything else gets :class:`NotAuthorized` with one wording,
whether the order does not exist or belongs to someone else.

Every write runs in one transaction and is guarded by a conditional ``UPDATE`` on the current
status, so a confirmation sent twice, or two workers racing, changes an order once. The views
returned are plain frozen data: no ORM object leaves this module.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache, partial
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from bot.catalog.tables import Product
from bot.clock import utcnow
from bot.config import Settings, get_settings
from bot.db import rows_affected
from bot.knowledge.shop_policy_file import ShopPolicy, get_policy
from bot.shop.address import COUNTRY_NAMES, Address
from bot.shop.tables import (
    BEFORE_SHIPMENT,
    CANCELLED,
    DELIVERED,
    PAID,
    PLACED,
    REFUND_PENDING,
    REFUNDED,
    RETURNED,
    SHIPPED,
    Order,
    OrderAccessGrant,
    OrderItem,
    Refund,
    Return,
    VerificationThrottle,
)

# --------------------------------------------------------------------------- errors

NOT_FOUND_TEXT = (
    "I can't find an order with that number for you. Please check the number, or confirm it's yours "
    "with the email address or delivery postcode used for the order."
)


class OrderError(Exception):
    """An order request that cannot be done; the message is safe to show the shopper."""


class NotAuthorized(OrderError):
    """No such order *for this requester*: the same wording whether it is missing or someone else's."""

    def __init__(self, message: str = NOT_FOUND_TEXT) -> None:
        super().__init__(message)


class InvalidOrderNumber(OrderError):
    """The text is not shaped like an order number at all (says nothing about any order)."""


class OrderStateError(OrderError):
    """The order exists and is the requester's, but its state does not allow this (e.g. it shipped).

    ``kind`` is a short code the actions can branch on: "shipped", "delivered", "cancelled",
    "returned", "not_delivered", "window_passed", "nothing_to_return".
    """

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class VerificationLocked(OrderError):
    """Too many failed verifications: the form is locked until ``until`` (naive UTC)."""

    def __init__(self, until: datetime) -> None:
        super().__init__(
            "For your security, order look-ups are paused after several attempts that didn't match. "
            "Please try again in a little while, or contact our support team."
        )
        self.until = until


# --------------------------------------------------------------------------- requester and views


@dataclass(frozen=True)
class Requester:
    """Who is asking, as the actions know it."""

    conversation_id: str  # Rasa sender id
    customer_id: int | None = None  # set only when the gateway verified a signed token
    client_key: str | None = None  # e.g. the client IP; throttled too when given


STATUS_LABELS = {
    PLACED: "Order placed, waiting for payment",
    PAID: "Paid, being prepared for shipping",
    SHIPPED: "On its way",
    DELIVERED: "Delivered",
    CANCELLED: "Cancelled",
    RETURNED: "Returned, waiting for the parcel to reach us",
    REFUND_PENDING: "Return received, refund on its way",
    REFUNDED: "Refunded",
}

RETURN_REASONS: dict[str, str] = {
    "too_small": "Too small",
    "too_large": "Too large",
    "not_as_described": "Not as described or pictured",
    "damaged": "Arrived damaged or faulty",
    "wrong_item": "Wrong item sent",
    "changed_mind": "Changed my mind",
    "arrived_late": "Arrived too late",
    "other": "Other reason",
}

REFUND_STATUS_LABELS = {"pending": "Refund on its way", "refunded": "Refunded"}

# Carrier tracking pages; the carrier is matched on the start of its name ("UPS Ground" -> UPS).
TRACKING_URLS = {
    "UPS": "https://www.ups.com/track?tracknum={number}",
    "FEDEX": "https://www.fedex.com/fedextrack/?trknbr={number}",
    "USPS": "https://tools.usps.com/go/TrackConfirmAction?tLabels={number}",
    "DHL": "https://www.dhl.com/global-en/home/tracking/tracking-express.html?tracking-id={number}",
}


def tracking_url(carrier: str | None, number: str | None) -> str | None:
    """The carrier's public tracking page for ``number``, or None for an unknown carrier."""
    if not carrier or not number:
        return None
    key = re.sub(r"[^A-Z]", "", carrier.upper())
    for name, pattern in TRACKING_URLS.items():
        if key.startswith(name):
            return pattern.format(number=number)
    return None


@dataclass(frozen=True)
class ItemView:
    id: int
    product_id: int | None
    title: str
    size: str
    color: str
    quantity: int
    unit_price: float
    returnable_quantity: int  # 0 when the order cannot be returned (any more)
    returned_quantity: int = 0

    @property
    def total(self) -> float:
        return round(self.unit_price * self.quantity, 2)


@dataclass(frozen=True)
class OrderView:
    number: str
    status: str
    status_label: str
    placed_at: datetime
    items: tuple[ItemView, ...]
    subtotal: float
    shipping_fee: float
    total: float
    currency: str
    shipping_method: str
    carrier: str | None
    tracking_number: str | None
    tracking_url: str | None
    shipped_at: datetime | None
    expected_delivery: datetime | None
    delivered_at: datetime | None
    address_lines: tuple[str, ...]
    can_cancel: bool
    can_change_address: bool
    can_return: bool
    return_deadline: datetime | None  # delivered_at + the policy's return window

    @property
    def item_count(self) -> int:
        return sum(i.quantity for i in self.items)


@dataclass(frozen=True)
class RefundView:
    id: int
    order_number: str
    amount: float
    currency: str
    status: str  # pending | refunded
    status_label: str
    reason: str  # cancellation | return
    created_at: datetime
    completed_at: datetime | None
    rma: str | None  # the return it belongs to
    expected_by: date | None  # when a pending refund should arrive; None while the return is on its way


@dataclass(frozen=True)
class CancelOutcome:
    kind: str  # "cancelled" | "already_cancelled" | "not_cancellable"
    order: OrderView
    refund: RefundView | None = None  # the refund the cancellation started (paid orders)

    @property
    def cancelled(self) -> bool:
        return self.kind == "cancelled"


@dataclass(frozen=True)
class ReturnView:
    rma: str
    order_number: str
    status: str  # requested | received | refunded
    reason: str  # a key of RETURN_REASONS
    reason_label: str
    items: tuple[tuple[ItemView, int], ...]  # (item, quantity returned)
    amount: float
    currency: str
    created_at: datetime
    instructions: tuple[str, ...]  # label, address, conditions: shopper-facing sentences from the policy


@dataclass(frozen=True)
class FeeView:
    order_number: str
    cancellable: bool
    fee: float | None  # None when the order can no longer be cancelled
    currency: str
    explanation: str  # one shopper-facing sentence from the policy


@dataclass(frozen=True)
class DeliveryView:
    order_number: str
    status: str
    status_label: str
    shipping_method: str
    carrier: str | None
    tracking_number: str | None
    tracking_url: str | None
    earliest: date | None  # None when delivered or cancelled
    latest: date | None
    delivered_at: datetime | None
    source: str  # "carrier" (the shipment's expected date) | "estimate" (policy days) | "delivered" | "none"


# --------------------------------------------------------------------------- helpers

_NUMBER_RE = re.compile(r"^([A-Z]{2,4})?-?(\d{4,10})$")


def normalize_order_number(text: str, prefix: str | None = None) -> str | None:
    """``"#nw 100234"`` -> ``"NW-100234"``; bare digits get the shop's prefix; None if not a number."""
    compact = re.sub(r"[\s#.:_/]+", "", (text or "").upper())
    compact = compact.replace("–", "-").replace("—", "-")
    match = _NUMBER_RE.match(compact)
    if not match:
        return None
    head = match.group(1) or (prefix or get_settings().order_number_prefix).upper()
    return f"{head}-{match.group(2)}"


def _normalize_proof(text: str) -> str:
    text = (text or "").strip().lower()
    return text if "@" in text else re.sub(r"[\s-]+", "", text)


def add_business_days(start: date, days: int) -> date:
    current = start
    while days > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current


@dataclass(frozen=True)
class AccessRules:
    """Guest verification and throttling rules (from bot.config settings by default)."""

    grant_ttl: timedelta = timedelta(hours=2)
    max_failures: int = 5
    failure_window: timedelta = timedelta(minutes=15)
    lock_duration: timedelta = timedelta(minutes=15)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> AccessRules:
        s = settings or get_settings()
        return cls(
            grant_ttl=timedelta(minutes=s.order_grant_minutes),
            max_failures=s.verify_max_failures,
            failure_window=timedelta(minutes=s.verify_window_minutes),
            lock_duration=timedelta(minutes=s.verify_lock_minutes),
        )


_RMA_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_rma() -> str:
    return "RMA-" + "".join(secrets.choice(_RMA_ALPHABET) for _ in range(8))


# --------------------------------------------------------------------------- the service


class OrderService:
    """Orders as a shopper may see and change them. Thread-safe; one per process is enough."""

    def __init__(
        self,
        session_factory: Callable[[], Session],
        policy: ShopPolicy,
        clock: Callable[[], datetime] = utcnow,
        rules: AccessRules | None = None,
        number_prefix: str | None = None,
    ) -> None:
        self._sessions = session_factory
        self.policy = policy
        self.clock = clock
        self.rules = rules or AccessRules.from_settings()
        self.number_prefix = number_prefix or get_settings().order_number_prefix

    # ----------------------------------------------------------------- plumbing

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        """One transaction: commit on success, roll back everything on any error."""
        session = self._sessions()
        try:
            with session.begin():
                yield session
        finally:
            session.close()

    def _number(self, text: str) -> str:
        number = normalize_order_number(text, self.number_prefix)
        if number is None:
            example = f"{self.number_prefix}-100234"
            raise InvalidOrderNumber(f"That doesn't look like an order number. Order numbers look like {example}.")
        return number

    def _find(self, session: Session, number: str) -> Order | None:
        return session.scalar(
            select(Order)
            .where(Order.number == number)
            .options(selectinload(Order.items), selectinload(Order.shipment), selectinload(Order.returns),
                     selectinload(Order.refunds))
        )

    def _allowed(self, session: Session, requester: Requester, order: Order, now: datetime) -> bool:
        if requester.customer_id is not None and order.customer_id == requester.customer_id:
            return True
        grant = session.scalar(
            select(OrderAccessGrant.id).where(
                OrderAccessGrant.conversation_id == requester.conversation_id,
                OrderAccessGrant.order_id == order.id,
                OrderAccessGrant.expires_at > now,
            )
        )
        return grant is not None

    def _authorized(self, session: Session, requester: Requester, number: str, now: datetime) -> Order:
        order = self._find(session, self._number(number))
        if order is None or not self._allowed(session, requester, order, now):
            raise NotAuthorized()
        return order

    # ----------------------------------------------------------------- policy facts

    @property
    def return_window(self) -> timedelta:
        return timedelta(days=int(self.policy.fact("returns.window_days")))

    def _method(self, name: str) -> dict[str, Any] | None:
        for method in self.policy.fact("shipping.methods"):
            if str(method.get("name", "")).lower() == (name or "").lower():
                return dict(method)
        return None

    # ----------------------------------------------------------------- views

    def _delivered_at(self, order: Order) -> datetime | None:
        return order.shipment.delivered_at if order.shipment else None

    def _return_deadline(self, order: Order) -> datetime | None:
        delivered = self._delivered_at(order)
        return delivered + self.return_window if delivered else None

    def _returnable(self, order: Order, now: datetime) -> bool:
        deadline = self._return_deadline(order)
        return order.status == DELIVERED and deadline is not None and now <= deadline

    def _view(self, order: Order, now: datetime) -> OrderView:
        returnable = self._returnable(order, now)
        items = tuple(
            ItemView(
                id=i.id, product_id=i.product_id, title=i.title, size=i.size, color=i.color, quantity=i.quantity,
                unit_price=float(i.unit_price),
                returnable_quantity=(i.quantity - i.returned_quantity) if returnable else 0,
                returned_quantity=i.returned_quantity,
            )
            for i in order.items
        )
        ship = order.shipment
        city = " ".join(p for p in [order.ship_postcode, order.ship_city] if p)
        if order.ship_country in ("US", "CA", "GB"):
            city = " ".join(p for p in [order.ship_city, order.ship_postcode] if p)
        country = COUNTRY_NAMES.get(order.ship_country, order.ship_country)
        lines = tuple(p for p in [order.ship_name, order.ship_line1, order.ship_line2, city, country] if p)
        return OrderView(
            number=order.number,
            status=order.status,
            status_label=STATUS_LABELS.get(order.status, order.status),
            placed_at=order.placed_at,
            items=items,
            subtotal=float(order.subtotal),
            shipping_fee=float(order.shipping_fee),
            total=float(order.total),
            currency=order.currency,
            shipping_method=order.shipping_method,
            carrier=ship.carrier if ship else None,
            tracking_number=ship.tracking_number if ship else None,
            tracking_url=tracking_url(ship.carrier, ship.tracking_number) if ship else None,
            shipped_at=ship.shipped_at if ship else None,
            expected_delivery=ship.expected_delivery if ship else None,
            delivered_at=ship.delivered_at if ship else None,
            address_lines=lines,
            can_cancel=order.status in BEFORE_SHIPMENT,
            can_change_address=order.status in BEFORE_SHIPMENT,
            can_return=returnable and any(i.returnable_quantity > 0 for i in items),
            return_deadline=self._return_deadline(order),
        )

    def _refund_view(self, order: Order, refund: Refund) -> RefundView:
        rma = None
        expected: date | None = None
        days = int(self.policy.fact("returns.refund_days"))
        if refund.return_id is not None:
            ret = next((r for r in order.returns if r.id == refund.return_id), None)
            rma = ret.rma if ret else None
            if refund.status == "pending" and ret is not None and ret.received_at is not None:
                expected = add_business_days(ret.received_at.date(), days)
        elif refund.status == "pending":
            expected = add_business_days(refund.created_at.date(), days)
        return RefundView(
            id=refund.id, order_number=order.number, amount=float(refund.amount), currency=order.currency,
            status=refund.status, status_label=REFUND_STATUS_LABELS.get(refund.status, refund.status),
            reason=refund.reason, created_at=refund.created_at, completed_at=refund.completed_at, rma=rma,
            expected_by=expected,
        )

    def _return_view(self, order: Order, ret: Return) -> ReturnView:
        by_id = {i.id: i for i in self._view(order, self.clock()).items}
        items = tuple((by_id[int(e["item_id"])], int(e["quantity"])) for e in ret.items if int(e["item_id"]) in by_id)
        return ReturnView(
            rma=ret.rma, order_number=order.number, status=ret.status, reason=ret.reason,
            reason_label=RETURN_REASONS.get(ret.reason, ret.reason), items=items, amount=float(ret.amount),
            currency=order.currency, created_at=ret.created_at, instructions=self.return_instructions(ret.rma),
        )

    def return_instructions(self, rma: str) -> tuple[str, ...]:
        """What the shopper does next, from the policy's ``returns`` section."""
        returns = self.policy.fact("returns")
        shop = self.policy.fact("shop")
        steps = []
        if returns.get("free_return_label"):
            steps.append(f"We're emailing you a free prepaid return label for {rma}: print it and stick it on "
                         "the parcel.")
        else:
            steps.append(f"Write {rma} clearly on the parcel.")
        if returns.get("address"):
            steps.append(f"Send the parcel to: {returns['address']}.")
        else:
            steps.append("Drop the parcel off with the carrier named on the label.")
        if returns.get("conditions"):
            steps.append(str(returns["conditions"]))
        steps.append(
            f"Your refund goes to {returns.get('refund_to', 'your original payment method')} within "
            f"{returns.get('refund_days', 5)} business days after the parcel reaches us."
        )
        if shop.get("urls", {}).get("returns"):
            steps.append(f"You can follow the return at {shop['urls']['returns']}.")
        return tuple(steps)

    # ----------------------------------------------------------------- reads

    def recent_orders(self, requester: Requester, limit: int = 5) -> list[OrderView]:
        """The signed-in shopper's most recent orders, newest first; [] for a guest."""
        if requester.customer_id is None:
            return []
        now = self.clock()
        with self._tx() as session:
            orders = session.scalars(
                select(Order)
                .where(Order.customer_id == requester.customer_id)
                .order_by(Order.placed_at.desc(), Order.id.desc())
                .limit(max(1, min(limit, 50)))
                .options(selectinload(Order.items), selectinload(Order.shipment))
            ).all()
            return [self._view(o, now) for o in orders]

    def can_access(self, requester: Requester, number: str) -> bool:
        """Whether the requester may see this order (False for unknown and unparseable numbers too)."""
        try:
            self.get(requester, number)
        except OrderError:
            return False
        return True

    def get(self, requester: Requester, number: str) -> OrderView:
        """The order, if the requester may see it; raises :class:`NotAuthorized` otherwise."""
        now = self.clock()
        with self._tx() as session:
            return self._view(self._authorized(session, requester, number, now), now)

    def returnable_items(self, requester: Requester, number: str) -> list[ItemView]:
        """Items that can still be returned; raises :class:`OrderStateError` when the order can't be."""
        now = self.clock()
        with self._tx() as session:
            order = self._authorized(session, requester, number, now)
            self._check_returnable(order, now)
            return [i for i in self._view(order, now).items if i.returnable_quantity > 0]

    def refund_status(self, requester: Requester, number: str) -> list[RefundView]:
        """Every refund of the order, oldest first ([] when there is none)."""
        now = self.clock()
        with self._tx() as session:
            order = self._authorized(session, requester, number, now)
            return [self._refund_view(order, r) for r in order.refunds]

    def returns(self, requester: Requester, number: str) -> list[ReturnView]:
        """Every return (RMA) of the order, oldest first."""
        now = self.clock()
        with self._tx() as session:
            order = self._authorized(session, requester, number, now)
            return [self._return_view(order, r) for r in order.returns]

    def cancellation_fee(self, requester: Requester, number: str) -> FeeView:
        """What cancelling this order would cost, from the policy's ``cancellation`` section."""
        now = self.clock()
        with self._tx() as session:
            order = self._authorized(session, requester, number, now)
            cancellation = self.policy.fact("cancellation")
            if order.status in BEFORE_SHIPMENT:
                fee = round(float(cancellation.get("fee", 0) or 0), 2)
                text = ("Cancelling this order is free." if fee == 0 else
                        f"Cancelling this order costs {fee:.2f} {order.currency}.")
                return FeeView(order.number, True, fee, order.currency, text)
            if order.status == CANCELLED:
                return FeeView(order.number, False, None, order.currency, "This order is already cancelled.")
            return FeeView(order.number, False, None, order.currency,
                           str(cancellation.get("after_shipment", "This order has shipped and can't be cancelled.")))

    def delivery_estimate(self, requester: Requester, number: str) -> DeliveryView:
        """When the order should arrive: the carrier's date once shipped, else placed + processing + method days."""
        now = self.clock()
        with self._tx() as session:
            order = self._authorized(session, requester, number, now)
            view = self._view(order, now)
            base = partial(DeliveryView, order_number=order.number, status=order.status,
                           status_label=view.status_label, shipping_method=order.shipping_method,
                           carrier=view.carrier, tracking_number=view.tracking_number, tracking_url=view.tracking_url)
            if view.delivered_at is not None:
                return base(earliest=None, latest=None, delivered_at=view.delivered_at, source="delivered")
            if order.status in (CANCELLED, RETURNED, REFUND_PENDING, REFUNDED):
                return base(earliest=None, latest=None, delivered_at=None, source="none")
            if view.expected_delivery is not None:
                day = view.expected_delivery.date()
                return base(earliest=day, latest=day, delivered_at=None, source="carrier")
            method = self._method(order.shipping_method)
            if order.ship_country != "US" and self.policy.data.get("shipping", {}).get("international"):
                intl = self.policy.fact("shipping.international")
                low, high = int(intl["days_min"]), int(intl["days_max"])
            elif method is not None:
                low, high = int(method["days_min"]), int(method["days_max"])
            else:
                low, high = 3, 5
            start = add_business_days(order.placed_at.date(), int(self.policy.fact("shipping.processing_days")))
            return base(earliest=add_business_days(start, low), latest=add_business_days(start, high),
                        delivered_at=None, source="estimate")

    # ----------------------------------------------------------------- guest verification

    def _throttle_keys(self, requester: Requester) -> list[str]:
        keys = [f"conv:{requester.conversation_id}"[:160]]
        if requester.client_key:
            keys.append(f"client:{requester.client_key}"[:160])
        return keys

    def _check_lock(self, session: Session, keys: list[str], now: datetime) -> datetime | None:
        rows = session.scalars(select(VerificationThrottle).where(VerificationThrottle.key.in_(keys))).all()
        locks = [r.locked_until for r in rows if r.locked_until is not None and r.locked_until > now]
        return max(locks) if locks else None

    def verification_locked_until(self, requester: Requester) -> datetime | None:
        """When the verification form opens again for this requester, or None when it is open."""
        with self._tx() as session:
            return self._check_lock(session, self._throttle_keys(requester), self.clock())

    def verify_guest(self, requester: Requester, number: str, email_or_postcode: str) -> bool:
        """Prove a guest's claim to an order with its number plus its email or delivery postcode.

        True: this conversation may see and change the order for ``rules.grant_ttl``. False on any
        mismatch: unknown order, wrong email or postcode, an unparseable number (indistinguishable,
        and the same work is done either way). The ``rules.max_failures``-th failure within
        ``rules.failure_window`` for the conversation (or for ``client_key``) locks verification for
        ``rules.lock_duration``: that attempt and every attempt until then raise
        :class:`VerificationLocked`. A success resets the conversation's count (not the client's,
        so owning one order does not buy more guesses from one address).
        """
        now = self.clock()
        for attempt in (1, 2):  # a second try when a parallel first failure created the same throttle row
            try:
                ok, locked = self._verify_once(requester, number, email_or_postcode, now)
                break
            except IntegrityError:
                if attempt == 2:
                    raise
        if locked is not None:  # the failure is committed before the shopper hears about the lock
            raise VerificationLocked(locked)
        return ok

    def _verify_once(self, requester: Requester, number: str, email_or_postcode: str,
                     now: datetime) -> tuple[bool, datetime | None]:
        keys = self._throttle_keys(requester)
        normalized = normalize_order_number(number, self.number_prefix)
        proof = _normalize_proof(email_or_postcode)
        locked: datetime | None = None
        with self._tx() as session:
            until = self._check_lock(session, keys, now)
            if until is not None:
                raise VerificationLocked(until)
            order = self._find(session, normalized) if normalized else None
            expected_email = order.email.strip().lower() if order else "nobody@invalid.example"
            expected_postcode = re.sub(r"[\s-]+", "", order.ship_postcode.lower()) if order else "-no-postcode-"
            email_ok = hmac.compare_digest(proof.encode(), expected_email.encode())
            postcode_ok = bool(expected_postcode) and hmac.compare_digest(proof.encode(), expected_postcode.encode())
            ok = order is not None and bool(proof) and (email_ok or postcode_ok)
            if ok:
                assert order is not None
                grant = session.scalar(select(OrderAccessGrant).where(
                    OrderAccessGrant.conversation_id == requester.conversation_id,
                    OrderAccessGrant.order_id == order.id))
                if grant is None:
                    session.add(OrderAccessGrant(conversation_id=requester.conversation_id, order_id=order.id,
                                                 granted_at=now, expires_at=now + self.rules.grant_ttl))
                else:
                    grant.granted_at, grant.expires_at = now, now + self.rules.grant_ttl
                session.execute(delete(VerificationThrottle).where(VerificationThrottle.key == keys[0]))
            else:
                locked = self._record_failure(session, keys, now)
        return ok, locked

    def _record_failure(self, session: Session, keys: list[str], now: datetime) -> datetime | None:
        locked: datetime | None = None
        for key in keys:
            row = session.get(VerificationThrottle, key, with_for_update=True)
            if row is None:
                row = VerificationThrottle(key=key, failures=0, first_failure_at=now, locked_until=None)
                session.add(row)
            expired_lock = row.locked_until is not None and row.locked_until <= now
            stale = row.first_failure_at is None or now - row.first_failure_at > self.rules.failure_window
            if expired_lock or stale:
                row.failures, row.first_failure_at, row.locked_until = 0, now, None
            row.failures += 1
            if row.failures >= self.rules.max_failures:
                row.locked_until = now + self.rules.lock_duration
                locked = max(locked, row.locked_until) if locked else row.locked_until
            session.flush()
        return locked

    # ----------------------------------------------------------------- writes

    def cancel(self, requester: Requester, number: str) -> CancelOutcome:
        """Cancel an order that has not shipped yet (PLACED or PAID), in one transaction.

        Confirming twice cancels once: the status change is a conditional UPDATE, and only the
        call that made it restocks the items and, for a paid order, creates the one pending
        refund of the order's total. A shipped or delivered order gives "not_cancellable" (the
        actions offer a return instead).
        """
        now = self.clock()
        with self._tx() as session:
            order = self._authorized(session, requester, number, now)
            if order.status == CANCELLED:
                return CancelOutcome("already_cancelled", self._view(order, now),
                                     self._cancellation_refund(order))
            if order.status not in BEFORE_SHIPMENT:
                return CancelOutcome("not_cancellable", self._view(order, now))
            was_paid = order.status == PAID or order.paid_at is not None
            changed = rows_affected(session.execute(
                update(Order)
                .where(Order.id == order.id, Order.status.in_(BEFORE_SHIPMENT))
                .values(status=CANCELLED, cancelled_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            ))
            if changed != 1:  # someone else changed it in between: report what it is now
                session.expire_all()
                order = self._authorized(session, requester, number, now)
                kind = "already_cancelled" if order.status == CANCELLED else "not_cancellable"
                return CancelOutcome(kind, self._view(order, now), self._cancellation_refund(order))
            for item in order.items:
                if item.product_id is not None:
                    session.execute(
                        update(Product).where(Product.id == item.product_id)
                        .values(stock=Product.stock + item.quantity)
                        .execution_options(synchronize_session=False)
                    )
            if was_paid and float(order.total) > 0:
                session.add(Refund(order_id=order.id, amount=round(float(order.total), 2), status="pending",
                                   reason="cancellation", created_at=now))
            session.flush()
            session.expire_all()
            order = self._authorized(session, requester, number, now)
            return CancelOutcome("cancelled", self._view(order, now), self._cancellation_refund(order))

    def _cancellation_refund(self, order: Order) -> RefundView | None:
        refund = next((r for r in order.refunds if r.reason == "cancellation"), None)
        return self._refund_view(order, refund) if refund else None

    def change_address(self, requester: Requester, number: str, address: Address) -> OrderView:
        """Send the order to another address; only before it ships (raises :class:`OrderStateError`)."""
        now = self.clock()
        with self._tx() as session:
            order = self._authorized(session, requester, number, now)
            if order.status not in BEFORE_SHIPMENT:
                raise self._not_before_shipment(order, "change the address")
            values = dict(ship_line1=address.line1, ship_line2=address.line2, ship_city=address.city_line,
                          ship_postcode=address.postcode, ship_country=address.country, updated_at=now)
            if address.name:
                values["ship_name"] = address.name
            changed = rows_affected(session.execute(
                update(Order).where(Order.id == order.id, Order.status.in_(BEFORE_SHIPMENT)).values(**values)
                .execution_options(synchronize_session=False)
            ))
            session.expire_all()
            order = self._authorized(session, requester, number, now)
            if changed != 1:
                raise self._not_before_shipment(order, "change the address")
            return self._view(order, now)

    def _not_before_shipment(self, order: Order, what: str) -> OrderStateError:
        if order.status == CANCELLED:
            return OrderStateError(f"Order {order.number} is cancelled, so I can't {what}.", "cancelled")
        if order.status == SHIPPED:
            return OrderStateError(
                f"Order {order.number} has already shipped, so I can't {what} any more. The carrier's "
                "tracking page may let you redirect the parcel.", "shipped")
        if order.status == DELIVERED:
            return OrderStateError(f"Order {order.number} has already been delivered, so I can't {what}.",
                                   "delivered")
        return OrderStateError(f"Order {order.number} is {STATUS_LABELS.get(order.status, order.status).lower()}, "
                               f"so I can't {what}.", "returned")

    def _check_returnable(self, order: Order, now: datetime) -> None:
        if order.status in (RETURNED, REFUND_PENDING, REFUNDED):
            raise OrderStateError(f"Order {order.number} has already been returned.", "returned")
        if order.status == CANCELLED:
            raise OrderStateError(f"Order {order.number} was cancelled, so there is nothing to return.", "cancelled")
        if order.status != DELIVERED:
            raise OrderStateError(
                f"Order {order.number} hasn't been delivered yet. Once it arrives you have "
                f"{self.return_window.days} days to return it.", "not_delivered")
        deadline = self._return_deadline(order)
        if deadline is None or now > deadline:
            day = f"{deadline:%B} {deadline.day}, {deadline.year}" if deadline else "some time ago"
            damaged = str(self.policy.fact("returns").get("damaged", ""))
            raise OrderStateError(
                f"The {self.return_window.days}-day return window for order {order.number} ended on {day}. "
                f"{damaged}".strip(), "window_passed")
        if all(i.returned_quantity >= i.quantity for i in order.items):
            raise OrderStateError(f"Everything in order {order.number} has already been returned.",
                                  "nothing_to_return")

    def start_return(
        self,
        requester: Requester,
        number: str,
        items: dict[int, int] | None,
        reason: str,
        idempotency_key: str,
        comment: str = "",
    ) -> ReturnView:
        """Open a return (RMA) for some or all items of a delivered order within the return window.

        ``items`` maps order_item_id -> quantity (None: everything still returnable); ``reason`` is a
        key of :data:`RETURN_REASONS`. Creates the Return, a pending Refund of the items' amount, and
        marks the order RETURNED when nothing is left to return; all in one transaction. Calling
        again with the same ``idempotency_key`` returns the same RMA and changes nothing.
        """
        if reason not in RETURN_REASONS:
            raise OrderError("Please pick one of the listed reasons for the return.")
        if not idempotency_key or len(idempotency_key) > 120:
            raise ValueError("idempotency_key must be 1 to 120 characters")
        now = self.clock()
        try:
            with self._tx() as session:
                order = self._authorized(session, requester, number, now)
                existing = session.scalar(select(Return).where(Return.idempotency_key == idempotency_key))
                if existing is not None:
                    return self._same_return(order, existing)
                self._check_returnable(order, now)
                by_id = {i.id: i for i in order.items}
                wanted = ({i.id: i.quantity - i.returned_quantity for i in order.items
                           if i.quantity > i.returned_quantity} if items is None else dict(items))
                if not wanted or all(q == 0 for q in wanted.values()):
                    raise OrderError("Please pick at least one item to return.")
                for item_id, qty in wanted.items():
                    item = by_id.get(item_id)
                    if item is None:
                        raise OrderError("One of those items isn't part of this order. Please pick from the list.")
                    left = item.quantity - item.returned_quantity
                    if not isinstance(qty, int) or qty < 0 or qty > left:
                        raise OrderError(f"You can return up to {left} of {item.title}.")
                wanted = {k: v for k, v in wanted.items() if v > 0}
                amount = round(sum(float(by_id[k].unit_price) * q for k, q in wanted.items()), 2)
                ret = Return(rma=new_rma(), order_id=order.id, status="requested", reason=reason,
                             comment=comment[:2000], items=[{"item_id": k, "quantity": q} for k, q in wanted.items()],
                             amount=amount, idempotency_key=idempotency_key, created_at=now)
                session.add(ret)
                session.flush()  # a racing call with the same key fails here, before anything else
                for item_id, qty in wanted.items():
                    done = rows_affected(session.execute(
                        update(OrderItem)
                        .where(OrderItem.id == item_id, OrderItem.returned_quantity + qty <= OrderItem.quantity)
                        .values(returned_quantity=OrderItem.returned_quantity + qty)
                        .execution_options(synchronize_session=False)
                    ))
                    if done != 1:
                        raise OrderError("Those items were just returned in another request.")
                session.expire_all()
                order = self._authorized(session, requester, number, now)
                if all(i.returned_quantity >= i.quantity for i in order.items):
                    session.execute(update(Order).where(Order.id == order.id, Order.status == DELIVERED)
                                    .values(status=RETURNED, updated_at=now)
                                    .execution_options(synchronize_session=False))
                session.add(Refund(order_id=order.id, return_id=ret.id, amount=amount, status="pending",
                                   reason="return", created_at=now))
                session.flush()
                session.expire_all()
                order = self._authorized(session, requester, number, now)
                ret = next(r for r in order.returns if r.idempotency_key == idempotency_key)
                return self._return_view(order, ret)
        except IntegrityError:
            # Another request with the same idempotency key won the race: answer with its return.
            with self._tx() as session:
                order = self._authorized(session, requester, number, now)
                existing = session.scalar(select(Return).where(Return.idempotency_key == idempotency_key))
                if existing is None:
                    raise
                return self._same_return(order, existing)

    def _same_return(self, order: Order, existing: Return) -> ReturnView:
        if existing.order_id != order.id:
            raise OrderError("That return request belongs to another order. Please start again.")
        return self._return_view(order, existing)


@lru_cache
def get_order_service(url: str | None = None) -> OrderService:
    """The process-wide service on the configured database and policy file."""
    from bot.db import get_engine

    return OrderService(sessionmaker(bind=get_engine(url), expire_on_commit=False), get_policy())
