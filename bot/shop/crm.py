"""The CRM profile: RFM scores and segment from orders, lifetime value, and stated preferences.

**What counts.** A *purchase* is an order of a known customer that was not cancelled. Recency is
the time of the newest purchase, frequency the number of purchases, and monetary value (also the
lifetime value) is the net amount paid: totals of paid purchases minus every refund recorded on
them (pending or done, since a pending refund is money on its way back). Cancelled orders and
their refunds count for nothing.

**Scores.** Recency, frequency and monetary value are each scored 1-5 by quintile over all
customers with at least one purchase: a customer's score is ``1 + floor(5 * below / n)``, where
``below`` is how many of the ``n`` customers have a strictly smaller value (an older last purchase
for recency). Ties share a score, so 30 customers with one order each all get frequency 1.

**Segments**, the first rule that matches wins:

=============  ==========================================================
``prospect``   no purchase yet
``vip``        R >= 4, F = 5, M = 5 (the top on every axis)
``champions``  R >= 4, F >= 4, M >= 4
``loyal``      F >= 4, R >= 3 (buys often, recently enough)
``big_spender`` M = 5 (spends the most, whatever else)
``new``        exactly one purchase, R >= 4
``at_risk``    R <= 2 and (F >= 3 or M >= 3): was worth a lot, has gone quiet
``hibernating`` R <= 2: little, long ago
``regular``    everything else
=============  ==========================================================

**Preferences** (size, brand, color, budget) are kept only while the customer's
``consent_personalization`` flag is set; :func:`save_preference` raises :class:`ConsentRequired`
otherwise, and :func:`forget` deletes them all and withdraws the consent. Sizes are kept one per
size family (letter sizes like M, number sizes like 10), so a shopper can be an M and a 10;
brands and colors keep the latest few; the budget is one ``min:max`` range (either side may be
empty: ``":100"`` is "under 100").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, delete, func, select
from sqlalchemy.orm import Session

from bot.clock import utcnow
from bot.shop.tables import (
    BEFORE_SHIPMENT,
    CANCELLED,
    SHIPPED,
    CrmProfile,
    Customer,
    Order,
    Preference,
    Refund,
)

if TYPE_CHECKING:  # the search stack (spaCy, FAISS) is not needed to read a profile
    from bot.catalog.views import ProductView
    from bot.search.query import Filters

PREFERENCE_KINDS = ("size", "brand", "color", "budget")
MAX_PER_KIND = 5  # brands and colors kept per customer (the latest ones)
SEGMENTS = ("prospect", "vip", "champions", "loyal", "big_spender", "new", "at_risk", "hibernating", "regular")
SEGMENT_LABELS = {
    "prospect": "Prospect (no purchase yet)", "vip": "VIP", "champions": "Champion", "loyal": "Loyal",
    "big_spender": "Big spender", "new": "New customer", "at_risk": "At risk", "hibernating": "Hibernating",
    "regular": "Regular",
}
ACTIVE_STATUSES = (*BEFORE_SHIPMENT, SHIPPED)



class ConsentRequired(Exception):
    """The customer has not allowed us to keep preferences."""


class UnknownCustomer(LookupError):
    """No customer with that id or email."""


# --------------------------------------------------------------------------- RFM and segments


@dataclass(frozen=True)
class Rfm:
    recency: int
    frequency: int
    monetary: int


def quintile_scores(values: dict[int, float]) -> dict[int, int]:
    """Score each key 1-5 by quintile of its value: ``1 + floor(5 * below / n)`` (ties share a score)."""
    n = len(values)
    ordered = sorted(values.values())
    scores = {}
    below = 0
    rank: dict[float, int] = {}
    for i, value in enumerate(ordered):
        if i == 0 or value != ordered[i - 1]:
            below = i
            rank[value] = below
    for key, value in values.items():
        scores[key] = 1 + math.floor(5 * rank[value] / n)
    return scores


def segment_for(rfm: Rfm | None, purchases: int) -> str:
    """The segment of a customer with these scores (see the module docstring for the rules)."""
    if rfm is None or purchases == 0:
        return "prospect"
    r, f, m = rfm.recency, rfm.frequency, rfm.monetary
    if r >= 4 and f == 5 and m == 5:
        return "vip"
    if r >= 4 and f >= 4 and m >= 4:
        return "champions"
    if f >= 4 and r >= 3:
        return "loyal"
    if m == 5:
        return "big_spender"
    if purchases == 1 and r >= 4:
        return "new"
    if r <= 2 and (f >= 3 or m >= 3):
        return "at_risk"
    if r <= 2:
        return "hibernating"
    return "regular"


@dataclass(frozen=True)
class _Totals:
    purchases: int
    last: datetime | None
    net_paid: float


def _totals(session: Session) -> dict[int, _Totals]:
    """Every customer's purchases, last purchase and net paid, in one query."""
    purchases = (
        select(
            Order.customer_id.label("customer_id"),
            func.count(Order.id).label("purchases"),
            func.max(Order.placed_at).label("last"),
            func.sum(case((Order.paid_at.is_not(None), Order.total), else_=0)).label("paid"),
        )
        .where(Order.customer_id.is_not(None), Order.status != CANCELLED)
        .group_by(Order.customer_id)
        .subquery()
    )
    refunds = (
        select(Order.customer_id.label("customer_id"), func.sum(Refund.amount).label("refunded"))
        .join(Refund, Refund.order_id == Order.id)
        .where(Order.customer_id.is_not(None), Order.status != CANCELLED)
        .group_by(Order.customer_id)
        .subquery()
    )
    rows = session.execute(
        select(Customer.id, purchases.c.purchases, purchases.c.last, purchases.c.paid, refunds.c.refunded)
        .outerjoin(purchases, purchases.c.customer_id == Customer.id)
        .outerjoin(refunds, refunds.c.customer_id == Customer.id)
    ).all()
    return {
        cid: _Totals(int(n or 0), last, round(max(0.0, float(paid or 0) - float(refunded or 0)), 2))
        for cid, n, last, paid, refunded in rows
    }


def refresh_profiles(session: Session, now: datetime | None = None) -> int:
    """Recompute every customer's RFM scores, segment and lifetime value; returns how many."""
    now = now or utcnow()
    totals = _totals(session)
    buyers = {cid: t for cid, t in totals.items() if t.purchases and t.last is not None}
    recency = quintile_scores({cid: t.last.timestamp() for cid, t in buyers.items()})  # type: ignore[union-attr]
    frequency = quintile_scores({cid: float(t.purchases) for cid, t in buyers.items()})
    monetary = quintile_scores({cid: t.net_paid for cid, t in buyers.items()})
    existing = {p.customer_id: p for p in session.scalars(select(CrmProfile))}
    for cid, t in totals.items():
        rfm = Rfm(recency[cid], frequency[cid], monetary[cid]) if cid in buyers else None
        row = existing.get(cid)
        if row is None:
            row = CrmProfile(customer_id=cid)
            session.add(row)
        row.segment = segment_for(rfm, t.purchases)
        row.recency_score = rfm.recency if rfm else 0
        row.frequency_score = rfm.frequency if rfm else 0
        row.monetary_score = rfm.monetary if rfm else 0
        row.orders_count = t.purchases
        row.lifetime_value = t.net_paid
        row.last_order_at = t.last
        row.computed_at = now
    session.flush()
    return len(totals)


def _stale(session: Session) -> bool:
    """True when some customer has no profile or an order changed after the profiles were computed."""
    customers = session.scalar(select(func.count(Customer.id))) or 0
    profiles, counted, computed = session.execute(select(
        func.count(CrmProfile.customer_id), func.coalesce(func.sum(CrmProfile.orders_count), 0),
        func.min(CrmProfile.computed_at))).one()
    purchases, changed = session.execute(select(
        func.count(case((Order.status != CANCELLED, Order.id))), func.max(Order.updated_at),
    ).where(Order.customer_id.is_not(None))).one()
    if customers != profiles or purchases != counted:  # orders inserted (perhaps with past timestamps)
        return True
    return bool(changed and computed and changed >= computed)


def ensure_profiles(session: Session, now: datetime | None = None) -> bool:
    """Recompute the profiles when they are missing or older than the newest order change."""
    if _stale(session):
        refresh_profiles(session, now)
        return True
    return False


# --------------------------------------------------------------------------- the profile view


@dataclass(frozen=True)
class LatestOrder:
    number: str
    status: str
    placed_at: datetime


@dataclass(frozen=True)
class ProfileView:
    """Everything the shop keeps about one customer, as plain data."""

    customer_id: int
    name: str
    email: str
    phone: str
    postcode: str
    consent: bool
    consent_updated_at: datetime | None
    segment: str
    recency_score: int
    frequency_score: int
    monetary_score: int
    orders_count: int  # purchases (orders not cancelled)
    all_orders: int  # every order, cancelled ones too
    lifetime_value: float
    last_order_at: datetime | None
    latest_order: LatestOrder | None
    preferences: dict[str, list[str]] = field(default_factory=dict)

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name.strip() else ""

    @property
    def segment_label(self) -> str:
        return SEGMENT_LABELS.get(self.segment, self.segment)


def _preferences(session: Session, customer_id: int) -> dict[str, list[str]]:
    rows = session.scalars(select(Preference).where(Preference.customer_id == customer_id)
                           .order_by(Preference.created_at, Preference.id))
    result: dict[str, list[str]] = {}
    for p in rows:
        result.setdefault(p.kind, []).append(p.value)
    return result


def profile(session: Session, customer_id: int, now: datetime | None = None) -> ProfileView:
    """The customer's profile, with RFM brought up to date first when orders changed."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise UnknownCustomer(f"no customer with id {customer_id}")
    ensure_profiles(session, now)
    row = session.get(CrmProfile, customer_id)
    latest = session.execute(
        select(Order.number, Order.status, Order.placed_at).where(Order.customer_id == customer_id)
        .order_by(Order.placed_at.desc(), Order.id.desc()).limit(1)
    ).first()
    all_orders = session.scalar(select(func.count(Order.id)).where(Order.customer_id == customer_id)) or 0
    return ProfileView(
        customer_id=customer.id, name=customer.name, email=customer.email, phone=customer.phone,
        postcode=customer.postcode, consent=bool(customer.consent_personalization),
        consent_updated_at=customer.consent_updated_at,
        segment=row.segment if row else "prospect", recency_score=row.recency_score if row else 0,
        frequency_score=row.frequency_score if row else 0, monetary_score=row.monetary_score if row else 0,
        orders_count=row.orders_count if row else 0, all_orders=int(all_orders),
        lifetime_value=float(row.lifetime_value or 0) if row else 0.0, last_order_at=row.last_order_at if row else None,
        latest_order=LatestOrder(*latest) if latest else None, preferences=_preferences(session, customer_id),
    )


def profile_by_email(session: Session, email: str, now: datetime | None = None) -> ProfileView:
    customer_id = session.scalar(select(Customer.id).where(Customer.email == email.strip().lower()))
    if customer_id is None:
        raise UnknownCustomer(f"no customer with email {email.strip()}")
    return profile(session, customer_id, now)


@dataclass(frozen=True)
class Greeting:
    """What a greeting may mention about a signed-in customer."""

    first_name: str
    open_order: LatestOrder | None  # the newest order still placed, paid or on its way
    preferences: dict[str, list[str]]  # only with consent


def greeting(session: Session, customer_id: int) -> Greeting | None:
    customer = session.get(Customer, customer_id)
    if customer is None:
        return None
    open_order = session.execute(
        select(Order.number, Order.status, Order.placed_at)
        .where(Order.customer_id == customer_id, Order.status.in_(ACTIVE_STATUSES))
        .order_by(Order.placed_at.desc(), Order.id.desc()).limit(1)
    ).first()
    prefs = _preferences(session, customer_id) if customer.consent_personalization else {}
    return Greeting(customer.first_name, LatestOrder(*open_order) if open_order else None, prefs)


# --------------------------------------------------------------------------- preferences and consent


def size_family(size: str) -> str:
    """"letter" (XS..XXL), "number" (10, 42, 8.5) or "other" (2T, 32x34)."""
    s = size.strip().upper()
    if s.replace(".", "", 1).isdigit():
        return "number"
    if s in {"XXS", "XS", "S", "M", "L", "XL", "XXL", "XXXL", "2XL", "3XL", "4XL"}:
        return "letter"
    return "other"


def budget_value(min_price: float | None, max_price: float | None) -> str:
    """A budget as stored: ``"min:max"`` with either side empty (``":100"`` = under 100)."""
    if min_price is None and max_price is None:
        raise ValueError("a budget needs a lower or an upper limit")
    if min_price is not None and max_price is not None and min_price > max_price:
        min_price, max_price = max_price, min_price
    return f"{'' if min_price is None else f'{min_price:g}'}:{'' if max_price is None else f'{max_price:g}'}"


def budget_bounds(value: str) -> tuple[float | None, float | None]:
    low, _, high = value.partition(":")
    return (float(low) if low else None, float(high) if high else None)


def describe_budget(value: str) -> str:
    low, high = budget_bounds(value)
    if low is not None and high is not None:
        return f"${low:g} to ${high:g}"
    return f"under ${high:g}" if high is not None else f"over ${low:g}"


def describe_preference(kind: str, value: str) -> str:
    """Shopper-facing words for one preference: "size M", "Adidas", "navy", "under $100"."""
    if kind == "size":
        return f"size {value}"
    if kind == "budget":
        return f"a budget {describe_budget(value)}"
    return value


def normalise_preference(kind: str, value: str) -> str:
    """The stored spelling of a preference; ValueError for an unknown kind or an empty value."""
    if kind not in PREFERENCE_KINDS:
        raise ValueError(f"unknown preference kind {kind!r} (expected one of {', '.join(PREFERENCE_KINDS)})")
    value = " ".join(str(value).split())
    if not value:
        raise ValueError(f"an empty {kind} cannot be saved")
    if kind == "size":
        return value.upper()
    if kind == "budget":
        return budget_value(*budget_bounds(value))
    if kind == "color":
        return value.lower()
    return value[:120]


def save_preference(session: Session, customer_id: int, kind: str, value: str) -> bool:
    """Keep a stated preference; True when it is new. Raises ConsentRequired without consent.

    A new size replaces the saved one of the same family, a new budget replaces the old budget,
    and only the latest ``MAX_PER_KIND`` brands and colors are kept.
    """
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise UnknownCustomer(f"no customer with id {customer_id}")
    if not customer.consent_personalization:
        raise ConsentRequired()
    value = normalise_preference(kind, value)
    rows = list(session.scalars(select(Preference).where(Preference.customer_id == customer_id,
                                                         Preference.kind == kind)
                                .order_by(Preference.created_at, Preference.id)))
    if any(r.value.lower() == value.lower() for r in rows):
        return False
    if kind == "budget":
        stale = rows
    elif kind == "size":
        stale = [r for r in rows if size_family(r.value) == size_family(value)]
    else:
        stale = rows[: max(0, len(rows) - MAX_PER_KIND + 1)]
    for row in stale:
        session.delete(row)
    session.flush()
    session.add(Preference(customer_id=customer_id, kind=kind, value=value, source="chat", created_at=utcnow()))
    session.flush()
    return True


def set_consent(session: Session, customer_id: int, granted: bool, now: datetime | None = None) -> bool:
    """Set or withdraw the personalization consent; True when it changed. Withdrawing deletes preferences."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise UnknownCustomer(f"no customer with id {customer_id}")
    changed = bool(customer.consent_personalization) != granted
    if changed:
        customer.consent_personalization = granted
        customer.consent_updated_at = now or utcnow()
    if not granted:
        session.execute(delete(Preference).where(Preference.customer_id == customer_id))
    session.flush()
    return changed


@dataclass(frozen=True)
class Forgotten:
    preferences: dict[str, list[str]]  # what was deleted
    consent_withdrawn: bool


def forget(session: Session, customer_id: int, now: datetime | None = None) -> Forgotten:
    """Delete every saved preference and withdraw the consent (orders and account stay)."""
    saved = _preferences(session, customer_id)
    withdrawn = set_consent(session, customer_id, False, now)
    return Forgotten(saved, withdrawn)


def has_consent(session: Session, customer_id: int) -> bool:
    return bool(session.scalar(select(Customer.consent_personalization).where(Customer.id == customer_id)))


# --------------------------------------------------------------------------- preferences as search defaults


@dataclass(frozen=True)
class SearchDefaults:
    """Saved preferences that can fill in a search, read only with consent."""

    sizes: tuple[str, ...] = ()
    budget: str | None = None

    @property
    def empty(self) -> bool:
        return not self.sizes and self.budget is None


def search_defaults(session: Session, customer_id: int) -> SearchDefaults:
    if not has_consent(session, customer_id):
        return SearchDefaults()
    prefs = _preferences(session, customer_id)
    budget = prefs.get("budget", [])
    return SearchDefaults(tuple(prefs.get("size", [])), budget[-1] if budget else None)


def apply_search_defaults(filters: Filters, defaults: SearchDefaults,
                          candidates: list[ProductView]) -> tuple[Filters, list[str]]:
    """Fill a search's missing size and price from saved preferences where they fit the results.

    ``candidates`` are the search's results without the defaults. A saved size is used when the
    search names no size and most of the first results come in that size (a size M says nothing
    about headphones); a saved budget when the search names no price and some results are within
    it. Returns the new filters and shopper-facing words for what was applied.
    """
    applied: list[str] = []
    updates: dict[str, Any] = {}
    if defaults.sizes and not filters.sizes and candidates:
        page = candidates[:5]
        best, fits = None, 0
        for size in defaults.sizes:
            n = sum(1 for p in page if size.lower() in {s.lower() for s in p.sizes})
            if n > fits:
                best, fits = size, n
        if best is not None and fits * 2 > len(page):
            updates["sizes"] = (best,)
            applied.append(f"size {best}")
    if defaults.budget and filters.min_price is None and filters.max_price is None and candidates:
        low, high = budget_bounds(defaults.budget)
        within = [p for p in candidates if p.price is not None and (low is None or p.price >= low)
                  and (high is None or p.price <= high)]
        if within:
            updates.update(min_price=low, max_price=high)
            applied.append(f"budget {describe_budget(defaults.budget)}")
    return (replace(filters, **updates) if updates else filters), applied


def format_profile(view: ProfileView) -> str:
    """Plain aligned text of a profile, for the command line."""
    def when(value: datetime | None) -> str:
        return value.strftime("%Y-%m-%d %H:%M") if value else "-"

    prefs = "; ".join(f"{kind}: {', '.join(describe_budget(v) if kind == 'budget' else v for v in values)}"
                      for kind, values in view.preferences.items()) or "none"
    latest = (f"{view.latest_order.number} ({view.latest_order.status}, {when(view.latest_order.placed_at)})"
              if view.latest_order else "-")
    rows = [
        ("Customer", f"{view.name or '-'} (id {view.customer_id})"),
        ("Email", view.email),
        ("Phone", view.phone or "-"),
        ("Postcode", view.postcode or "-"),
        ("Segment", f"{view.segment} ({view.segment_label})"),
        ("R / F / M", f"{view.recency_score} / {view.frequency_score} / {view.monetary_score}"),
        ("Lifetime value", f"${view.lifetime_value:,.2f}"),
        ("Orders", f"{view.orders_count} purchases ({view.all_orders} orders incl. cancelled)"),
        ("Last purchase", when(view.last_order_at)),
        ("Latest order", latest),
        ("Preferences", prefs),
        ("Consent", ("yes" if view.consent else "no") + (f" (updated {when(view.consent_updated_at)})"
                                                         if view.consent_updated_at else "")),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in rows)
