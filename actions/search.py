"""Product search, refinement, details, comparison and recommendations."""

from __future__ import annotations

import multiprocessing
import re
from collections import Counter
from dataclasses import asdict, replace
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import services
from actions.context import referred_products, shown_ids, user_text
from actions.messages import button, money, product_cards, stock_label
from bot.search.query import Filters, ParsedQuery
from bot.search.service import Hit, ProductView

PAGE = 5
_MORE = re.compile(r"\b(?:more|next|others?|else|different|another)\b", re.I)
_CHEAPER = re.compile(r"\b(?:cheaper|less expensive|lower price|budget|cheap|cheapest|affordable)\b", re.I)
_PRICIER = re.compile(r"\b(?:pricier|more expensive|higher end|premium|better quality)\b", re.I)
_REFINE_FILLER = re.compile(
    r"\b(?:only|just|show|me|more|next|something|else|different|another|other|others|ones?|those|these|them|"
    r"any|anything|some|in|with|please|pls|plz|what|about|how|do|you|have|cheaper|less|expensive|options?|"
    r"instead|a|an|the|like|but|and|or|i|want|need|sort|by|price|results?)\b",
    re.I,
)
_VAGUE = {"gift", "present", "something", "anything", "stuff", "things", "item", "product", "products"}

if multiprocessing.parent_process() is not None:
    # In the action server's worker process: load the model and index before the first shopper
    # asks. (Sanic's parent process only registers the actions and never searches.)
    services.product_search()


def _filters_slot(filters: Filters) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(filters).items()}


def _filters_from_slot(value: Any) -> Filters:
    value = value or {}
    return Filters(min_price=value.get("min_price"), max_price=value.get("max_price"),
                   colors=tuple(value.get("colors") or ()), in_stock=bool(value.get("in_stock")))


def _quick_replies(hits: list[Hit]) -> list[dict[str, str]]:
    replies = [button("Cheaper", "refine_search"), button("Show more", "refine_search")]
    replies[0]["payload"] = "cheaper"
    replies[1]["payload"] = "show more"
    colors = Counter(h.product.color for h in hits if h.product.color)
    for color, _ in colors.most_common(2):
        replies.append({"title": f"In {color}", "payload": f"in {color}"})
    return replies


def _show_results(
    dispatcher: CollectingDispatcher, query: ParsedQuery, offset: int, intro: str
) -> list[dict[str, Any]]:
    search = services.product_search()
    hits = search.search(query, limit=PAGE, offset=offset)
    relaxed = ""
    if not hits and offset == 0:
        for label, looser in _relaxations(query.filters):
            hits = search.search(replace(query, filters=looser), limit=PAGE)
            if hits:
                relaxed = label
                query = replace(query, filters=looser)
                break
    if not hits:
        if offset:
            dispatcher.utter_message(text="That's everything I have for this search. Want to try something else?")
        else:
            dispatcher.utter_message(text="I couldn't find anything like that. Could you describe it differently?")
        return []
    if relaxed:
        intro = f"Nothing matched exactly, so I dropped the {relaxed}. Here's the closest:"
    dispatcher.utter_message(text=intro, json_message=product_cards([(h.product, h.reason) for h in hits]))
    dispatcher.utter_message(text="Want me to narrow it down?", buttons=_quick_replies(hits))
    return [
        SlotSet("shown_products", [h.product.id for h in hits]),
        SlotSet("search_query", query.text),
        SlotSet("search_filters", _filters_slot(query.filters)),
        SlotSet("search_offset", float(offset)),
    ]


def _relaxations(filters: Filters) -> list[tuple[str, Filters]]:
    steps = []
    if filters.colors:
        filters = replace(filters, colors=())
        steps.append(("color", filters))
    if filters.min_price is not None or filters.max_price is not None:
        steps.append(("price limit", replace(filters, min_price=None, max_price=None)))
    return steps


def _intro(query: ParsedQuery) -> str:
    described = query.filters.describe()
    return f"Here's what I found for \"{query.text}\"" + (f" ({described}):" if described else ":")


class ActionSearchProducts(Action):
    def name(self) -> str:
        return "action_search_products"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        text = user_text(tracker)
        if not text:
            dispatcher.utter_message(text="What are you looking for? Describe it in your own words.")
            return []
        query = services.product_search().parse(text)
        words = set(re.findall(r"[a-z]+", query.text.lower()))
        if words and words <= _VAGUE | {"for", "my", "a", "nice", "good", "some", "buy", "to", "get"}:
            dispatcher.utter_message(
                text="Happy to help you find something! Who is it for, or what kind of thing did you have in mind?",
                buttons=[{"title": t, "payload": t} for t in ("Clothing", "Electronics", "Home", "Kitchen", "Toys")],
            )
            return []
        return [*_show_results(dispatcher, query, 0, _intro(query)), SlotSet("focused_product", None)]


class ActionRefineSearch(Action):
    """Keeps the running search and changes one thing: price, color, page, or extra words."""

    def name(self) -> str:
        return "action_refine_search"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        search = services.product_search()
        text = user_text(tracker)
        previous = tracker.get_slot("search_query")
        if not previous:
            if not text:
                dispatcher.utter_message(text="What should I look for?")
                return []
            query = search.parse(text)
            return _show_results(dispatcher, query, 0, _intro(query))
        filters = _filters_from_slot(tracker.get_slot("search_filters"))
        offset = 0
        change = search.parse(text)
        shown = [p for p in (search.get(i) for i in shown_ids(tracker)) if p is not None]
        if _CHEAPER.search(text) and shown:
            prices = sorted(p.price for p in shown)
            filters = replace(filters, max_price=round(prices[len(prices) // 2] - 0.01, 2), min_price=None)
        elif _PRICIER.search(text) and shown:
            filters = replace(filters, min_price=round(max(p.price for p in shown), 2), max_price=None)
        if change.filters.max_price is not None or change.filters.min_price is not None:
            filters = replace(filters, min_price=change.filters.min_price, max_price=change.filters.max_price)
        if change.filters.colors:
            filters = replace(filters, colors=change.filters.colors)
        extra = " ".join(_REFINE_FILLER.sub(" ", change.text).split())
        extra = " ".join(w for w in extra.split() if w.lower() not in change.filters.colors)
        if _MORE.search(text) and filters == _filters_from_slot(tracker.get_slot("search_filters")) and not extra:
            offset = int(tracker.get_slot("search_offset") or 0) + PAGE
        query = ParsedQuery(f"{previous} {extra}".strip(), filters, change.wants_cheap)
        intro = "Here are more:" if offset else _intro(query)
        return _show_results(dispatcher, query, offset, intro)


def _details_text(p: ProductView) -> str:
    lines = [f"{p.title} by {p.brand}: {money(p.price, p.currency)}",
             f"★ {p.rating:.1f} ({p.rating_count} reviews) · {stock_label(p.stock)}",
             p.description]
    if p.sizes:
        lines.append("Sizes: " + ", ".join(p.sizes))
    facts = [f for f in (p.color and f"Color: {p.color}", p.material and f"Material: {p.material}") if f]
    if facts:
        lines.append(" · ".join(facts))
    return "\n".join(lines)


class ActionProductDetails(Action):
    def name(self) -> str:
        return "action_product_details"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        products = referred_products(tracker)
        if not products:
            dispatcher.utter_message(
                text="Which product do you mean? Search for something first, or say \"the second one\" after a search."
            )
            return []
        product = products[0]
        dispatcher.utter_message(text=_details_text(product), json_message=product_cards([(product, "")]))
        dispatcher.utter_message(
            text="Shall I add it to your cart?",
            buttons=[button("Add to cart", "add_to_cart", product_id=product.id),
                     button("Similar products", "recommend", product_id=product.id)],
        )
        return [SlotSet("focused_product", float(product.id))]


class ActionCompareProducts(Action):
    def name(self) -> str:
        return "action_compare_products"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        search = services.product_search()
        products = referred_products(tracker, limit=2)
        if len(products) < 2:
            shown = [p for p in (search.get(i) for i in shown_ids(tracker)) if p is not None]
            products = (products + [p for p in shown if p not in products])[:2]
        if len(products) < 2:
            dispatcher.utter_message(text="I need two products to compare. Search for something first, "
                                          "then say e.g. \"compare the first and the third\".")
            return []
        a, b = products
        rows = [
            ("Price", money(a.price, a.currency), money(b.price, b.currency)),
            ("Rating", f"★ {a.rating:.1f} ({a.rating_count})", f"★ {b.rating:.1f} ({b.rating_count})"),
            ("Brand", a.brand, b.brand),
            ("Material", a.material or "-", b.material or "-"),
            ("Color", a.color or "-", b.color or "-"),
            ("Stock", stock_label(a.stock), stock_label(b.stock)),
            ("Highlights", ", ".join(a.features[:2]) or "-", ", ".join(b.features[:2]) or "-"),
        ]
        text = "\n".join([f"1) {a.title}  vs  2) {b.title}"] + [f"{k}: {x} | {y}" for k, x, y in rows])
        cheaper = a if a.price < b.price else b
        better = a if a.rating > b.rating else b
        verdict = (f"{cheaper.title} is the cheaper one" if cheaper is better
                   else f"{cheaper.title} is cheaper, {better.title} is rated higher")
        dispatcher.utter_message(text=f"{text}\nIn short: {verdict}.",
                                 json_message=product_cards([(a, ""), (b, "")]))
        return [SlotSet("shown_products", [a.id, b.id])]


class ActionRecommend(Action):
    """Products like the one in focus, or else the best rated products in stock."""

    def name(self) -> str:
        return "action_recommend"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        search = services.product_search()
        anchor = referred_products(tracker)
        if anchor:
            base = anchor[0]
            query = ParsedQuery(f"{base.title} {base.category}", Filters(in_stock=True))
            picks = [(h.product, "similar to " + base.title) for h in search.search(query, limit=PAGE + 1)
                     if h.product.id != base.id][:PAGE]
            intro = f"If you like {base.title}, have a look at these:"
        else:
            picks = [(p, f"★ {p.rating:.1f} from {p.rating_count} reviews") for p in search.top_rated(PAGE)]
            intro = "Our best rated products right now:"
        if not picks:
            dispatcher.utter_message(text="I have nothing to recommend right now. Tell me what you're looking for?")
            return []
        dispatcher.utter_message(text=intro, json_message=product_cards(picks))
        return [SlotSet("shown_products", [p.id for p, _ in picks])]
