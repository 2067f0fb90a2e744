"""Reading what the shopper refers to from a Rasa tracker."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker

from actions import services
from bot.catalog.views import ProductView
from bot.ids import parse_id
from bot.search import references
from bot.shop.orders import Requester


def user_text(tracker: Tracker) -> str:
    """The shopper's words; empty for a button payload such as ``/add_to_cart{...}``."""
    text = (tracker.latest_message.get("text") or "").strip()
    return "" if text.startswith("/") else text


def intent_of(tracker: Tracker) -> str:
    """The intent NLU (or a button payload) gave the shopper's latest message; empty when there is none."""
    return str((tracker.latest_message.get("intent") or {}).get("name") or "")


def entity(tracker: Tracker, name: str) -> str | None:
    value = next(tracker.get_latest_entity_values(name), None)
    return None if value is None else str(value)


def shown_ids(tracker: Tracker) -> list[int]:
    return [int(i) for i in tracker.get_slot("shown_products") or []]


def referred_products(tracker: Tracker, limit: int = 1) -> list[ProductView]:
    """Products the latest message points at: a button's id, an ordinal, a name, or the one in focus."""
    search = services.product_search()
    if (pid := parse_id(entity(tracker, "product_id"))) and (product := search.get(pid)):  # bounded: no overflow
        return [product]
    shown = [p for p in (search.get(i) for i in shown_ids(tracker)) if p is not None]
    text = user_text(tracker)
    picked = [shown[i] for i in references.positions(text, len(shown))]
    if not picked and text:
        named = references.by_name(text, [p.title for p in shown])
        if len(named) <= limit:
            picked = [shown[i] for i in named]
    if not picked and (focused := tracker.get_slot("focused_product")) is not None:
        product = search.get(int(focused))
        picked = [product] if product else []
    return picked[:limit]


def _latest_user_metadata(tracker: Tracker) -> dict[str, Any]:
    """Metadata the channel sent with the shopper's latest message.

    Rasa 3.6 copies it into ``latest_message["metadata"]``; the latest ``user`` event carries it too
    (read when a tracker comes without it, e.g. a message injected through the HTTP API).
    """
    metadata = (tracker.latest_message or {}).get("metadata")
    if isinstance(metadata, dict) and metadata:
        return metadata
    for event in reversed(tracker.events or []):
        if event.get("event") == "user":
            found = event.get("metadata") or (event.get("parse_data") or {}).get("metadata")
            return found if isinstance(found, dict) else {}
    return {}


def requester(tracker: Tracker) -> Requester:
    """Who is asking: the conversation, and the customer only when the gateway verified their token.

    The gateway sets ``customer_id`` in the message metadata after checking a signed token and strips
    any value a client sent, so it is the only source of identity; slots never are.
    """
    metadata = _latest_user_metadata(tracker)
    raw = metadata.get("customer_id")
    customer_id = raw if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0 else None
    if isinstance(raw, str) and raw.isdigit() and int(raw) > 0:
        customer_id = int(raw)
    client = metadata.get("client_key")
    return Requester(conversation_id=tracker.sender_id, customer_id=customer_id,
                     client_key=str(client)[:100] if isinstance(client, str) and client else None)
