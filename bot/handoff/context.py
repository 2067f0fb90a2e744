"""The context packet: everything an agent needs so the shopper never repeats themselves.

:func:`build_packet` is pure: the escalation action gathers the pieces (transcript from Rasa's
tracker, CRM profile, recent orders, cart, last search, slots) and this turns them into one
JSON-safe dict, stored on the ticket and sent to helpdesks. Layout (``version`` 1)::

    {"version": 1, "created_at", "reason", "reason_detail", "mood", "mood_trajectory": [..],
     "decision": {"reason", "detail", "mood", "turn_index"} | None,
     "transcript": [{"role": "shopper"|"bot"|"agent", "text", "at", "intent", "confidence", "sentiment",
                     "author"?, "clicked"? (a button press: the text is the button's words)}],
     "customer": {"customer_id", "name", "email", "phone", "segment", "segment_label", "lifetime_value",
                  "orders_count", "last_order_at"} | None,
     "orders": [{"number", "status", "status_label", "placed_at", "total", "currency", "items": [..], ...}],
     "cart": {"items": [..], "item_count", "total", "currency"} | None,
     "last_search": {"query", "filters"} | None, "slots": {...}, "summary": "one line for queues"}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

PACKET_VERSION = 1
MAX_TRANSCRIPT = 200  # messages kept (the latest)
MAX_TEXT = 2000  # characters per message
MAX_SLOT_JSON = 2000
# Slots that are form machinery or transient secrets, not context.
HIDDEN_SLOTS = frozenset({"requested_slot", "order_contact", "session_started_metadata", "followup_email"})
ROLES = ("shopper", "bot", "agent")


def iso(moment: datetime | date | None) -> str | None:
    """Naive UTC datetimes as ISO 8601 with ``Z`` (so browsers do not read them as local time)."""
    if moment is None:
        return None
    if isinstance(moment, datetime):
        return moment.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
    return moment.isoformat()


def _num(value: Any, digits: int = 3) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_safe(value: Any, depth: int = 0) -> Any:
    """Slot values as JSON: plain types kept, datetimes as ISO, anything else as text."""
    if depth > 6:
        return _text(value, 200)
    if value is None or isinstance(value, bool | int | str):
        return _text(value) if isinstance(value, str) else value
    if isinstance(value, float):
        return _num(value, 6)
    if isinstance(value, datetime | date):
        return iso(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v, depth + 1) for k, v in list(value.items())[:100]}
    if isinstance(value, list | tuple | set):
        return [_json_safe(v, depth + 1) for v in list(value)[:100]]
    return _text(value, 200)


def payload_words(payload: str) -> str:
    """A button payload whose button is not known, in words for an agent: ``/add_to_cart{"product_id": "5"}``
    -> ``[button: add to cart (product_id 5)]``; text that is no payload stays as it is."""
    if not payload.startswith("/"):
        return payload
    intent, _, raw = payload[1:].partition("{")
    words = intent.replace("_", " ").strip() or "no intent"
    try:
        entities = json.loads("{" + raw) if raw else {}
    except ValueError:
        entities = {}
    if isinstance(entities, dict) and entities:
        words += " (" + ", ".join(f"{k} {v}" for k, v in entities.items()) + ")"
    return f"[button: {_text(words, 300)}]"


def transcript_entry(role: str, text: str, at: datetime | None = None, intent: str | None = None,
                     confidence: float | None = None, sentiment: float | None = None,
                     author: str | None = None, clicked: bool = False) -> dict[str, Any]:
    """One message; ``clicked``: a shopper's button press, ``text`` being what the button said."""
    if role not in ROLES:
        raise ValueError(f"transcript role must be one of {ROLES}, got {role!r}")
    entry = {"role": role, "text": _text(text), "at": iso(at), "intent": intent,
             "confidence": _num(confidence), "sentiment": _num(sentiment)}
    if author:
        entry["author"] = _text(author, 120)
    if clicked:
        entry["clicked"] = True
    return entry


def _customer(profile: Any) -> dict[str, Any] | None:
    if profile is None:
        return None
    get = profile.get if isinstance(profile, Mapping) else lambda k, d=None: getattr(profile, k, d)
    return {
        "customer_id": get("customer_id"), "name": get("name") or "", "email": get("email") or "",
        "phone": get("phone") or "", "segment": get("segment") or "prospect",
        "segment_label": get("segment_label") or get("segment") or "prospect",
        "lifetime_value": _num(get("lifetime_value") or 0.0, 2), "orders_count": get("orders_count") or 0,
        "last_order_at": _json_safe(get("last_order_at")),
    }


def _order(order: Any) -> dict[str, Any]:
    if isinstance(order, Mapping):
        return {str(k): _json_safe(v) for k, v in order.items()}
    return {
        "number": order.number, "status": order.status, "status_label": order.status_label,
        "placed_at": iso(order.placed_at), "total": _num(order.total, 2), "currency": order.currency,
        "items": [{"title": i.title, "size": i.size, "color": i.color, "quantity": i.quantity,
                   "unit_price": _num(i.unit_price, 2)} for i in order.items],
        "shipping_method": order.shipping_method, "carrier": order.carrier,
        "tracking_number": order.tracking_number, "tracking_url": order.tracking_url,
        "shipped_at": iso(order.shipped_at), "expected_delivery": iso(order.expected_delivery),
        "delivered_at": iso(order.delivered_at), "can_cancel": order.can_cancel, "can_return": order.can_return,
    }


def _cart(cart: Any) -> dict[str, Any] | None:
    if cart is None:
        return None
    if isinstance(cart, Mapping):
        return {str(k): _json_safe(v) for k, v in cart.items()}
    return {
        "items": [{"product_id": line.product_id, "title": line.title, "size": line.size, "color": line.color,
                   "quantity": line.quantity, "unit_price": _num(line.unit_price, 2), "total": _num(line.total, 2)}
                  for line in cart.lines],
        "item_count": cart.item_count, "total": _num(cart.total, 2), "currency": cart.currency,
    }


def _summary(reason: str, detail: str, mood: float | None, customer: dict[str, Any] | None,
             transcript: list[dict[str, Any]]) -> str:
    who = "Guest"
    if customer:
        who = f"{customer['segment_label']} customer {customer['name']}".strip()
    words = reason.replace("_", " ")
    if detail:
        words += f" ({detail})"
    if mood is not None:
        words += f", mood {mood:+.2f}"
    last = next((m["text"] for m in reversed(transcript) if m["role"] == "shopper" and m["text"]), "")
    quote = f': "{_text(last, 140)}"' if last else ""
    return f"{who}: {words}{quote}"


def build_packet(transcript: Sequence[Mapping[str, Any]], reason: str, decision: Any, profile: Any,
                 orders: Sequence[Any], cart: Any, last_search: Mapping[str, Any] | None,
                 slots: Mapping[str, Any], *, mood_trajectory: Sequence[float] = (), reason_detail: str = "",
                 now: datetime | None = None) -> dict[str, Any]:
    """The packet (see the module docstring). ``decision`` is a ``bot.escalation.decision.Decision`` (or
    ``sentiment_triggers.Decision``) or None; the agent sees its score, threshold and the signals that fired;
    ``profile`` a ``ProfileView`` (or a mapping), ``orders`` ``OrderView``s, ``cart`` a ``CartSummary``."""
    messages = [transcript_entry(m.get("role", "shopper"), m.get("text") or "", None, m.get("intent"),
                                 m.get("confidence"), m.get("sentiment"), m.get("author"), m.get("clicked") is True)
                | {"at": m.get("at") if isinstance(m.get("at"), str) else iso(m.get("at"))}
                for m in list(transcript)[-MAX_TRANSCRIPT:]]
    trajectory = [v for v in (_num(x) for x in mood_trajectory) if v is not None]
    decided = None
    if decision is not None:
        decided = {"reason": decision.reason, "detail": decision.detail, "mood": _num(decision.mood),
                   "turn_index": decision.turn_index, "score": _num(getattr(decision, "score", None)),
                   "threshold": _num(getattr(decision, "threshold", None)),
                   "signals": [str(s) for s in getattr(decision, "signals", ())]}
    mood = trajectory[-1] if trajectory else (decided["mood"] if decided else None)
    detail = reason_detail or (decided["detail"] if decided else "")
    customer = _customer(profile)
    kept_slots = {}
    for name, value in sorted(slots.items()):
        if value is None or name in HIDDEN_SLOTS or value in ("", [], {}):
            continue
        safe = _json_safe(value)
        kept_slots[name] = safe if len(repr(safe)) <= MAX_SLOT_JSON else _text(repr(safe), MAX_SLOT_JSON)
    search = None
    if last_search and (last_search.get("query") or last_search.get("filters")):
        search = {"query": _text(last_search.get("query") or "", 300),
                  "filters": _json_safe(last_search.get("filters") or {})}
    return {
        "version": PACKET_VERSION,
        "created_at": iso(now),
        "reason": reason,
        "reason_detail": _text(detail, 500),
        "decision": decided,
        "mood": mood,
        "mood_trajectory": trajectory,
        "transcript": messages,
        "customer": customer,
        "orders": [_order(o) for o in orders],
        "cart": _cart(cart),
        "last_search": search,
        "slots": kept_slots,
        "summary": _summary(reason, _text(detail, 120), mood, customer, messages),
    }
