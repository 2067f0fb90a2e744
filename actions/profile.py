"""Who the shopper is to us: greeting by name, preferences with consent, their data, recommendations.

Identity comes only from ``requester(tracker)`` (the gateway's verified token); slots never
decide whose profile is read or changed. A stated preference is saved only when the customer
consented to personalization; otherwise the assistant asks, keeps the preference in the
``pending_preference`` slot (a dict ``{"size": ["M"], "budget": [":100"]}``) and saves it when
consent is given, either through ``action_give_consent`` or a "yes" to the pending confirmation
``give_consent`` (``answer_consent``, for ``action_confirm``).
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import services
from actions.context import requester, user_text
from actions.shop_answers import say_policy_answer
from bot.db import session_scope
from bot.shop import crm
from bot.shop.recommend import Recommender, customer_history

CONSENT_CONFIRMATION = "give_consent"  # value of ``pending_confirmation`` while the consent question is open
_BUDGET = re.compile(r"\b(?:budget|spend|price\s+range|max(?:imum)?|up\s+to)\b\D{0,20}?\$?\s*(\d+(?:[.,]\d+)?)",
                     re.I)
_OPEN_ORDER_WORDS = {"placed": "is waiting for payment", "paid": "is being prepared for shipping",
                     "shipped": "is on its way"}
RECOMMENDER_TTL_S = 60.0


def _customer_id(tracker: Tracker) -> int | None:
    services.database()
    return requester(tracker).customer_id


# --------------------------------------------------------------------------- what the shopper stated


def stated_preferences(tracker: Tracker) -> list[tuple[str, str]]:
    """(kind, value) pairs from the latest message: sizes, brands, colors (catalog spelling when the
    catalog knows the value, else as said) and a budget from a price phrase."""
    text = user_text(tracker)
    entities = tracker.latest_message.get("entities") or []
    parsed = services.product_search().parse(text, entities)
    found: list[tuple[str, str]] = []
    for kind, values in (("size", parsed.filters.sizes), ("brand", parsed.filters.brands),
                         ("color", parsed.filters.colors)):
        raw = [str(e.get("value")) for e in entities if e.get("entity") == kind and e.get("value")]
        known = {v.lower() for v in values}
        for value in [*values, *(r for r in raw if r.lower() not in known)]:
            if value.strip() and (kind, value) not in found:
                found.append((kind, value))
    low, high = parsed.filters.min_price, parsed.filters.max_price
    if low is None and high is None and (match := _BUDGET.search(text)):
        high = float(match.group(1).replace(",", ""))
    if low is not None or high is not None:
        found.append(("budget", crm.budget_value(low, high)))
    return found


def _pending(tracker: Tracker) -> list[tuple[str, str]]:
    """The preferences waiting for consent, validated (the slot is ours, but never trust shapes)."""
    value = tracker.get_slot("pending_preference")
    if not isinstance(value, dict):
        return []
    pairs = []
    for kind, values in value.items():
        if kind in crm.PREFERENCE_KINDS and isinstance(values, list):
            for v in values[:10]:
                if isinstance(v, str) and 0 < len(v) <= 120:
                    try:
                        pairs.append((kind, crm.normalise_preference(kind, v)))
                    except ValueError:
                        continue
    return pairs


def _as_slot(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    slot: dict[str, list[str]] = {}
    for kind, value in pairs:
        if value not in slot.setdefault(kind, []):
            slot[kind].append(value)
    return slot


def _words(pairs: list[tuple[str, str]]) -> str:
    parts = [crm.describe_preference(kind, value) for kind, value in pairs]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _save(customer_id: int, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    with session_scope() as session:
        return [(kind, crm.normalise_preference(kind, value)) for kind, value in pairs
                if crm.save_preference(session, customer_id, kind, value)]


CLEAR_PENDING = [SlotSet("pending_preference", None)]
SIGN_IN_FIRST = ("I can only remember preferences for signed-in shoppers. Sign in on the shop and tell me again. "
                 "Until then, just add it to your search, like \"running shoes size 10 under 80\".")


class ActionSavePreference(Action):
    """"I'm a size M", "I love Adidas", "my budget is under 100": saved with consent, else ask for it."""

    def name(self) -> str:
        return "action_save_preference"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        stated = stated_preferences(tracker)
        if not stated:
            dispatcher.utter_message(text="I didn't catch that preference. You can tell me your size, favourite "
                                          "brands or colors, or a budget, like \"I'm a size M\" or \"my budget is "
                                          "under 100\".")
            return []
        customer_id = _customer_id(tracker)
        if customer_id is None:
            dispatcher.utter_message(text=SIGN_IN_FIRST)
            return []
        with session_scope() as session:
            consent = crm.has_consent(session, customer_id)
        if consent:
            _save(customer_id, stated)
            dispatcher.utter_message(text=f"Got it, I'll remember {_words(stated)} and use it when you search. "
                                          "Ask \"what do you know about me\" to see or delete it.")
            return CLEAR_PENDING
        asked_before = bool(_pending(tracker))
        pending = _as_slot(_pending(tracker) + stated)
        question = (f"Shall I remember {_words(stated)} for your next visits? I'd keep it with your account and use "
                    "it, and your past orders, to tailor searches and suggestions. You can see or delete it any time.")
        if asked_before:
            question = f"I'll remember {_words(stated)} too if you let me. Shall I keep your preferences?"
        dispatcher.utter_message(text=question, buttons=[{"title": "Yes, remember it", "payload": "/give_consent"},
                                                         {"title": "No, thanks", "payload": "/deny"}])
        return [SlotSet("pending_preference", pending), SlotSet("pending_confirmation", CONSENT_CONFIRMATION)]


def answer_consent(dispatcher: CollectingDispatcher, tracker: Tracker, agreed: bool) -> list[dict[str, Any]]:
    """The shopper's answer to "shall I remember ...?": saves what was pending when they agree."""
    clear = [*CLEAR_PENDING, SlotSet("pending_confirmation", None)]
    pending = _pending(tracker)
    if not agreed:
        dispatcher.utter_message(text="No problem, I won't remember it." if pending
                                 else "Okay, personalization stays off.")
        return clear
    customer_id = _customer_id(tracker)
    if customer_id is None:
        dispatcher.utter_message(text=SIGN_IN_FIRST)
        return clear
    with session_scope() as session:
        already = crm.has_consent(session, customer_id)
        crm.set_consent(session, customer_id, True)
    _save(customer_id, pending)
    if pending:
        text = (f"Thanks! I'll remember {_words(pending)} and use it to tailor your searches and suggestions. "
                "Say \"forget my data\" any time to remove it.")
    elif already:
        text = ("Personalization is already on. Tell me your size, favourite brands or colors, or a budget, and "
                "I'll remember them.")
    else:
        text = ("Thanks, personalization is on: I'll use your past orders for suggestions, and you can tell me your "
                "size, favourite brands or a budget to remember. Say \"forget my data\" any time to turn it off.")
    dispatcher.utter_message(text=text)
    return clear


class ActionGiveConsent(Action):
    def name(self) -> str:
        return "action_give_consent"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        return answer_consent(dispatcher, tracker, agreed=True)


# --------------------------------------------------------------------------- seeing and removing data


def _order_words(order: crm.LatestOrder) -> str:
    return _OPEN_ORDER_WORDS.get(order.status, order.status.replace("_", " "))


class ActionShowProfileData(Action):
    """"What do you know about me?": contact details, orders, saved preferences, consent."""

    def name(self) -> str:
        return "action_show_profile_data"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        customer_id = _customer_id(tracker)
        view = None
        if customer_id is not None:
            with session_scope() as session:
                try:
                    view = crm.profile(session, customer_id)
                except crm.UnknownCustomer:
                    view = None
        if view is None:
            dispatcher.utter_message(text="You're not signed in, so I don't keep anything about you: this chat isn't "
                                          "linked to an account. Sign in on the shop to see what your account holds.")
            return []
        prefs = [(kind, value) for kind, values in view.preferences.items() for value in values]
        latest = view.latest_order
        orders = f"{view.all_orders}" + (f" (latest {latest.number}, {latest.status.replace('_', ' ')})"
                                         if latest else "")
        lines = ["Here's what I keep about you:",
                 f"• Name: {view.name or 'not given'}",
                 f"• Email: {view.email}",
                 *([f"• Phone: {view.phone}"] if view.phone else []),
                 *([f"• Postcode: {view.postcode}"] if view.postcode else []),
                 f"• Orders: {orders}",
                 f"• Saved preferences: {_words(prefs) if prefs else 'none'}",
                 "• Personalization: " + ("on, so I use your saved preferences and past orders to tailor searches "
                                          "and suggestions" if view.consent else
                                          "off, so I don't use your orders for suggestions or keep preferences")]
        buttons = []
        if prefs or view.consent:
            buttons.append({"title": "Delete my preferences", "payload": "/forget_my_data"})
        if not view.consent:
            buttons.append({"title": "Turn on personalization", "payload": "/give_consent"})
        dispatcher.utter_message(text="\n".join(lines), buttons=buttons)
        return []


class ActionForgetProfileData(Action):
    """Deletes saved preferences and withdraws consent; account and orders stay (deliveries, returns)."""

    def name(self) -> str:
        return "action_forget_profile_data"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        clear = [*CLEAR_PENDING, SlotSet("pending_confirmation", None)] if tracker.get_slot(
            "pending_confirmation") == CONSENT_CONFIRMATION else list(CLEAR_PENDING)
        customer_id = _customer_id(tracker)
        forgotten = None
        if customer_id is not None:
            with session_scope() as session:
                try:
                    forgotten = crm.forget(session, customer_id)
                except crm.UnknownCustomer:
                    forgotten = None
        if forgotten is None:
            dispatcher.utter_message(text="You're not signed in, so there's nothing stored about you to delete: "
                                          "this chat isn't linked to an account.")
            return clear
        prefs = [(kind, value) for kind, values in forgotten.preferences.items() for value in values]
        done = (f"Done: I've deleted your saved preferences ({_words(prefs)}) and switched personalization off"
                if prefs else "Done: there were no saved preferences, and personalization is off")
        dispatcher.utter_message(text=f"{done}, so I won't use your orders for suggestions either. Your account "
                                      "and orders stay as they are, since the shop needs them for deliveries and "
                                      "returns.")
        return clear


# --------------------------------------------------------------------------- greeting


class ActionGreet(Action):
    """A signed-in shopper by first name, with their open order or saved preferences; guests as usual."""

    def name(self) -> str:
        return "action_greet"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        customer_id = _customer_id(tracker)
        facts = None
        if customer_id is not None:
            with session_scope() as session:
                facts = crm.greeting(session, customer_id)
        if facts is None:
            say_policy_answer(dispatcher, "greet")  # the shop's usual greeting
            return []
        hello = f"Welcome back, {facts.first_name}!" if facts.first_name else "Welcome back!"
        buttons = [{"title": "Picked for you", "payload": "/recommend"}]
        if facts.open_order:
            hint = f"Your order {facts.open_order.number} {_order_words(facts.open_order)}."
            buttons.insert(0, {"title": "Track my order", "payload": "/track_order"})
        elif prefs := [(k, v) for k, values in facts.preferences.items() if k in ("size", "budget") for v in values]:
            hint = f"I'll keep {_words(prefs)} in mind when you search."
        else:
            hint = "What are you looking for today?"
        dispatcher.utter_message(text=f"{hello} {hint}", buttons=buttons)
        return []


# --------------------------------------------------------------------------- recommendations


class _RecommenderCache:
    """One recommender per action-server process, rebuilt from orders at most every ``RECOMMENDER_TTL_S``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._built = 0.0
        self._value: Recommender | None = None

    def get(self) -> Recommender:
        with self._lock:
            if self._value is None or time.monotonic() - self._built > RECOMMENDER_TTL_S:
                services.database()
                search = services.product_search()
                with session_scope() as session:
                    self._value = Recommender.from_session(session, search.index.dense)
                self._built = time.monotonic()
            return self._value

    def clear(self) -> None:
        with self._lock:
            self._value = None


recommender_cache = _RecommenderCache()


def recommendations(tracker: Tracker, anchor_id: int | None, limit: int,
                    exclude: list[int] | None = None) -> tuple[list[tuple[Any, str]], bool]:
    """Products to show (``ProductView``, reason) and whether the shopper's history was used.

    The history is read only for a signed-in customer who consented; what is shown is checked
    against the live catalog (in stock, priced) before it goes out.
    """
    customer_id = _customer_id(tracker)
    history = []
    if customer_id is not None:
        with session_scope() as session:
            if crm.has_consent(session, customer_id):
                history = customer_history(session, customer_id)
    recommender = recommender_cache.get()
    picks = recommender.recommend(anchors=[anchor_id] if anchor_id is not None else [], history=history,
                                  limit=limit * 3, exclude=exclude or [])
    search = services.product_search()
    shown = []
    for pick in picks:
        product = search.get(pick.product_id)
        if product is not None and product.stock > 0 and product.price is not None:
            shown.append((product, pick.reason[:1].upper() + pick.reason[1:]))
        if len(shown) == limit:
            break
    return shown, bool(history)


# --------------------------------------------------------------------------- saved preferences as search defaults


def saved_search_defaults(tracker: Tracker, query: Any) -> tuple[Any, str]:
    """The query with the saved size and budget filled in where the search names none and they fit.

    Only for a signed-in customer who consented. Returns the query (a ``ParsedQuery``) and a
    sentence telling the shopper what was used and how to drop it ("" when nothing was).
    """
    from dataclasses import replace

    filters = query.filters
    if filters.sizes and (filters.min_price is not None or filters.max_price is not None):
        return query, ""
    customer_id = _customer_id(tracker)
    if customer_id is None:
        return query, ""
    with session_scope() as session:
        defaults = crm.search_defaults(session, customer_id)
    if defaults.empty:
        return query, ""
    candidates = [h.product for h in services.product_search().search(query, limit=20)]
    filters, applied = crm.apply_search_defaults(filters, defaults, candidates)
    if not applied:
        return query, ""
    drops = [("any size" if words.startswith("size") else "any price") for words in applied]
    say = " or ".join(f"\"{w}\"" for w in drops)
    return replace(query, filters=filters), (f"Using your saved {' and '.join(applied)}: say {say} to drop "
                                             f"{'it' if len(applied) == 1 else 'them'}.")
