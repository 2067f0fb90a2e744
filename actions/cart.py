"""The cart in the chat: add (asking for a size when needed), view, remove, checkout."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import services
from actions.context import entity, referred_products, user_text
from actions.messages import button, money
from bot.db import session_scope
from bot.search import references
from bot.shop import cart
from bot.shop.cart import CartError, CartSummary


def _cart_text(summary: CartSummary) -> str:
    lines = [f"- {line.quantity} x {line.title}{f' (size {line.size})' if line.size else ''}: "
             f"{money(line.total, line.currency)}" for line in summary.lines]
    return "\n".join([*lines, f"Total: {money(summary.total, summary.currency)} ({summary.item_count} items)"])


def _cart_or_nudge(dispatcher: CollectingDispatcher, tracker: Tracker, empty_text: str) -> CartSummary | None:
    """The shopper's cart, or None after telling them it is empty."""
    with session_scope() as session:
        summary = cart.summary(session, tracker.sender_id)
    if summary.lines:
        return summary
    dispatcher.utter_message(text=empty_text, buttons=[button("Best sellers", "recommend")])
    return None


class ActionAddToCart(Action):
    def name(self) -> str:
        return "action_add_to_cart"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        products = referred_products(tracker)
        if not products:
            dispatcher.utter_message(text="Which product should I add? Pick one from a search, "
                                          "e.g. \"add the first one\".")
            return []
        product = products[0]
        if product.price is None:  # "Price on request": cannot be sold through the cart
            dispatcher.utter_message(text=cart.no_price_text(product.title),
                                     buttons=[button("Similar products", "recommend", product_id=product.id)])
            return [SlotSet("focused_product", float(product.id))]
        if product.stock <= 0:
            dispatcher.utter_message(text=f"Sorry, {product.title} is out of stock right now.",
                                     buttons=[button("Similar products", "recommend", product_id=product.id)])
            return [SlotSet("focused_product", float(product.id))]
        text = user_text(tracker)
        size = entity(tracker, "size") or references.size(text, product.sizes)
        if product.sizes and not size:
            dispatcher.utter_message(
                text=f"Which size of {product.title}?",
                buttons=[button(s, "add_to_cart", product_id=product.id, size=s) for s in product.sizes],
            )
            return [SlotSet("focused_product", float(product.id))]
        quantity = references.quantity(text)
        try:
            with session_scope() as session:
                summary = cart.add_item(session, tracker.sender_id, product.id, quantity, size)
        except CartError as exc:
            dispatcher.utter_message(text=str(exc))
            return [SlotSet("focused_product", float(product.id))]
        dispatcher.utter_message(
            text=f"Added {quantity} x {product.title}{f' (size {size})' if size else ''} to your cart. "
                 f"Your cart: {summary.item_count} items, {money(summary.total, summary.currency)}.",
            buttons=[button("View cart", "view_cart"), button("Checkout", "checkout")],
        )
        return [SlotSet("focused_product", float(product.id))]


class ActionViewCart(Action):
    def name(self) -> str:
        return "action_view_cart"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        summary = _cart_or_nudge(dispatcher, tracker, "Your cart is empty. What are you looking for?")
        if summary is None:
            return []
        dispatcher.utter_message(text="Your cart:\n" + _cart_text(summary),
                                 buttons=[button("Checkout", "checkout")])
        return []


class ActionRemoveFromCart(Action):
    def name(self) -> str:
        return "action_remove_from_cart"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        text = user_text(tracker).lower()
        with session_scope() as session:
            summary = cart.summary(session, tracker.sender_id)
            if not summary.lines:
                dispatcher.utter_message(text="Your cart is already empty.")
                return []
            if any(w in text for w in ("empty", "clear", "everything", "all items", "remove all")):
                cart.remove_item(session, tracker.sender_id)
                dispatcher.utter_message(text="Done, your cart is empty now.")
                return []
            pid = entity(tracker, "product_id")
            target = next((line for line in summary.lines if str(line.product_id) == pid), None)
            if target is None:
                positions = references.positions(text, len(summary.lines)) or references.by_name(
                    text, [line.title for line in summary.lines])
                if len(positions) == 1 or (positions and len(summary.lines) == 1):
                    target = summary.lines[positions[0]]
                elif len(summary.lines) == 1:
                    target = summary.lines[0]
            if target is None:
                dispatcher.utter_message(
                    text="Which one should I remove?",
                    buttons=[button(line.title, "remove_from_cart", product_id=line.product_id)
                             for line in summary.lines],
                )
                return []
            summary = cart.remove_item(session, tracker.sender_id, target.product_id)
        rest = _cart_text(summary) if summary.lines else "Your cart is empty now."
        dispatcher.utter_message(text=f"Removed {target.title}.\n{rest}")
        return []


class ActionCheckout(Action):
    def name(self) -> str:
        return "action_checkout"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        summary = _cart_or_nudge(dispatcher, tracker, "Your cart is empty, so there's nothing to check out yet.")
        if summary is None:
            return []
        policy = services.policy()
        free_over = float(policy.fact("shipping.free_over"))
        shipping_note = ("Standard shipping is free for this order." if summary.total >= free_over else
                         f"Add {money(free_over - summary.total, summary.currency)} more for free standard shipping.")
        link = services.public_url(f"{policy.fact('shop.urls.checkout')}?cart={tracker.sender_id}")
        dispatcher.utter_message(text=f"Here's your order:\n{_cart_text(summary)}\n{shipping_note}\n"
                                      f"Complete your purchase securely here: {link}")
        return []
