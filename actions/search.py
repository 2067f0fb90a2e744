"""Product search, refinement, details, comparison and recommendations."""

from __future__ import annotations

import multiprocessing
import re
from collections import Counter
from dataclasses import replace
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import services
from actions.context import entity, intent_of, referred_products, shown_ids, user_text
from actions.messages import button, money, product_cards, refine_button, stock_label
from actions.profile import recommendations, saved_search_defaults
from actions.shop_answers import knowledge, say_policy_answer
from bot.catalog.views import ProductView
from bot.knowledge.requests import split_requests
from bot.search.query import EXCLUDABLE, Filters, ParsedQuery, strip_values
from bot.search.service import Hit

PAGE = 5
_MORE = re.compile(r"\b(?:more|next|others?|else|different|another)\b", re.I)
_CHEAPER = re.compile(r"\b(?:cheaper|less expensive|lower price|budget|cheap|cheapest|affordable)\b", re.I)
_PRICIER = re.compile(r"\b(?:pricier|more expensive|higher end|premium|better quality)\b", re.I)
_REFINE_FILLER = re.compile(
    r"\b(?:only|just|show|me|more|next|something|else|different|another|other|others|ones?|those|these|them|"
    r"any|anything|some|in|with|please|pls|plz|what|about|how|do|you|have|cheaper|less|expensive|options?|"
    r"instead|a|an|the|like|but|and|or|i|want|need|sort|by|price|results?|no+|nope|nah|not|meant|mean|actually|"
    r"sorry|oops|wait|rather|ok|okay|thanks|thank|thx|fine|nothing|all|alright|right)\b",
    re.I,
)
# "no, I meant the blue ones", "actually black", "not those, the cheaper ones": the shopper corrects the search.
_CORRECTION = re.compile(r"^\W*(?:no+|nope|nah|actually|i\s+meant|i\s+mean|sorry|oops|wait|rather|"
                         r"not\s+(?:those|these|them|that|this)(?:\s+ones?)?)\b", re.I)
# What each intent does when a rule sends it to an action that finds nothing for it to do there: a message
# routed by a rule keyed on the previous action (data/rules/rules.yml: a correction after results, a typed size
# after the cart's question) that turns out to be something else. Mirrors the intents' own rules.
USUAL_ACTIONS = {
    "deny": "utter_deny_ack",
    "nlu_fallback": "action_answer_policy",
    "inform": "track_order_form",
    "refine_search": "action_refine_search",
    "search_product": "action_search_products",
    "product_details": "action_product_details",
    "state_preference": "action_save_preference",
}
_VAGUE = {"gift", "present", "something", "anything", "stuff", "things", "item", "product", "products"}

if multiprocessing.parent_process() is not None:
    # In the action server's worker process: load the model and index before the first shopper
    # asks. (Sanic's parent process only registers the actions and never searches.)
    services.product_search()


def _filters_from_slot(value: Any) -> Filters:
    return Filters.from_dict(value if isinstance(value, dict) else None)


def _price_band(prices: list[float]) -> float | None:
    """A round price under which roughly half of these products fall."""
    if len(prices) < 2:
        return None
    median = sorted(prices)[len(prices) // 2]
    step = 5 if median < 50 else 10 if median < 200 else 50
    band = max(step, round(median / step) * step)
    return float(band) if band > min(prices) else None


def _quick_replies(hits: list[Hit], filters: Filters, has_more: bool) -> list[dict[str, str]]:
    """Narrowing suggestions from what the results actually contain; "Show more" only when there is more."""
    replies = []
    band = _price_band([h.product.price for h in hits if h.product.price is not None])
    if band is not None and (filters.max_price is None or band < filters.max_price):
        replies.append(refine_button(f"Under ${band:g}"))
    if not filters.brands:
        brands = Counter(h.product.brand for h in hits if h.product.brand)
        replies += [refine_button(f"Only {brand}") for brand, n in brands.most_common(2) if len(brands) > 1]
    if not filters.colors:
        colors = Counter(h.product.color for h in hits if h.product.color)
        replies += [refine_button(f"In {color}") for color, _ in colors.most_common(2) if len(colors) > 1]
    if has_more:
        replies.append(refine_button("Show more"))
    return replies


def _show_results(
    dispatcher: CollectingDispatcher, query: ParsedQuery, offset: int, intro: str
) -> list[dict[str, Any]]:
    search = services.product_search()
    hits = search.search(query, limit=PAGE + 1, offset=offset)  # one extra tells whether "Show more" has more
    relaxed = ""
    if not hits and offset == 0:
        for label, looser in _relaxations(query.filters):
            hits = search.search(replace(query, filters=looser), limit=PAGE + 1)
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
    has_more, hits = len(hits) > PAGE, hits[:PAGE]
    if relaxed:
        intro = f"Nothing matched exactly, so I dropped the {relaxed}. Here's the closest:"
    dispatcher.utter_message(text=intro, json_message=product_cards([(h.product, h.reason) for h in hits]))
    dispatcher.utter_message(text="Want me to narrow it down?", buttons=_quick_replies(hits, query.filters, has_more))
    return [
        SlotSet("shown_products", [h.product.id for h in hits]),
        SlotSet("search_query", query.text),
        SlotSet("search_filters", query.filters.to_dict()),
        SlotSet("search_offset", float(offset)),
    ]


# Least important first: a shopper gives up a color sooner than a budget.
_RELAXABLE = (("color", "colors", ()), ("size", "sizes", ()), ("minimum rating", "min_rating", None),
              ("brand", "brands", ()), ("gender", "genders", ()), ("category", "categories", ()))


def _relaxations(filters: Filters) -> list[tuple[str, Filters]]:
    """Looser versions of the filters: first each constraint dropped alone, then cumulatively."""
    singles, cumulative, dropped = [], filters, []
    for label, name, empty in _RELAXABLE:
        if getattr(filters, name) not in (None, ()):
            singles.append((label, filters.with_field(name, empty)))
            cumulative = cumulative.with_field(name, empty)
            dropped.append(label)
    if filters.min_price is not None or filters.max_price is not None:
        singles.append(("price limit", replace(filters, min_price=None, max_price=None)))
        cumulative = replace(cumulative, min_price=None, max_price=None)
        dropped.append("price limit")
    if len(dropped) > 1:
        singles.append((" and ".join([", ".join(dropped[:-1]), dropped[-1]]), cumulative))
    return singles


def _intro(query: ParsedQuery) -> str:
    described = query.filters.describe()
    found = f"Here's what I found for \"{query.text}\"" if query.text else "Here's what I found"
    return found + (f" ({described}):" if described else ":")


class ActionSearchProducts(Action):
    def name(self) -> str:
        return "action_search_products"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        text = user_text(tracker)
        if not text:
            dispatcher.utter_message(text="What are you looking for? Describe it in your own words.")
            return []
        # "a warm jacket under 80, and do you ship to canada?": the search, then the question's answer
        requests = split_requests(knowledge(), text)
        events = self.search(dispatcher, tracker, domain, requests.main)
        for side in requests.side:
            say_policy_answer(dispatcher, str(side.choice.topic), side.choice.asked)
        return events

    def search(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any],
               text: str) -> list[dict[str, Any]]:
        """Products for ``text`` (the whole message, or the part of it that asks for products)."""
        query = services.product_search().parse(text, tracker.latest_message.get("entities") or [])
        if (tracker.get_slot("search_query") is not None and _CORRECTION.search(text) and not query.filters.categories
                and not _new_words(query)):  # "actually black" changes the running search; "no, laptops" is new
            return ActionRefineSearch().run(dispatcher, tracker, domain)
        words = set(re.findall(r"[a-z]+", query.text.lower()))
        vague = words <= _VAGUE | {"for", "my", "a", "nice", "good", "some", "buy", "to", "get"}
        if (words or query.filters.is_empty()) and vague:
            dispatcher.utter_message(
                text="Happy to help you find something! Who is it for, or what kind of thing did you have in mind?",
                buttons=[{"title": t, "payload": t} for t in ("Clothing", "Electronics", "Home", "Kitchen", "Toys")],
            )
            return []
        query, saved = saved_search_defaults(tracker, query)
        intro = f"{_intro(query)}\n{saved}" if saved else _intro(query)
        return [*_show_results(dispatcher, query, 0, intro), SlotSet("focused_product", None)]


_ELSE = re.compile(r"\b(?:something|anything)\s+else\b|\b(?:different|other)\s+(?:ones?|products?|options?|items?)\b"
                   r"|\bnot\s+(?:these|those|them)\b|\bdon'?t\s+like\s+(?:these|those|them)\b", re.I)
_ANY = re.compile(r"\bany\s+(colou?r|brand|size|price|category|type)\b", re.I)
_ANY_FIELDS = {"color": ("colors", ()), "colour": ("colors", ()), "brand": ("brands", ()), "size": ("sizes", ()),
               "category": ("categories", ()), "type": ("categories", ())}


def _words_only(text: str) -> str:
    """``text`` without stray punctuation ("not those, ones" leaves "," behind)."""
    return " ".join(w.strip(",.;:!?") for w in text.split() if re.search(r"\w", w))


def _replaced_values(before: Filters, after: Filters) -> list[str]:
    """Brands, colors, materials and categories the earlier search had and this one no longer has."""
    dropped = []
    for name in EXCLUDABLE:
        kept = {v.lower() for v in getattr(after, name)}
        dropped += [v for v in getattr(before, name) if v.lower() not in kept]
    return dropped


class ActionRefineSearch(Action):
    """Keeps the running search and changes one thing: price, brand, color, size, page, or extra words.

    A correction ("no, I meant the blue ones", "actually Adidas") replaces the value it contradicts, in the
    filters and in the search words. A message that a rule sent here because it came right after results
    (a ``deny`` or ``nlu_fallback``) and that changes nothing gets its intent's usual answer instead.
    """

    def name(self) -> str:
        return "action_refine_search"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        search = services.product_search()
        text = user_text(tracker) or (entity(tracker, "refinement") or "")
        entities = tracker.latest_message.get("entities") or []
        previous = tracker.get_slot("search_query")
        previous_filters = _filters_from_slot(tracker.get_slot("search_filters"))
        intent = intent_of(tracker)
        if previous is None:
            if intent in ("deny", "nlu_fallback"):
                return [FollowupAction(USUAL_ACTIONS[intent])]
            if not text:
                dispatcher.utter_message(text="What should I look for?")
                return []
            query = search.parse(text, entities)
            return _show_results(dispatcher, query, 0, _intro(query))
        change = search.parse(text, entities)
        if intent in ("deny", "nlu_fallback") and not _changes_search(text, change):
            return [FollowupAction(USUAL_ACTIONS[intent])]
        filters = previous_filters.merge(replace(change.filters, exclude_ids=()))
        shown = [p for p in (search.get(i) for i in shown_ids(tracker)) if p is not None]
        prices = [p.price for p in shown if p.price is not None]
        if _CHEAPER.search(text) and prices and change.filters.max_price is None:
            prices.sort()
            filters = replace(filters, max_price=round(prices[len(prices) // 2] - 0.01, 2), min_price=None)
        elif _PRICIER.search(text) and prices and change.filters.min_price is None:
            filters = replace(filters, min_price=round(max(prices), 2), max_price=None)
        for word in _ANY.findall(text):
            if word.lower() == "price":
                filters = replace(filters, min_price=None, max_price=None)
            elif word.lower() in _ANY_FIELDS:
                name, empty = _ANY_FIELDS[word.lower()]
                filters = filters.with_field(name, empty)
        extra = _words_only(_REFINE_FILLER.sub(" ", _ANY.sub(" ", change.text)))
        known = {v.lower() for v in (*change.filters.colors, *change.filters.brands)}
        extra = " ".join(w for w in extra.split() if w.lower() not in known)
        # "no, I meant blue" after "red jackets": the words of a value no longer wanted leave the search too
        previous = strip_values(previous, _replaced_values(previous_filters, filters))
        offset = 0
        if _ELSE.search(text) and not extra and (filters == previous_filters or not _CORRECTION.search(text)):
            filters = replace(filters, exclude_ids=tuple(dict.fromkeys((*filters.exclude_ids, *shown_ids(tracker)))))
            intro = "Here are some different ones:"
        elif _MORE.search(text) and filters == previous_filters and not extra:
            offset = int(tracker.get_slot("search_offset") or 0) + PAGE
            intro = "Here are more:"
        else:
            filters = replace(filters, exclude_ids=())
            intro = ""
        expansions = tuple(dict.fromkeys((*search.parse(previous).expansions, *change.expansions)))
        query = ParsedQuery(f"{previous} {extra}".strip(), filters, change.wants_cheap, expansions=expansions)
        return _show_results(dispatcher, query, offset, intro or _intro(query))


def _new_words(change: ParsedQuery) -> str:
    """The words of a refinement that are neither filler nor a color, brand or material it names."""
    named = {w for v in (*change.filters.colors, *change.filters.brands, *change.filters.materials)
             for w in v.lower().split()}
    return " ".join(w for w in _words_only(_REFINE_FILLER.sub(" ", change.text)).split() if w.lower() not in named)


def _changes_search(text: str, change: ParsedQuery) -> bool:
    """Whether a message that is not a ``refine_search`` still changes the search ("no, the blue ones")."""
    if not change.filters.is_empty() or change.negated or _CHEAPER.search(text) or _PRICIER.search(text):
        return True
    if _ELSE.search(text) and not re.search(r"\bnothing\b", text, re.I):
        return True
    return bool(_CORRECTION.search(text) and _words_only(_REFINE_FILLER.sub(" ", change.text)))


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
        better = a if a.rating > b.rating else b
        if a.price is None or b.price is None:
            verdict = f"{better.title} is rated higher"
        else:
            cheaper = a if a.price < b.price else b
            verdict = (f"{cheaper.title} is the cheaper one" if cheaper is better
                       else f"{cheaper.title} is cheaper, {better.title} is rated higher")
        dispatcher.utter_message(text=f"{text}\nIn short: {verdict}.",
                                 json_message=product_cards([(a, ""), (b, "")]))
        return [SlotSet("shown_products", [a.id, b.id])]


class ActionRecommend(Action):
    """What goes with the product in focus (or the one referred to), picks from the shopper's history (with
    consent), or what sells now: the blended recommender of ``bot.shop.recommend``, each card with its reason."""

    def name(self) -> str:
        return "action_recommend"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        anchor = referred_products(tracker)
        base = anchor[0] if anchor else None
        picks, personal = recommendations(tracker, base.id if base else None, PAGE)
        if not picks:
            dispatcher.utter_message(text="I have nothing to recommend right now. Tell me what you're looking for?")
            return []
        if base is not None:
            intro = f"These go well with {base.title}:"
        elif personal:
            intro = "Picked for you, from what you've bought before:"
        elif picks[0][1].startswith("Popular"):
            intro = "Popular right now:"
        else:  # no orders yet: the best rated
            intro = "Our best rated products right now:"
        dispatcher.utter_message(text=intro, json_message=product_cards(picks))
        return [SlotSet("shown_products", [p.id for p, _ in picks])]
