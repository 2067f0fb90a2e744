"""Reading what the shopper refers to from a Rasa tracker."""

from __future__ import annotations

from rasa_sdk import Tracker

from actions import services
from bot.search import references
from bot.search.service import ProductView


def user_text(tracker: Tracker) -> str:
    """The shopper's words; empty for a button payload such as ``/add_to_cart{...}``."""
    text = (tracker.latest_message.get("text") or "").strip()
    return "" if text.startswith("/") else text


def entity(tracker: Tracker, name: str) -> str | None:
    value = next(tracker.get_latest_entity_values(name), None)
    return None if value is None else str(value)


def shown_ids(tracker: Tracker) -> list[int]:
    return [int(i) for i in tracker.get_slot("shown_products") or []]


def referred_products(tracker: Tracker, limit: int = 1) -> list[ProductView]:
    """Products the latest message points at: a button's id, an ordinal, a name, or the one in focus."""
    search = services.product_search()
    if (pid := entity(tracker, "product_id")) and pid.isdigit() and (product := search.get(int(pid))):
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
