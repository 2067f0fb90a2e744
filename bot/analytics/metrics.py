"""The analytics figures, computed from Rasa's stored events and our ticket rows (pure: no I/O).

Every figure is defined in docs/lead-console.md ("Analytics"), denominator included. Days are UTC calendar days;
a period is ``since`` to ``until``, both inclusive. Vocabulary used below:

- a *shopper message* is a ``user`` event with text; it is *typed* unless its text is a button payload
  (starts with ``/``, e.g. ``/product_details{"product_id": "12"}``);
- a *conversation* is one ``sender_id`` with at least one shopper message in the period;
- a *handoff* is an ``action`` event of ``action_escalate``.

Rates are rounded to 4 decimals and are ``None`` when their denominator is 0.
"""

from __future__ import annotations

import calendar
import json
import math
import re
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bot.rasa_events import RasaEvent

ESCALATE_ACTION = "action_escalate"
FALLBACK_INTENT = "nlu_fallback"
SEARCH_INTENTS = ("search_product", "refine_search")
CARD_CLICK_INTENTS = ("product_details", "add_to_cart")
UNKNOWN_REASON = "unknown"
NO_INTENT = "(none)"
NEGATIVE_AT = -0.05  # compound <= -0.05: negative
POSITIVE_AT = 0.05   # compound >= 0.05: positive (VADER's usual cut-offs)
TICKET_MATCH_WINDOW = timedelta(days=1)  # a ticket further than this from the handoff is not its ticket
MAX_DAYS = 366
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
CONFIDENCE_EDGES = tuple(round(k / 10, 1) for k in range(11))          # 0.0, 0.1 ... 1.0
SENTIMENT_EDGES = tuple(round(-1 + k / 5, 1) for k in range(11))       # -1.0, -0.8 ... 1.0
FIGURES = ("conversations_per_day", "containment", "escalation", "fallback", "top_intents", "confidence",
           "funnel", "satisfaction", "sentiment")


class PeriodError(ValueError):
    """A period the API cannot use; the message says why, for people."""


@dataclass(frozen=True)
class Period:
    """UTC days ``since`` to ``until``, both inclusive."""

    since: date
    until: date

    @property
    def start_ts(self) -> float:
        return float(calendar.timegm(self.since.timetuple()))

    @property
    def end_ts(self) -> float:
        """Exclusive: midnight after ``until``."""
        return float(calendar.timegm((self.until + timedelta(days=1)).timetuple()))

    @property
    def start(self) -> datetime:
        return datetime(self.since.year, self.since.month, self.since.day)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=(self.until - self.since).days + 1)

    def contains_ts(self, ts: float) -> bool:
        return self.start_ts <= ts < self.end_ts

    def contains(self, at: datetime | None) -> bool:
        return at is not None and self.start <= at < self.end

    def days(self) -> list[date]:
        return [self.since + timedelta(days=i) for i in range((self.until - self.since).days + 1)]

    @classmethod
    def parse(cls, since: str | None, until: str | None, today: date, default_days: int = 30) -> Period:
        """From ``YYYY-MM-DD`` strings; missing ``until`` is today, missing ``since`` is ``default_days``
        days up to ``until``. Raises :class:`PeriodError`."""
        end = _parse_day(until, "until") if until else today
        start = _parse_day(since, "since") if since else end - timedelta(days=default_days - 1)
        if start > end:
            raise PeriodError(f"The start date ({start.isoformat()}) is after the end date ({end.isoformat()}).")
        if (end - start).days + 1 > MAX_DAYS:
            raise PeriodError(f"Pick at most {MAX_DAYS} days (this period has {(end - start).days + 1}).")
        return cls(start, end)


def _parse_day(value: str, name: str) -> date:
    text = value.strip()
    if DAY.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise PeriodError(f"'{name}' must be a date like 2024-05-31, not {value[:40]!r}.")


@dataclass(frozen=True)
class TicketRow:
    """What analytics needs of a ticket (``bot.handoff.tables.Ticket``)."""

    conversation_id: str
    reason: str
    created_at: datetime
    rating: int | None = None
    rated_at: datetime | None = None


# --------------------------------------------------------------------------- reading one event


def is_shopper_message(event: RasaEvent) -> bool:
    return event.type_name == "user" and bool(event.text.strip())


def is_typed(event: RasaEvent) -> bool:
    """A shopper message they wrote themselves (not a button payload)."""
    return is_shopper_message(event) and not event.text.lstrip().startswith("/")


def intent_of(event: RasaEvent) -> str:
    name = (event.parse_data.get("intent") or {}).get("name") or event.intent_name
    return str(name) if name else NO_INTENT


def top_confidence(event: RasaEvent) -> float | None:
    """The classifier's confidence in its best intent. For ``nlu_fallback`` (whose own confidence is
    only the fallback threshold) it is the best intent in the ranking that is not the fallback."""
    parse = event.parse_data
    intent = parse.get("intent") or {}
    if intent.get("name") == FALLBACK_INTENT:
        ranked = [r for r in parse.get("intent_ranking") or [] if r.get("name") != FALLBACK_INTENT]
        values = [_number(r.get("confidence")) for r in ranked]
        found = [v for v in values if v is not None]
        return max(found) if found else None
    return _number(intent.get("confidence"))


def sentiment_of(event: RasaEvent) -> float | None:
    sentiment = event.parse_data.get("sentiment")
    return _number(sentiment.get("compound")) if isinstance(sentiment, dict) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def payload_entities(text: str) -> dict[str, Any] | None:
    """The JSON object of a button payload (``/intent{...}``); None when there is none or it is not JSON."""
    text = text.strip()
    if not text.startswith("/") or "{" not in text:
        return None
    try:
        value = json.loads(text[text.index("{"):])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def is_search(event: RasaEvent) -> bool:
    return is_shopper_message(event) and intent_of(event) in SEARCH_INTENTS


def is_card_click(event: RasaEvent) -> bool:
    """A press of a product card's button: ``/product_details`` or ``/add_to_cart`` with a product id and
    nothing else (the size, color or quantity buttons that may follow are the same click, not a new one)."""
    if not is_shopper_message(event) or is_typed(event):
        return False
    intent = event.text.strip()[1:].split("{", 1)[0].strip()
    entities = payload_entities(event.text)
    return intent in CARD_CLICK_INTENTS and entities is not None and set(entities) == {"product_id"}


def cart_added(event: RasaEvent) -> dict[str, Any] | None:
    """The ``added`` mark of a cart card (``actions/cart.py``): the bot just put a product in the cart."""
    if event.type_name != "bot":
        return None
    custom = (event.data.get("data") or {}).get("custom")
    if isinstance(custom, dict) and custom.get("type") == "cart" and isinstance(custom.get("added"), dict):
        return custom["added"]  # type: ignore[no-any-return]
    return None


def is_handoff(event: RasaEvent) -> bool:
    return event.type_name == "action" and (event.action_name or event.data.get("name")) == ESCALATE_ACTION


def day_of(ts: float) -> date:
    return datetime.fromtimestamp(ts, tz=UTC).date()


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _bin(value: float, edges: Sequence[float]) -> int:
    """Index of the bin ``[edges[i], edges[i+1])`` holding ``value``; the last bin includes its upper edge."""
    return min(max(bisect_right(edges, value) - 1, 0), len(edges) - 2)


def _histogram(values: Iterable[float], edges: Sequence[float]) -> list[dict[str, Any]]:
    counts = [0] * (len(edges) - 1)
    for value in values:
        counts[_bin(value, edges)] += 1
    total = sum(counts)
    return [{"low": edges[i], "high": edges[i + 1], "count": n, "share": _rate(n, total)}
            for i, n in enumerate(counts)]


# --------------------------------------------------------------------------- the figures


def first_messages(events: Sequence[RasaEvent]) -> dict[str, float]:
    """Each conversation and the time of its first shopper message (``events`` in the period)."""
    first: dict[str, float] = {}
    for event in events:
        if is_shopper_message(event) and (event.sender_id not in first or event.timestamp < first[event.sender_id]):
            first[event.sender_id] = event.timestamp
    return first


def handoffs(events: Sequence[RasaEvent]) -> dict[str, float]:
    """Conversations (with a shopper message) handed to a person, and the time of their first handoff."""
    conversations = first_messages(events)
    found: dict[str, float] = {}
    for event in events:
        if is_handoff(event) and event.sender_id in conversations and (
                event.sender_id not in found or event.timestamp < found[event.sender_id]):
            found[event.sender_id] = event.timestamp
    return found


def conversations_per_day(events: Sequence[RasaEvent], period: Period) -> dict[str, Any]:
    per_day = Counter(day_of(ts) for ts in first_messages(events).values())
    return {"total": sum(per_day.values()),
            "days": [{"date": d.isoformat(), "conversations": per_day.get(d, 0)} for d in period.days()]}


def containment(events: Sequence[RasaEvent]) -> dict[str, Any]:
    conversations = len(first_messages(events))
    handed_off = len(handoffs(events))
    contained = conversations - handed_off
    return {"conversations": conversations, "contained": contained, "handed_off": handed_off,
            "rate": _rate(contained, conversations)}


def ticket_for(conversation_id: str, handoff_ts: float, tickets: Sequence[TicketRow]) -> TicketRow | None:
    """The conversation's ticket created closest to its handoff, within a day of it (earlier one on a tie)."""
    at = datetime.fromtimestamp(handoff_ts, tz=UTC).replace(tzinfo=None)
    near = [t for t in tickets
            if t.conversation_id == conversation_id and abs(t.created_at - at) <= TICKET_MATCH_WINDOW]
    return min(near, key=lambda t: (abs(t.created_at - at), t.created_at), default=None)


def escalation(events: Sequence[RasaEvent], tickets: Sequence[TicketRow]) -> dict[str, Any]:
    conversations = len(first_messages(events))
    found = handoffs(events)
    by_conversation: dict[str, list[TicketRow]] = defaultdict(list)
    for row in tickets:
        by_conversation[row.conversation_id].append(row)
    reasons: Counter[str] = Counter()
    for conversation_id, ts in found.items():
        ticket = ticket_for(conversation_id, ts, by_conversation.get(conversation_id, []))
        reasons[ticket.reason if ticket is not None and ticket.reason else UNKNOWN_REASON] += 1
    return {"conversations": conversations, "handed_off": len(found), "rate": _rate(len(found), conversations),
            "by_reason": [{"reason": reason, "conversations": n, "rate": _rate(n, conversations)}
                          for reason, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))]}


def fallback(events: Sequence[RasaEvent], period: Period) -> dict[str, Any]:
    typed: Counter[date] = Counter()
    fell: Counter[date] = Counter()
    for event in events:
        if is_typed(event):
            day = day_of(event.timestamp)
            typed[day] += 1
            if intent_of(event) == FALLBACK_INTENT:
                fell[day] += 1
    total, fallbacks = sum(typed.values()), sum(fell.values())
    return {"typed_messages": total, "fallback_messages": fallbacks, "rate": _rate(fallbacks, total),
            "days": [{"date": d.isoformat(), "typed_messages": typed.get(d, 0), "fallback_messages": fell.get(d, 0),
                      "rate": _rate(fell.get(d, 0), typed.get(d, 0))} for d in period.days()]}


def top_intents(events: Sequence[RasaEvent]) -> dict[str, Any]:
    counts = Counter(intent_of(e) for e in events if is_typed(e))
    total = sum(counts.values())
    return {"typed_messages": total,
            "intents": [{"intent": name, "count": n, "share": _rate(n, total)}
                        for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]}


def confidence(events: Sequence[RasaEvent]) -> dict[str, Any]:
    typed = [e for e in events if is_typed(e)]
    values = [c for c in (top_confidence(e) for e in typed) if c is not None]
    clipped = [min(max(v, 0.0), 1.0) for v in values]
    return {"typed_messages": len(typed), "with_confidence": len(values),
            "bins": _histogram(clipped, CONFIDENCE_EDGES)}


def funnel(events: Sequence[RasaEvent]) -> dict[str, Any]:
    searched: set[str] = set()
    clicked: set[str] = set()
    added: set[str] = set()
    searches = clicks = adds = 0
    for event in events:
        if is_search(event):
            searches += 1
            searched.add(event.sender_id)
        elif is_card_click(event):
            clicks += 1
            clicked.add(event.sender_id)
        elif cart_added(event) is not None:
            adds += 1
            added.add(event.sender_id)
    return {"searches": searches, "card_clicks": clicks, "add_to_carts": adds,
            "click_rate": _rate(clicks, searches), "add_rate": _rate(adds, clicks),
            "search_to_cart_rate": _rate(adds, searches),
            "conversations": {"searched": len(searched), "clicked": len(clicked), "added": len(added)}}


def satisfaction(tickets: Sequence[TicketRow], period: Period) -> dict[str, Any]:
    ratings = [t.rating for t in tickets
               if t.rating is not None and 1 <= t.rating <= 5 and period.contains(t.rated_at)]
    counts = Counter(ratings)
    return {"rated_chats": len(ratings),
            "average": round(sum(ratings) / len(ratings), 2) if ratings else None,
            "by_rating": [{"rating": r, "count": counts.get(r, 0)} for r in range(1, 6)]}


def sentiment(events: Sequence[RasaEvent]) -> dict[str, Any]:
    typed = [e for e in events if is_typed(e)]
    scores = [s for s in (sentiment_of(e) for e in typed) if s is not None]
    clipped = [min(max(s, -1.0), 1.0) for s in scores]
    negative = sum(1 for s in clipped if s <= NEGATIVE_AT)
    positive = sum(1 for s in clipped if s >= POSITIVE_AT)
    neutral = len(clipped) - negative - positive
    return {"typed_messages": len(typed), "scored": len(clipped), "unscored": len(typed) - len(clipped),
            "classes": [{"label": label, "count": n, "share": _rate(n, len(clipped))}
                        for label, n in (("negative", negative), ("neutral", neutral), ("positive", positive))],
            "bins": _histogram(clipped, SENTIMENT_EDGES)}


def in_period(events: Iterable[RasaEvent], period: Period) -> list[RasaEvent]:
    """The events stamped inside the period, in stored (id) order."""
    return sorted((e for e in events if period.contains_ts(e.timestamp)), key=lambda e: e.id)


def compute_all(events: Iterable[RasaEvent], tickets: Iterable[TicketRow], since: date, until: date) -> dict[str, Any]:
    """Every figure for the UTC days ``since`` .. ``until`` (inclusive); events outside are ignored."""
    period = Period(since, until)
    within = in_period(events, period)
    rows = list(tickets)
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "conversations_per_day": conversations_per_day(within, period),
        "containment": containment(within),
        "escalation": escalation(within, rows),
        "fallback": fallback(within, period),
        "top_intents": top_intents(within),
        "confidence": confidence(within),
        "funnel": funnel(within),
        "satisfaction": satisfaction(rows, period),
        "sentiment": sentiment(within),
    }


# --------------------------------------------------------------------------- one row per conversation


def conversation_rows(events: Sequence[RasaEvent], tickets: Sequence[TicketRow], period: Period,
                      limit: int) -> dict[str, Any]:
    """The ``limit`` conversations of the period that started last (newest first), each with its start, last
    shopper message, shopper messages (typed and fallbacks), whether it was handed off (with the ticket's
    reason) and the latest 1-5 rating of its tickets. No message text: ids, times and counts only."""
    within = in_period(events, period)
    first = first_messages(within)
    found = handoffs(within)
    last: dict[str, float] = {}
    messages: Counter[str] = Counter()
    typed: Counter[str] = Counter()
    fell: Counter[str] = Counter()
    for event in within:
        if not is_shopper_message(event):
            continue
        sender = event.sender_id
        messages[sender] += 1
        last[sender] = max(last.get(sender, event.timestamp), event.timestamp)
        if is_typed(event):
            typed[sender] += 1
            fell[sender] += intent_of(event) == FALLBACK_INTENT
    by_conversation: dict[str, list[TicketRow]] = defaultdict(list)
    for row in tickets:
        by_conversation[row.conversation_id].append(row)
    newest = sorted(first, key=lambda s: (-first[s], s))[:max(limit, 0)]
    rows = []
    for sender in newest:
        own = by_conversation.get(sender, [])
        ticket = ticket_for(sender, found[sender], own) if sender in found else None
        rated = [t for t in own if t.rating is not None and 1 <= t.rating <= 5 and t.rated_at is not None]
        rating = max(rated, key=lambda t: t.rated_at or t.created_at).rating if rated else None
        rows.append({"conversation_id": sender, "started_at": _iso(first[sender]), "last_at": _iso(last[sender]),
                     "shopper_messages": messages[sender], "typed_messages": typed[sender],
                     "fallback_messages": fell[sender], "handed_off": sender in found,
                     "reason": (ticket.reason or UNKNOWN_REASON) if ticket is not None else
                     (UNKNOWN_REASON if sender in found else None),
                     "rating": rating})
    return {"since": period.since.isoformat(), "until": period.until.isoformat(), "total": len(first),
            "limit": limit, "conversations": rows}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
