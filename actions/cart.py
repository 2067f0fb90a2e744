"""The cart in the chat: add (asking for size and color when needed), view, remove, change quantity, checkout.

When the add asks "Which size of X?" (or which color) it remembers the question in the ``pending_variant``
slot; a typed answer on the next turn ("M", "medium please", "size 10", "the black one") adds that variant,
whatever intent NLU gave it (a rule in data/rules/rules.yml sends the turn after the question here).

The cart belongs to the signed-in customer when the gateway verified one (``customer:<id>``, the
same cart on every device), else to the conversation. Replies carry a ``{"type": "cart"}`` custom
payload that the widget renders as a cart card.
"""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import services
from actions.context import entity, intent_of, referred_products, requester, user_text
from actions.messages import button, money
from actions.search import USUAL_ACTIONS
from bot.catalog.tables import Product
from bot.catalog.views import ProductView
from bot.config import get_settings
from bot.db import session_scope
from bot.ids import parse_id
from bot.search import references
from bot.shop import cart
from bot.shop.cart import CartError, CartLine, CartSummary, NotEnoughStock
from bot.shop.identity import jwt_secret

_NUMBER_WORDS = {"zero": 0, "none": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
                 "seven": 7, "eight": 8, "nine": 9, "ten": 10, "a": 1, "an": 1, "single": 1, "twenty": 20}
_SET_TO = re.compile(r"\b(?:to|make it|set it to|just|only|want|need|=)\s+(\d{1,3}|[a-z]+)\b", re.I)
_POINTER_ONE = re.compile(r"\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|last|this|that|"
                          r"other|same|\d(?:st|nd|rd|th))\s+ones?\b")
_NUMBER = re.compile(r"\b(\d{1,3}|zero|none|one|two|three|four|five|six|seven|eight|nine|ten|twenty)\b", re.I)


def cart_key(tracker: Tracker) -> str:
    """The shopper's cart: the verified customer's, or this conversation's."""
    who = requester(tracker)
    return cart.cart_key(who.conversation_id, who.customer_id)


def _count(summary: CartSummary) -> str:
    return "1 item" if summary.item_count == 1 else f"{summary.item_count} items"


def _line_text(line: CartLine) -> str:
    return f"{line.quantity} x {line.title}{f' ({line.variant})' if line.variant else ''}"


def checkout_link(key: str) -> str:
    """The shop's checkout page for this cart, by a signed reference nobody can guess."""
    reference = cart.checkout_reference(key, jwt_secret(get_settings()))
    return services.public_url(f"{services.policy().fact('shop.urls.checkout')}?cart={reference}")


def _shipping_note(summary: CartSummary) -> str:
    quote = cart.shipping_quote(summary.total, services.policy().fact("shipping"))
    if quote.fee == 0:
        return "Standard shipping is free for this order."
    return (f"Add {money(quote.missing(summary.total), summary.currency)} more for free standard shipping "
            f"(otherwise {money(quote.fee, summary.currency)}).")


def _entities(line: CartLine, **extra: Any) -> dict[str, Any]:
    """Button entities that point at exactly this line."""
    return {"product_id": line.product_id, **({"size": line.size} if line.size else {}),
            **({"color": line.color} if line.color else {}), **extra}


def cart_card(summary: CartSummary, key: str, added: dict[str, Any] | None = None) -> dict[str, Any]:
    """The widget's cart card: lines with their buttons, totals, shipping and the checkout link.

    ``added`` (``{"product_id", "quantity"}``) marks the card that follows a successful add, so analytics
    can count add-to-carts from the stored bot event.
    """
    return {
        "type": "cart",
        **({"added": added} if added else {}),
        "item_count": summary.item_count,
        "currency": summary.currency,
        "total": summary.total,
        "total_label": money(summary.total, summary.currency),
        "shipping_note": _shipping_note(summary) if summary.lines else "",
        "checkout_url": checkout_link(key) if summary.lines else None,
        "lines": [
            {
                "line_id": line.id,
                "product_id": line.product_id,
                "title": line.title,
                "variant": line.variant,
                "size": line.size,
                "color": line.color,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "total": line.total,
                "total_label": money(line.total, line.currency),
                "image": services.public_url(f"/media/products/{line.product_id}.svg"),
                "url": services.public_url(f"/products/{line.product_id}"),
                "buttons": [
                    {**button("−", "update_cart_quantity", **_entities(line, quantity=line.quantity - 1)),
                     "text": f"{line.quantity - 1} x {line.title}" if line.quantity > 1 else f"Remove {line.title}"},
                    *([{**button("+", "update_cart_quantity", **_entities(line, quantity=line.quantity + 1)),
                        "text": f"{line.quantity + 1} x {line.title}"}]
                      if line.quantity < min(line.stock, cart.MAX_QUANTITY) else []),
                    {**button("Remove", "remove_from_cart", **_entities(line)), "text": f"Remove {line.title}"},
                ],
            }
            for line in summary.lines
        ],
    }


def _show_cart(dispatcher: CollectingDispatcher, text: str, summary: CartSummary, key: str,
               added: dict[str, Any] | None = None) -> None:
    dispatcher.utter_message(text=text, json_message=cart_card(summary, key, added))


def _summary(key: str) -> CartSummary:
    with session_scope() as session:
        return cart.summary(session, key)


def _cart_or_nudge(dispatcher: CollectingDispatcher, key: str, empty_text: str) -> CartSummary | None:
    """The shopper's cart, or None after telling them it is empty."""
    summary = _summary(key)
    if summary.lines:
        return summary
    dispatcher.utter_message(text=empty_text, buttons=[button("Best sellers", "recommend")])
    return None


def _color_in(text: str, colors: list[str]) -> str:
    lowered = f" {text.lower()} "
    return next((c for c in colors if f" {c.lower()} " in lowered), "")


def _wanted_quantity(tracker: Tracker) -> int | None:
    """The quantity the shopper asks for: the ``quantity`` entity, "make it 2", "to three"."""
    raw = (entity(tracker, "quantity") or "").strip().lower()
    if raw.isdigit():
        return int(raw)
    if raw in _NUMBER_WORDS:
        return _NUMBER_WORDS[raw]
    text = _POINTER_ONE.sub(r"\1", user_text(tracker).lower())  # "the second one" points, it is no quantity
    for match in _SET_TO.finditer(text):
        word = match.group(1)
        if word.isdigit():
            return int(word)
        if word in _NUMBER_WORDS:
            return _NUMBER_WORDS[word]
    numbers = {m.group(1) for m in _NUMBER.finditer(text)}
    if len(numbers) == 1:
        word = numbers.pop()
        return int(word) if word.isdigit() else _NUMBER_WORDS[word]
    return None


def _target_lines(tracker: Tracker, summary: CartSummary) -> list[CartLine]:
    """The cart lines the latest message points at: a button's product (and size/color), an
    ordinal or a name in the cart, the product in focus; several when it is ambiguous."""
    pid = parse_id(entity(tracker, "product_id"))  # an id within the database's range, or None
    if pid is not None:
        return summary.find(pid, entity(tracker, "size"), entity(tracker, "color"))
    text = user_text(tracker)
    positions = references.positions(text, len(summary.lines)) or references.by_name(
        text, [line.title for line in summary.lines])
    if positions:
        return [summary.lines[i] for i in positions]
    if len(summary.lines) == 1:
        return list(summary.lines)
    focused = tracker.get_slot("focused_product")
    if focused is not None:
        return summary.find(int(focused))
    return list(summary.lines)


def _asked_last_turn(tracker: Tracker) -> dict[str, Any] | None:
    """The variant question the bot asked just before the shopper's latest message, if it asked one.

    The slot alone could be stale (the shopper searched instead of answering); the events tell whether it was
    set between the previous message and this one. A tracker without events (none sent) trusts the slot.
    """
    value = tracker.get_slot("pending_variant")
    if not isinstance(value, dict) or not value.get("product_id"):
        return None
    events = tracker.events or []
    users = [i for i, e in enumerate(events) if e.get("event") == "user"]
    if not users:
        return value
    since = users[-2] + 1 if len(users) > 1 else 0
    asked = any(e.get("event") == "slot" and e.get("name") == "pending_variant" and e.get("value")
                for e in events[since: users[-1]])
    return value if asked else None


def _typed_answer(tracker: Tracker, pending: dict[str, Any]) -> tuple[ProductView, str, str] | None:
    """The product asked about with the size and color a typed answer names ("medium please"), or None."""
    text = user_text(tracker)
    if not text or (entity(tracker, "product_id") or "").strip():
        return None
    search = services.product_search()
    product = search.get(int(pending["product_id"]))
    if product is None:
        return None
    _, every_size, colors = _choices(product)  # a sold-out size is an answer too: it is told it is sold out
    answer = references.variant_answer(text, every_size, colors[""], search.facets.vocabulary().get("color", []))
    if answer is None:
        return None
    size, color = answer
    return product, size or str(pending.get("size") or ""), color or str(pending.get("color") or "")


def _choices(product: ProductView) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """What the shopper chooses between: the sizes in stock, every size (a sold-out one is told so), and the
    colors to choose between in each size (key "": in any size), from the catalog (by variant, when the
    product has variants: the sizes and colors in stock)."""
    with session_scope() as session:
        row = session.get(Product, product.id)
        if row is None:
            return list(product.sizes), list(product.sizes), {"": []}
        every_size = cart.product_sizes(row, in_stock=False)
        return cart.product_sizes(row), every_size, {s: cart.product_colors(row, s) for s in ["", *every_size]}


def _pending(product_id: int, ask: str, size: str, color: str, quantity: int) -> SlotSet:
    return SlotSet("pending_variant", {"product_id": product_id, "ask": ask, "size": size, "color": color,
                                       "quantity": quantity})


class ActionAddToCart(Action):
    def name(self) -> str:
        return "action_add_to_cart"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        pending = _asked_last_turn(tracker)
        answer = _typed_answer(tracker, pending) if pending else None
        intent = intent_of(tracker)
        if answer is not None:
            product, size, color = answer
            quantity = int(pending.get("quantity") or 1) if pending else 1
            return self._add(dispatcher, tracker, product, size, color, quantity)
        if intent != "add_to_cart" and intent in USUAL_ACTIONS:  # sent here after the question; no answer
            return [SlotSet("pending_variant", None), FollowupAction(USUAL_ACTIONS[intent])]
        products = referred_products(tracker)
        if not products:
            dispatcher.utter_message(text="Which product should I add? Pick one from a search, "
                                          "e.g. \"add the first one\".")
            return [SlotSet("pending_variant", None)]
        product = products[0]
        text = user_text(tracker)
        size = entity(tracker, "size") or references.size(text, _choices(product)[1])
        return self._add(dispatcher, tracker, product, size, entity(tracker, "color"),
                         _wanted_quantity_for_add(tracker, text), text)

    def _add(self, dispatcher: CollectingDispatcher, tracker: Tracker, product: ProductView, size: str,
             color: str | None, quantity: int, text: str = "") -> list[dict[str, Any]]:
        """Add ``product`` in this size and color (None: the color named in ``text``), or ask for what is missing."""
        focus = [SlotSet("focused_product", float(product.id)), SlotSet("pending_variant", None)]
        if product.price is None:  # "Price on request": cannot be sold through the cart
            dispatcher.utter_message(text=cart.no_price_text(product.title),
                                     buttons=[button("Similar products", "recommend", product_id=product.id)])
            return focus
        if product.stock <= 0:
            dispatcher.utter_message(text=f"Sorry, {product.title} is out of stock right now.",
                                     buttons=[button("Similar products", "recommend", product_id=product.id)])
            return focus
        sizes, every_size, colors_in = _choices(product)
        sold_out = cart.pick(size, every_size) if size and cart.pick(size, sizes) is None else None
        if sold_out is not None:  # a variant the catalog has, with no stock
            dispatcher.utter_message(text=f"Sorry, {product.title} in size {sold_out} is out of stock. In stock: "
                                          f"{', '.join(sizes)}. Which size would you like?",
                                     buttons=self._size_buttons(product.id, sizes, ""))
            return [focus[0], _pending(product.id, "size", "", color or "", quantity)]
        if sizes and size and cart.pick(size, sizes) is None:
            dispatcher.utter_message(text=f"{product.title} doesn't come in size {size}. Which size would you like?",
                                     buttons=self._size_buttons(product.id, sizes, ""))
            return [focus[0], _pending(product.id, "size", "", color or "", quantity)]
        size = (cart.pick(size, sizes) or "") if sizes else ""
        colors = colors_in.get(size, colors_in[""])
        color = color if color is not None else _color_in(text, colors)
        if colors and color and cart.pick(color, colors) is None:
            dispatcher.utter_message(text=f"{product.title} doesn't come in {color}. "
                                          f"It comes in {', '.join(colors)}: which one would you like?",
                                     buttons=self._color_buttons(product.id, colors, size))
            return [focus[0], _pending(product.id, "color", size, "", quantity)]
        # No color to choose (one color, or one in stock in this size): a color the shopper named still goes to
        # the cart, which refuses a sold-out variant in it and ignores it for a product without color variants.
        color = (cart.pick(color, colors) or "") if colors else (color or "")
        if sizes and not size:
            dispatcher.utter_message(text=f"Which size of {product.title}?",
                                     buttons=self._size_buttons(product.id, sizes, color))
            return [focus[0], _pending(product.id, "size", "", color, quantity)]
        if colors and not color:
            dispatcher.utter_message(text=f"Which color of {product.title}?",
                                     buttons=self._color_buttons(product.id, colors, size))
            return [focus[0], _pending(product.id, "color", size, "", quantity)]

        key = cart_key(tracker)
        try:
            with session_scope() as session:
                summary = cart.add_item(session, key, product.id, quantity, size, color)
        except NotEnoughStock as exc:
            offer = [button(f"Add {exc.available}", "add_to_cart", product_id=product.id, quantity=exc.available,
                            **({"size": size} if size else {}), **({"color": color} if color else {}))]
            dispatcher.utter_message(text=str(exc) + (f" Should I add {exc.available}?" if exc.available else ""),
                                     buttons=offer if exc.available else [button("View cart", "view_cart")])
            return focus
        except CartError as exc:
            dispatcher.utter_message(text=str(exc))
            return focus
        # A product with variants may have filled in the variant's color (the only one in stock in that size).
        lines = [line for line in reversed(summary.lines) if line.product_id == product.id
                 and (not size or line.size == size)]
        line = next((line for line in lines if line.color.lower() == color.lower()), lines[0] if lines else None)
        variant = line.variant if line else ", ".join(p for p in [f"size {size}" if size else "", color] if p)
        _show_cart(dispatcher, f"Added {quantity} x {product.title}{f' ({variant})' if variant else ''} to your cart. "
                               f"Your cart: {_count(summary)}, {money(summary.total, summary.currency)}.",
                   summary, key, added={"product_id": product.id, "quantity": quantity})
        return focus

    @staticmethod
    def _size_buttons(product_id: int, sizes: list[str], color: str) -> list[dict[str, str]]:
        extra = {"color": color} if color else {}
        return [button(s, "add_to_cart", product_id=product_id, size=s, **extra) for s in sizes]

    @staticmethod
    def _color_buttons(product_id: int, colors: list[str], size: str) -> list[dict[str, str]]:
        extra = {"size": size} if size else {}
        return [button(c, "add_to_cart", product_id=product_id, color=c, **extra) for c in colors]


def _wanted_quantity_for_add(tracker: Tracker, text: str) -> int:
    raw = (entity(tracker, "quantity") or "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return references.quantity(text)


class ActionViewCart(Action):
    def name(self) -> str:
        return "action_view_cart"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        key = cart_key(tracker)
        summary = _cart_or_nudge(dispatcher, key, "Your cart is empty. What are you looking for?")
        if summary is None:
            return []
        _show_cart(dispatcher, f"Here's your cart: {_count(summary)}. Total: {money(summary.total, summary.currency)}.",
                   summary, key)
        return []


class ActionRemoveFromCart(Action):
    def name(self) -> str:
        return "action_remove_from_cart"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        text = user_text(tracker).lower()
        key = cart_key(tracker)
        with session_scope() as session:
            summary = cart.summary(session, key)
            if not summary.lines:
                dispatcher.utter_message(text="Your cart is already empty.")
                return []
            if any(w in text for w in ("empty", "clear", "everything", "all items", "remove all")):
                cart.remove_item(session, key)
                dispatcher.utter_message(text="Done, your cart is empty now.")
                return []
            targets = _target_lines(tracker, summary)
            if len(targets) != 1:
                dispatcher.utter_message(
                    text="Which one should I remove?",
                    buttons=[button(_line_text(line), "remove_from_cart", **_entities(line))
                             for line in (targets or summary.lines)],
                )
                return []
            target = targets[0]
            summary = cart.remove_line(session, key, target.id)
        title = f"{target.title}{f' ({target.variant})' if target.variant else ''}"
        if summary.lines:
            _show_cart(dispatcher, f"Removed {title}. Your cart: {_count(summary)}, "
                                   f"{money(summary.total, summary.currency)}.", summary, key)
        else:
            dispatcher.utter_message(text=f"Removed {title}.\nYour cart is empty now.")
        return []


class ActionUpdateCartQuantity(Action):
    """ "make it 2", "change the jacket to 3"; 0 removes the line."""

    def name(self) -> str:
        return "action_update_cart_quantity"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        key = cart_key(tracker)
        summary = _cart_or_nudge(dispatcher, key, "Your cart is empty, so there's no quantity to change.")
        if summary is None:
            return []
        quantity = _wanted_quantity(tracker)
        targets = _target_lines(tracker, summary)
        if quantity is None:
            dispatcher.utter_message(text="How many would you like? For example \"make it 2\".")
            return []
        if len(targets) != 1:
            dispatcher.utter_message(
                text=f"Which item should I change to {quantity}?",
                buttons=[button(_line_text(line), "update_cart_quantity", **_entities(line, quantity=quantity))
                         for line in (targets or summary.lines)],
            )
            return []
        target = targets[0]
        try:
            with session_scope() as session:
                summary = cart.set_quantity(session, key, target.id, quantity)
        except NotEnoughStock as exc:
            offer = ([button(f"Make it {exc.available}", "update_cart_quantity",
                             **_entities(target, quantity=exc.available))] if exc.available else [])
            dispatcher.utter_message(text=str(exc), buttons=offer)
            return []
        except CartError as exc:
            dispatcher.utter_message(text=str(exc))
            return []
        title = f"{target.title}{f' ({target.variant})' if target.variant else ''}"
        text = f"Removed {title}." if quantity == 0 else f"Done: {quantity} x {title}."
        if summary.lines:
            _show_cart(dispatcher, f"{text} Your cart: {_count(summary)}, {money(summary.total, summary.currency)}.",
                       summary, key)
        else:
            dispatcher.utter_message(text=f"{text}\nYour cart is empty now.")
        return []


class ActionCheckout(Action):
    def name(self) -> str:
        return "action_checkout"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        key = cart_key(tracker)
        summary = _cart_or_nudge(dispatcher, key, "Your cart is empty, so there's nothing to check out yet.")
        if summary is None:
            return []
        # The card's Checkout button opens the link from the widget's own origin; the text names the link only
        # when it is absolute (SHOP_PUBLIC_URL): a relative path in a message is nothing a shopper can open.
        link = checkout_link(key)
        where = f", or here: {link}" if link.startswith(("https://", "http://")) else "."
        _show_cart(dispatcher, f"Here's your order: {_count(summary)}, {money(summary.total, summary.currency)}. "
                               f"Complete your purchase securely with the Checkout button below{where}", summary, key)
        return []
