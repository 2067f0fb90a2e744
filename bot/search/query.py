"""Turns a shopper's words into a semantic query plus structured filters, with spaCy.

A blank English pipeline gets an EntityRuler whose patterns come from the catalog (brands,
colors, categories, materials, sizes, genders) and a Matcher for prices, ratings and stock
("under 50", "between 20 and 40 dollars", "less than $100", "4 stars and up", "in stock").
Brands, colors, sizes, genders and categories become filters; price, rating and stock phrases
and filler words leave the text; the rest is the semantic query. Materials are recognised but
stay soft (in the text): "leather" in "leather care kit" is not a constraint on the kit.
The pipeline is saved under ``models/search/query_parser`` with the vocabulary it was built from.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import spacy
from spacy.language import Language
from spacy.matcher import Matcher
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

FILTER_FIELDS = ("brand", "category", "color", "size", "gender")
VOCABULARY_FIELDS = (*FILTER_FIELDS, "material")
GENDER_FORMS = {
    "men": ("men", "mens", "men's", "man", "male", "for him", "gentlemen"),
    "women": ("women", "womens", "women's", "woman", "female", "ladies", "for her"),
    "kids": ("kids", "kid", "children", "child", "boys", "girls", "toddler"),
    "unisex": ("unisex",),
}
BARE_SIZES = {"xxs", "xs", "xl", "xxl", "xxxl", "2xl", "3xl", "4xl"}
CURRENCY = ("$", "€", "£", "usd", "eur", "gbp", "dollar", "dollars", "bucks", "euro", "euros", "pounds")
_CHEAP = {"cheap", "cheaper", "cheapest", "budget", "affordable", "inexpensive", "low-cost", "lowcost", "bargain"}
_FILLER = re.compile(
    r"\b(?:i\s*(?:am|'m)\s+looking\s+for|looking\s+for|i\s+(?:want|need|would\s+like)|do\s+you\s+(?:have|sell)|"
    r"show\s+me|can\s+you\s+find|find\s+me|search\s+for|please|pls|plz|some|any|a|an|the|me)\b",
    re.I,
)
_LEAD_IN = {"for", "in", "of", "at", "with", "a", "size"}
# A category word is a filter only when it heads its phrase ("jackets for hiking"), not when it
# modifies another noun ("shoe rack").
_PHRASE_END = {"for", "with", "in", "under", "below", "over", "above", "from", "by", "that", "which", "size", "and",
               "or", "between", "less", "more", "at", "to", "made", "of", "on", "without", "around", "than", "cheap",
               "cheaper", "please"}


def _key(value: str) -> str:
    return " ".join(value.lower().split())


@dataclass(frozen=True)
class Filters:
    min_price: float | None = None
    max_price: float | None = None
    brands: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    colors: tuple[str, ...] = ()
    sizes: tuple[str, ...] = ()
    genders: tuple[str, ...] = ()
    materials: tuple[str, ...] = ()
    min_rating: float | None = None
    in_stock: bool = False
    exclude_ids: tuple[int, ...] = ()

    def describe(self) -> str:
        parts = []
        if self.min_price is not None and self.max_price is not None:
            parts.append(f"between ${self.min_price:g} and ${self.max_price:g}")
        elif self.max_price is not None:
            parts.append(f"under ${self.max_price:g}")
        elif self.min_price is not None:
            parts.append(f"over ${self.min_price:g}")
        for values, prefix in ((self.brands, "by "), (self.colors, ""), (self.categories, ""),
                               (self.sizes, "size "), (self.genders, "for ")):
            if values:
                parts.append(prefix + " or ".join(values))
        if self.min_rating is not None:
            parts.append(f"rated {self.min_rating:g}+")
        if self.in_stock:
            parts.append("in stock")
        return ", ".join(parts)

    def is_empty(self) -> bool:
        return replace(self, materials=()) == Filters()

    def to_dict(self) -> dict[str, Any]:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    @classmethod
    def from_dict(cls, value: dict[str, Any] | None) -> Filters:
        value = value or {}
        known: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in value and value[f.name] is not None:
                known[f.name] = tuple(value[f.name]) if isinstance(value[f.name], list) else value[f.name]
        return cls(**known)

    def merge(self, change: Filters) -> Filters:
        """This filter with every constraint that ``change`` sets replaced by ``change``'s."""
        updates: dict[str, Any] = {}
        if change.min_price is not None or change.max_price is not None:
            updates.update(min_price=change.min_price, max_price=change.max_price)
        for f in fields(self):
            if f.name not in ("min_price", "max_price") and getattr(change, f.name) not in (None, (), False):
                updates[f.name] = getattr(change, f.name)
        return replace(self, **updates)


@dataclass(frozen=True)
class ParsedQuery:
    text: str
    filters: Filters = field(default_factory=Filters)
    wants_cheap: bool = False


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def _forms(value: str) -> set[str]:
    """Surface forms of a category or material name: as written, singular and plural."""
    forms = {value}
    if value.endswith("ies"):
        forms.add(value[:-3] + "y")
    elif value.endswith(("ches", "shes", "sses", "xes")):
        forms.add(value[:-2])
    elif value.endswith("s") and not value.endswith("ss"):
        forms.add(value[:-1])
    else:
        forms.add(value + ("es" if value.endswith(("ch", "sh", "ss", "x")) else "s"))
    return forms


def vocabulary_fingerprint(vocabulary: dict[str, list[str]]) -> str:
    return hashlib.sha256(json.dumps(vocabulary, sort_keys=True).encode()).hexdigest()


def _entity_patterns(vocabulary: dict[str, list[str]]) -> list[dict[str, Any]]:
    taken: set[tuple[str, str]] = set()
    patterns: list[dict[str, Any]] = []

    def add(label: str, canonical: str, surface: str) -> None:
        surface = _key(surface)
        if surface and (label, surface) not in taken:
            taken.add((label, surface))
            patterns.append({"label": label, "pattern": surface, "id": canonical})

    for value in vocabulary.get("color", []):
        add("COLOR", value, value)
    for value in vocabulary.get("gender", []):
        for surface in GENDER_FORMS.get(_key(value), (value,)):
            add("GENDER", value, surface)
    for value in vocabulary.get("category", []):
        for surface in _forms(_key(value)):
            add("CATEGORY", value, surface)
    for value in vocabulary.get("material", []):
        add("MATERIAL", value, value)
    others = {p["pattern"] for p in patterns}
    for value in vocabulary.get("brand", []):
        if len(value) > 1 and _key(value) not in others:  # a brand called "black" stays a color
            add("BRAND", value, value)
    sizes = [s for s in vocabulary.get("size", []) if s]
    for value in sizes:
        patterns.append({"label": "SIZE", "id": value, "pattern": [{"LOWER": {"IN": ["size", "sz"]}},
                                                                   {"LOWER": _key(value)}]})
        if _key(value) in BARE_SIZES:
            add("SIZE", value, value)
    return patterns


def _price_matcher(nlp: Language) -> Matcher:
    matcher = Matcher(nlp.vocab)
    num = {"LIKE_NUM": True, "IS_ALPHA": False}
    cur = {"LOWER": {"IN": list(CURRENCY)}, "OP": "?"}

    def words(*ws: str) -> list[dict[str, Any]]:
        return [{"LOWER": w} for w in ws]

    for lead in (["under"], ["below"], ["max"], ["maximum"], ["within"], ["less", "than"], ["up", "to"],
                 ["no", "more", "than"], ["cheaper", "than"], ["lower", "than"], ["at", "most"], ["not", "over"]):
        matcher.add("MAX_PRICE", [[*words(*lead), cur, num, cur]])
    matcher.add("MAX_PRICE", [[cur, num, cur, *words("or", "less")], [cur, num, cur, *words("or", "under")],
                              [cur, num, cur, *words("max")]])
    for lead in (["over"], ["above"], ["more", "than"], ["at", "least"], ["from"], ["min"], ["minimum"],
                 ["starting", "at"]):
        matcher.add("MIN_PRICE", [[*words(*lead), cur, num, cur]])
    matcher.add("MIN_PRICE", [[cur, num, cur, *words("or", "more")], [cur, num, cur, *words("and", "up")],
                              [cur, num, cur, {"ORTH": "+"}]])
    joiner = {"LOWER": {"IN": ["and", "to", "-"]}}
    matcher.add("PRICE_RANGE", [[{"LOWER": {"IN": ["between", "from"]}}, cur, num, cur, joiner, cur, num, cur],
                                [cur, num, cur, {"LOWER": {"IN": ["to", "-"]}}, cur, num, cur]])
    matcher.add("AROUND_PRICE", [[{"LOWER": {"IN": ["around", "about", "approximately", "roughly"]}}, cur, num, cur]])
    stars = {"LOWER": {"IN": ["star", "stars", "rating", "rated"]}}
    matcher.add("MIN_RATING", [[num, {"ORTH": "+", "OP": "?"}, stars, {"LOWER": {"IN": ["and", "or"]}, "OP": "?"},
                                {"LOWER": {"IN": ["up", "more", "above", "higher", "better"]}, "OP": "?"}],
                               [*words("at", "least"), num, stars], [*words("rated"), num, {"ORTH": "+", "OP": "?"}],
                               [{"LOWER": {"IN": ["highly", "top", "best", "well"]}}, {"ORTH": "-", "OP": "?"},
                                {"LOWER": "rated"}]])
    matcher.add("IN_STOCK", [words("in", "stock"), words("available", "now"), words("ready", "to", "ship")])
    return matcher


def _normalise(text: str) -> str:
    text = re.sub(r"[$€£]", lambda m: f" {m.group(0)} ", text)
    return " ".join(re.sub(r"(?<=\d)\s*[-–]\s*(?=[$€£]?\s*\d)", " - ", text).split())


class QueryParser:
    def __init__(self, nlp: Language, vocabulary: dict[str, list[str]]) -> None:
        self.nlp = nlp
        self.vocabulary = vocabulary
        self.fingerprint = vocabulary_fingerprint(vocabulary)
        self._matcher = _price_matcher(nlp)

    @classmethod
    def build(cls, vocabulary: dict[str, list[str]]) -> QueryParser:
        clean: dict[str, list[str]] = {}
        for name in VOCABULARY_FIELDS:  # one spelling per value, as the catalog writes it
            spellings: dict[str, str] = {}
            for value in vocabulary.get(name, []):
                if value and value.strip():
                    spellings.setdefault(_key(value), " ".join(value.split()))
            clean[name] = sorted(spellings.values(), key=_key)
        nlp = spacy.blank("en")
        patterns = _entity_patterns(clean)
        if patterns:
            ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER"})
            ruler.add_patterns(patterns)  # type: ignore[attr-defined]
        return cls(nlp, clean)

    def save(self, directory: Path) -> None:
        self.nlp.to_disk(directory)
        (directory / "vocabulary.json").write_text(json.dumps(self.vocabulary, sort_keys=True))

    @classmethod
    def load(cls, directory: Path) -> QueryParser | None:
        if not (directory / "vocabulary.json").exists():
            return None
        return cls(spacy.load(directory), json.loads((directory / "vocabulary.json").read_text()))

    @classmethod
    def ensure(cls, vocabulary: dict[str, list[str]], directory: Path) -> QueryParser:
        """The saved parser when it was built from this vocabulary; else build and save it."""
        fresh = cls.build(vocabulary)
        saved = cls.load(directory) if directory.exists() else None
        if saved is not None and saved.fingerprint == fresh.fingerprint:
            return saved
        fresh.save(directory)
        return fresh

    def parse(self, query: str) -> ParsedQuery:
        doc = self.nlp(_normalise(query))
        spans = filter_spans([Span(doc, s, e, label=self.nlp.vocab.strings[m]) for m, s, e in self._matcher(doc)]
                             + list(doc.ents))
        filters, drop, wants_cheap = Filters(), set(), False
        covered = {i for span in spans for i in range(span.start, span.end)}
        for span in spans:
            filters, remove = self._apply(doc, span, filters, covered)
            if remove:
                drop.update(range(span.start, span.end))
                if span.start > 0 and doc[span.start - 1].lower_ in _LEAD_IN:  # "for women", "in size 10"
                    drop.add(span.start - 1)
        words = []
        for token in doc:
            if token.i in drop:
                continue
            if token.lower_ in _CHEAP:
                wants_cheap = True
                continue
            words.append(token.text_with_ws)
        semantic = " ".join(_FILLER.sub(" ", "".join(words)).split()).strip(" ?.!,")
        return ParsedQuery(semantic, filters, wants_cheap)

    def _apply(self, doc: Doc, span: Span, filters: Filters, covered: set[int]) -> tuple[Filters, bool]:
        label, numbers = span.label_, [n for t in span if t.like_num and (n := _number(t.text)) is not None]
        if label == "MAX_PRICE" and numbers:
            return replace(filters, max_price=numbers[0]), True
        if label == "MIN_PRICE" and numbers:
            return replace(filters, min_price=numbers[0]), True
        if label == "PRICE_RANGE" and len(numbers) >= 2:
            low, high = sorted(numbers[:2])
            return replace(filters, min_price=low, max_price=high), True
        if label == "AROUND_PRICE" and numbers:
            return replace(filters, min_price=round(numbers[0] * 0.8, 2), max_price=round(numbers[0] * 1.2, 2)), True
        if label == "MIN_RATING":
            rating = numbers[0] if numbers and numbers[0] <= 5 else 4.0
            return replace(filters, min_rating=rating), True
        if label == "IN_STOCK":
            return replace(filters, in_stock=True), True
        value = span.ent_id_ or _key(span.text)
        if label == "BRAND":
            return replace(filters, brands=(*filters.brands, value)), False
        if label == "COLOR":
            return replace(filters, colors=(*filters.colors, value)), False
        if label == "SIZE":
            return replace(filters, sizes=(*filters.sizes, value)), True
        if label == "GENDER":
            return replace(filters, genders=(*filters.genders, value)), True
        if label == "MATERIAL":
            return replace(filters, materials=(*filters.materials, value)), False
        if label == "CATEGORY" and _heads_phrase(doc, span, covered):
            return replace(filters, categories=(*filters.categories, value)), False
        return filters, False


def _heads_phrase(doc: Doc, span: Span, covered: set[int]) -> bool:
    if span.end >= len(doc):
        return True
    following = doc[span.end]
    return following.is_punct or following.lower_ in _PHRASE_END or span.end in covered


def merge_entities(parsed: ParsedQuery, entities: list[dict[str, Any]],
                   vocabulary: dict[str, list[str]]) -> ParsedQuery:
    """Adds filters from NLU entities (e.g. Rasa's) that name a known catalog value."""
    filters = parsed.filters
    target = {"brand": "brands", "color": "colors", "category": "categories", "size": "sizes", "gender": "genders"}
    for entity in entities:
        name = entity.get("entity")
        if name not in target:
            continue
        spelling = {_key(v): v for v in vocabulary.get(name, [])}.get(_key(str(entity.get("value") or "")))
        current = getattr(filters, target[name])
        if spelling is not None and _key(spelling) not in {_key(v) for v in current}:
            filters = replace(filters, **{target[name]: (*current, spelling)})
    return replace(parsed, filters=filters)
