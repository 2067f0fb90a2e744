"""CRM: RFM scores and segments on a hand-computed fixture, preferences with consent, the profile actions.

The RFM fixture lives in its own temporary SQLite database (quintiles depend on every customer);
the action tests use the shared test database with customers of their own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db import migrate, session_scope
from bot.shop import crm
from bot.shop.tables import CANCELLED, DELIVERED, PLACED, SHIPPED, CrmProfile, Customer, Order, Preference, Refund

ROOT = Path(__file__).resolve().parents[2]
NOW = crm.utcnow().replace(microsecond=0)


def add_order(session: Session, customer: Customer | None, days_ago: float, total: float, status: str = DELIVERED,
              paid: bool = True, email: str | None = None) -> Order:
    placed = NOW - timedelta(days=days_ago)
    order = Order(number=f"T-{uuid.uuid4().hex[:10]}", customer=customer, email=email or customer.email,  # type: ignore[union-attr]
                  status=status, subtotal=total, total=total, placed_at=placed, updated_at=placed,
                  paid_at=placed + timedelta(minutes=5) if paid else None)
    session.add(order)
    session.flush()
    return order


def refund(session: Session, order: Order, amount: float, status: str, reason: str = "return") -> None:
    session.add(Refund(order_id=order.id, amount=amount, status=status, reason=reason, created_at=order.placed_at))


@pytest.fixture(scope="module")
def rfm_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Five buyers with distinct values on every axis (so scores are their ranks 1-5) and one prospect.

    recency (days since last purchase): Dan 300, Eve 200, Bob 5, Cat 2, Ann 1 -> R 1, 2, 3, 4, 5
    frequency (purchases):              Cat 1, Eve 2, Dan 3, Bob 4, Ann 5      -> F 1, 2, 3, 4, 5
    net paid:  Eve 40, Bob 150 (one of his 4 orders is unpaid), Dan 300 (900 paid, 600 refunded),
               Cat 500, Ann 1000 (a cancelled 500 order and its refund count for nothing) -> M 1..5
    segments: Ann vip (5/5/5), Bob loyal (3/4/2), Cat new (4/1/4), Dan at_risk (1/3/3),
              Eve hibernating (2/2/1), Fay prospect (only a cancelled order).
    """
    url = f"sqlite:///{tmp_path_factory.mktemp('crm') / 'crm.sqlite3'}"
    migrate(url)
    with session_scope(url) as s:
        people = {name: Customer(email=f"{name.lower()}@example.com", name=f"{name} Tester")
                  for name in ("Ann", "Bob", "Cat", "Dan", "Eve", "Fay")}
        s.add_all(people.values())
        s.flush()
        for days in (1, 30, 60, 90, 120):
            add_order(s, people["Ann"], days, 200.0)
        cancelled = add_order(s, people["Ann"], 3, 500.0, status=CANCELLED)
        refund(s, cancelled, 500.0, "pending", reason="cancellation")
        for days in (5, 50, 100):
            add_order(s, people["Bob"], days, 50.0)
        add_order(s, people["Bob"], 7, 50.0, status=PLACED, paid=False)
        add_order(s, people["Cat"], 2, 500.0, status=SHIPPED)
        dan = [add_order(s, people["Dan"], days, 300.0) for days in (300, 320, 340)]
        refund(s, dan[0], 400.0, "refunded")
        refund(s, dan[1], 200.0, "pending")
        for days in (200, 220):
            add_order(s, people["Eve"], days, 20.0)
        add_order(s, people["Fay"], 10, 80.0, status=CANCELLED)
        crm.refresh_profiles(s)
    yield url


def _profiles(url: str) -> dict[str, CrmProfile]:
    with session_scope(url) as s:
        rows = s.execute(select(Customer.name, CrmProfile).join(CrmProfile, CrmProfile.customer_id == Customer.id))
        return {name.split()[0]: p for name, p in rows}


def test_rfm_scores_segments_and_lifetime_value_match_the_hand_computed_fixture(rfm_db: str) -> None:
    profiles = _profiles(rfm_db)
    expected = {  # name: (R, F, M, segment, net paid, purchases)
        "Ann": (5, 5, 5, "vip", 1000.0, 5),
        "Bob": (3, 4, 2, "loyal", 150.0, 4),
        "Cat": (4, 1, 4, "new", 500.0, 1),
        "Dan": (1, 3, 3, "at_risk", 300.0, 3),
        "Eve": (2, 2, 1, "hibernating", 40.0, 2),
        "Fay": (0, 0, 0, "prospect", 0.0, 0),
    }
    got = {n: (p.recency_score, p.frequency_score, p.monetary_score, p.segment, p.lifetime_value, p.orders_count)
           for n, p in profiles.items()}
    assert got == expected
    assert profiles["Fay"].last_order_at is None
    assert profiles["Ann"].last_order_at == NOW - timedelta(days=1)  # the cancelled order 3 days ago is not it


def test_quintiles_give_ties_one_score_and_segments_follow_their_rules() -> None:
    assert crm.quintile_scores({1: 1.0, 2: 1.0, 3: 1.0, 4: 5.0}) == {1: 1, 2: 1, 3: 1, 4: 4}
    assert crm.quintile_scores({i: float(i) for i in range(10)}) == {i: 1 + i // 2 for i in range(10)}
    assert crm.segment_for(crm.Rfm(3, 2, 5), 2) == "big_spender"
    assert crm.segment_for(crm.Rfm(5, 4, 4), 6) == "champions"
    assert crm.segment_for(crm.Rfm(3, 2, 3), 2) == "regular"
    assert crm.segment_for(crm.Rfm(5, 1, 1), 1) == "new"
    assert crm.segment_for(None, 0) == "prospect"


def test_profile_is_recomputed_when_an_order_changes(rfm_db: str) -> None:
    with session_scope(rfm_db) as s:
        eve = s.scalar(select(Customer).where(Customer.email == "eve@example.com"))
        assert eve is not None
        before = crm.profile(s, eve.id)
        assert (before.orders_count, before.segment) == (2, "hibernating")
        order = add_order(s, eve, 0.5, 700.0)
    try:
        with session_scope(rfm_db) as s:
            after = crm.profile(s, eve.id)
        assert after.orders_count == 3 and after.lifetime_value == 740.0
        assert after.recency_score == 5 and after.last_order_at == order.placed_at
    finally:
        with session_scope(rfm_db) as s:
            s.delete(s.get(Order, order.id))
            crm.refresh_profiles(s)


def test_crm_show_prints_the_profile_and_exits_2_for_an_unknown_email(rfm_db: str) -> None:
    env = {**os.environ, "DATABASE_URL": rfm_db}
    shown = subprocess.run([sys.executable, "-m", "bot", "crm", "show", "ANN@example.com"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    for expected in ("Ann Tester", "ann@example.com", "vip (VIP)", "5 / 5 / 5", "$1,000.00",
                     "5 purchases (6 orders incl. cancelled)", "Preferences", "Consent"):
        assert expected in out, out
    missing = subprocess.run([sys.executable, "-m", "bot", "crm", "show", "nobody@example.com"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2
    assert "no customer with email nobody@example.com" in missing.stderr


def test_preferences_are_kept_only_with_consent_and_forgetting_removes_them(rfm_db: str) -> None:
    with session_scope(rfm_db) as s:
        cat = s.scalar(select(Customer).where(Customer.email == "cat@example.com"))
        assert cat is not None and not cat.consent_personalization
        with pytest.raises(crm.ConsentRequired):
            crm.save_preference(s, cat.id, "size", "m")
        assert crm.profile(s, cat.id).preferences == {}
        assert crm.set_consent(s, cat.id, True)
        for kind, value in (("size", "m"), ("size", "10"), ("size", "L"), ("budget", ":100"), ("budget", "20:60"),
                            ("color", "Navy")):
            crm.save_preference(s, cat.id, kind, value)
        assert not crm.save_preference(s, cat.id, "color", "navy")  # already saved
        for brand in ("Nike", "Adidas", "Puma", "Asics", "Reebok", "Bose"):
            crm.save_preference(s, cat.id, "brand", brand)
        prefs = crm.profile(s, cat.id).preferences
        assert sorted(prefs["size"]) == ["10", "L"]  # one per size family: L replaced M
        assert prefs["budget"] == ["20:60"] and prefs["color"] == ["navy"]
        assert prefs["brand"] == ["Adidas", "Puma", "Asics", "Reebok", "Bose"]  # the latest five
        assert crm.search_defaults(s, cat.id) == crm.SearchDefaults(("10", "L"), "20:60")
        with pytest.raises(ValueError, match="unknown preference"):
            crm.save_preference(s, cat.id, "shoe", "10")
        forgotten = crm.forget(s, cat.id)
        assert forgotten.consent_withdrawn and forgotten.preferences["size"] == ["10", "L"]
        assert not s.scalars(select(Preference).where(Preference.customer_id == cat.id)).all()
        assert not s.get(Customer, cat.id).consent_personalization  # type: ignore[union-attr]
        assert crm.search_defaults(s, cat.id).empty


# --------------------------------------------------------------------------- the actions, on the shared test DB


def tracker(text: str, intent: str, customer_id: int | None = None, slots: dict[str, Any] | None = None,
            entities: list[dict[str, Any]] | None = None) -> Tracker:
    latest: dict[str, Any] = {"text": text, "intent": {"name": intent, "confidence": 0.98},
                              "entities": entities or []}
    if customer_id is not None:
        latest["metadata"] = {"customer_id": customer_id}
    return Tracker(f"test-{uuid.uuid4().hex[:10]}", slots or {}, latest, [], False, None, {}, "action_listen")


def run(action: Any, t: Tracker) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, t, {})
    return dispatcher.messages, {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def cards(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for m in messages if (c := m.get("custom")) and c.get("type") == "product_cards" for p in c["products"]]


@pytest.fixture
def shopper(catalog: int) -> Iterator[int]:
    """A customer in the shared test database, without consent and without orders."""
    with session_scope() as s:
        customer = Customer(email=f"shopper-{uuid.uuid4().hex[:8]}@example.com", name="Nora Quinn", phone="",
                            postcode="97205")
        s.add(customer)
        s.flush()
        cid = customer.id
    yield cid
    with session_scope() as s:
        for order in s.scalars(select(Order).where(Order.customer_id == cid)):
            s.delete(order)
        if (row := s.get(CrmProfile, cid)) is not None:
            s.delete(row)
        s.flush()
        s.delete(s.get(Customer, cid))


def _saved(customer_id: int) -> dict[str, list[str]]:
    with session_scope() as s:
        return crm.profile(s, customer_id).preferences


def test_a_preference_waits_for_consent_and_is_saved_when_given(shopper: int) -> None:
    from actions.profile import ActionGiveConsent, ActionSavePreference

    messages, slots = run(ActionSavePreference(), tracker("I'm a size M", "state_preference", shopper))
    assert "Shall I remember size M" in messages[0]["text"]
    assert [b["payload"] for b in messages[0]["buttons"]] == ["/give_consent", "/deny"]
    assert slots == {"pending_preference": {"size": ["M"]}, "pending_confirmation": "give_consent"}
    assert _saved(shopper) == {}  # nothing kept before consent
    messages, more = run(ActionSavePreference(), tracker("I love Adidas", "state_preference", shopper, slots))
    assert more["pending_preference"] == {"size": ["M"], "brand": ["Adidas"]}
    messages, after = run(ActionGiveConsent(), tracker("/give_consent", "give_consent", shopper, more))
    assert "remember size M and Adidas" in messages[0]["text"]
    assert after == {"pending_preference": None, "pending_confirmation": None}
    assert _saved(shopper) == {"size": ["M"], "brand": ["Adidas"]}
    messages, _ = run(ActionSavePreference(), tracker("my budget is under 100", "state_preference", shopper))
    assert "remember a budget under $100" in messages[0]["text"]
    assert _saved(shopper)["budget"] == [":100"]


def test_declining_consent_saves_nothing(shopper: int) -> None:
    from actions.profile import ActionSavePreference, answer_consent

    _, slots = run(ActionSavePreference(), tracker("my favorite color is green", "state_preference", shopper))
    dispatcher = CollectingDispatcher()
    events = answer_consent(dispatcher, tracker("no", "deny", shopper, slots), agreed=False)
    assert "won't remember" in dispatcher.messages[0]["text"]
    assert {e["name"]: e["value"] for e in events} == {"pending_preference": None, "pending_confirmation": None}
    assert _saved(shopper) == {}
    with session_scope() as s:
        assert not crm.has_consent(s, shopper)


def test_guests_are_told_nothing_is_stored(catalog: int) -> None:
    from actions.profile import (
        ActionForgetProfileData,
        ActionGiveConsent,
        ActionSavePreference,
        ActionShowProfileData,
    )

    messages, slots = run(ActionSavePreference(), tracker("I'm a size M", "state_preference"))
    assert "signed-in shoppers" in messages[0]["text"] and not slots
    messages, _ = run(ActionGiveConsent(), tracker("yes save it", "give_consent"))
    assert "signed-in shoppers" in messages[0]["text"]
    messages, _ = run(ActionShowProfileData(), tracker("what do you know about me", "show_my_data"))
    assert "not signed in" in messages[0]["text"] and "don't keep anything" in messages[0]["text"]
    messages, _ = run(ActionForgetProfileData(), tracker("forget me", "forget_my_data"))
    assert "nothing stored about you" in messages[0]["text"]


def test_show_my_data_then_forget_it(shopper: int) -> None:
    from actions.profile import ActionForgetProfileData, ActionShowProfileData

    with session_scope() as s:
        crm.set_consent(s, shopper, True)
        crm.save_preference(s, shopper, "size", "L")
        customer = s.get(Customer, shopper)
        assert customer is not None
        add_order(s, customer, 3, 120.0, status=SHIPPED)
    messages, _ = run(ActionShowProfileData(), tracker("what do you know about me", "show_my_data", shopper))
    text = messages[0]["text"]
    for expected in ("Name: Nora Quinn", "@example.com", "Postcode: 97205", "Orders: 1 (latest T-",
                     "Saved preferences: size L", "Personalization: on"):
        assert expected in text, text
    assert "segment" not in text.lower()  # internal scores are not the shopper's business
    assert messages[0]["buttons"][0]["payload"] == "/forget_my_data"
    messages, _ = run(ActionForgetProfileData(), tracker("delete my data", "forget_my_data", shopper))
    assert "deleted your saved preferences (size L)" in messages[0]["text"]
    assert _saved(shopper) == {}
    messages, _ = run(ActionShowProfileData(), tracker("what do you know about me", "show_my_data", shopper))
    assert "Saved preferences: none" in messages[0]["text"] and "Personalization: off" in messages[0]["text"]
    assert messages[0]["buttons"] == [{"title": "Turn on personalization", "payload": "/give_consent"}]


def test_greeting_by_first_name_with_the_open_order_and_guests_get_the_usual_greeting(shopper: int) -> None:
    from actions.profile import ActionGreet

    messages, _ = run(ActionGreet(), tracker("hi", "greet"))
    assert "shopping assistant" in messages[0]["text"] and messages[0]["buttons"]
    messages, _ = run(ActionGreet(), tracker("hi", "greet", 10**9))  # a customer id that does not exist
    assert "shopping assistant" in messages[0]["text"] and "Welcome back" not in messages[0]["text"]
    messages, _ = run(ActionGreet(), tracker("hello", "greet", shopper))
    assert messages[0]["text"] == "Welcome back, Nora! What are you looking for today?"
    with session_scope() as s:
        crm.set_consent(s, shopper, True)
        crm.save_preference(s, shopper, "size", "M")
    messages, _ = run(ActionGreet(), tracker("hello", "greet", shopper))
    assert messages[0]["text"] == "Welcome back, Nora! I'll keep size M in mind when you search."
    with session_scope() as s:
        customer = s.get(Customer, shopper)
        order = add_order(s, customer, 2, 80.0, status=SHIPPED)
        number = order.number
    messages, _ = run(ActionGreet(), tracker("hello", "greet", shopper))
    assert messages[0]["text"] == f"Welcome back, Nora! Your order {number} is on its way."
    assert messages[0]["buttons"][0]["payload"] == "/track_order"


def test_saved_size_and_budget_are_search_defaults_only_with_consent(shopper: int) -> None:
    from actions.search import ActionRefineSearch, ActionSearchProducts

    with session_scope() as s:
        crm.set_consent(s, shopper, True)
        crm.save_preference(s, shopper, "size", "M")
        crm.save_preference(s, shopper, "budget", ":120")
    messages, slots = run(ActionSearchProducts(), tracker("jacket", "search_product", shopper))
    shown = cards(messages)
    assert shown and all(c["price"] <= 120 for c in shown)
    assert slots["search_filters"]["sizes"] == ["M"] and slots["search_filters"]["max_price"] == 120
    assert "Using your saved size M and budget under $120" in messages[0]["text"]
    assert "\"any size\" or \"any price\"" in messages[0]["text"]
    # a size says nothing about headphones: only the budget is used there
    messages, slots = run(ActionSearchProducts(), tracker("headphones", "search_product", shopper))
    assert slots["search_filters"]["sizes"] == [] and slots["search_filters"]["max_price"] == 120
    assert "Using your saved budget under $120: say \"any price\" to drop it." in messages[0]["text"]
    # the shopper's own words win
    messages, slots = run(ActionSearchProducts(), tracker("jacket size L under 200", "search_product", shopper))
    assert slots["search_filters"]["sizes"] == ["L"] and slots["search_filters"]["max_price"] == 200
    assert "saved" not in messages[0]["text"]
    # "any size" drops the saved size like any other
    _, first = run(ActionSearchProducts(), tracker("jacket", "search_product", shopper))
    _, refined = run(ActionRefineSearch(), tracker("any size", "refine_search", shopper, first))
    assert refined["search_filters"]["sizes"] == [] and refined["search_filters"]["max_price"] == 120
    # without consent the same shopper's search has no defaults
    with session_scope() as s:
        crm.forget(s, shopper)
    messages, slots = run(ActionSearchProducts(), tracker("jacket", "search_product", shopper))
    assert slots["search_filters"]["sizes"] == [] and slots["search_filters"]["max_price"] is None
    assert "saved" not in messages[0]["text"]


def test_preferences_come_from_entities_and_price_phrases(catalog: int) -> None:
    from actions.profile import stated_preferences

    assert stated_preferences(tracker("i'm a small", "state_preference",
                                      entities=[{"entity": "size", "value": "S"}])) == [("size", "S")]
    assert stated_preferences(tracker("I love adidas", "state_preference")) == [("brand", "Adidas")]
    assert stated_preferences(tracker("i mostly wear navy", "state_preference")) == [("color", "navy")]
    assert stated_preferences(tracker("my shoe size is 42", "state_preference",
                                      entities=[{"entity": "size", "value": "42"}])) == [("size", "42")]
    assert stated_preferences(tracker("i shop on a tight budget, max 40", "state_preference")) == [("budget", ":40")]
    assert stated_preferences(tracker("my budget is 60", "state_preference")) == [("budget", ":60")]
    assert stated_preferences(tracker("my price range is between 30 and 60", "state_preference")) == [
        ("budget", "30:60")]
    assert stated_preferences(tracker("hello there", "state_preference")) == []
