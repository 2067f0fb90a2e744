"""Turns a shopper's words into a semantic query plus structured filters, with spaCy.

A blank English pipeline gets an EntityRuler whose patterns come from the catalog (brands,
colors, categories, materials, sizes, genders) and a Matcher for prices, ratings and stock
("under 50", "between 20 and 40 dollars", "less than $100", "4 stars and up", "in stock").
Brands, colors, sizes, genders and categories become filters; price, rating and stock phrases
and filler words leave the text; the rest is the semantic query. Materials are recognised but
stay soft (in the text): "leather" in "leather care kit" is not a constraint on the kit.
Negated values ("not leather", "no Nike", "anything but black", "non-leather", "without suede")
become exclusions instead. Prices in words and slang ("under a hundred quid", "20ish", "under 1k")
are spelled as digits first (``numbers.py``); the shop's synonym table (``synonyms.py``) adds other
names for the catalog's categories ("jumper" -> Sweaters) and, for the lexical search only, the other
names of what was named (``ParsedQuery.expansions``).
The pipeline is saved under ``models/search/query_parser`` with the vocabulary and synonyms it was
built from.
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

from bot.search.lexical import STOPWORDS
from bot.search.numbers import spell_prices
from bot.search.synonyms import Synonyms

# Part of the fingerprint of a saved parser: bump when the patterns built from a vocabulary change.
PATTERNS_VERSION = 3
FILTER_FIELDS = ("brand", "category", "color", "size", "gender")
VOCABULARY_FIELDS = (*FILTER_FIELDS, "material")
GENDER_FORMS = {
    "men": ("men", "mens", "men's", "man", "male", "for him", "gentlemen"),
    "women": ("women", "womens", "women's", "woman", "female", "ladies", "for her"),
    "kids": ("kids", "kid", "children", "child", "boys", "girls", "toddler"),
    "unisex": ("unisex",),
}
BARE_SIZES = {"xxs", "xs", "xl", "xxl", "xxxl", "2xl", "3xl", "4xl"}
CURRENCY = ("$", "€", "£", "usd", "eur", "gbp", "dollar", "dollars", "buck", "bucks", "euro", "euros", "pound",
            "pounds", "quid", "grand")
_CHEAP = {"cheap", "cheaper", "cheapest", "budget", "affordable", "inexpensive", "low-cost", "lowcost", "bargain"}
_FILLER = re.compile(
    r"\b(?:i\s*(?:am|'m)\s+looking\s+for|looking\s+for|i\s+(?:want|need|would\s+like)|do\s+you\s+(?:have|sell)|"
    r"show\s+me|can\s+you\s+find|find\s+me|search\s+for|please|pls|plz|some|any|a|an|the|me|i\s+meant|i\s+mean|"
    r"actually)\b",
    re.I,
)
# "no, I meant...", "nope, blue": a correction, not words to search for
_CORRECTION = re.compile(r"^\W*(?:no+|nope|nah|oops|sorry|wait)\b[\s,.!]*(?=\S|$)", re.I)
_LEAD_IN = {"for", "in", "of", "at", "with", "a", "size"}
# A category word is a filter only when it heads its phrase ("jackets for hiking"), not when it
# modifies another noun ("shoe rack").
_PHRASE_END = {"for", "with", "in", "under", "below", "over", "above", "from", "by", "that", "which", "size", "and",
               "or", "between", "less", "more", "at", "to", "made", "of", "on", "without", "around", "than", "cheap",
               "cheaper", "please", "but", "not", "no", "nor", "except", "excluding", "other", "rather"}
# Negation: "not leather", "no Nike", "non-leather", "without suede", "except Adidas", "anything but black",
# "other than red", "don't want leather". Between the cue and the value: "not from Adidas", "not in black".
_NEGATIONS = {"not", "n't", "nt", "no", "non", "without", "except", "excluding", "exclude", "minus", "nor"}
_NEGATION_BRIDGE = {"from", "by", "in", "made", "of", "a", "an", "any", "the", "real", "genuine", "for", "-"}
_NEGATION_CHAIN = {"or", "nor", "and", "/"}  # "not leather or suede": both
_NEGATABLE = {"BRAND": "exclude_brands", "COLOR": "exclude_colors", "MATERIAL": "exclude_materials",
              "CATEGORY": "exclude_categories"}
# Filter fields a shopper can rule out, and the field that holds what they ruled out.
EXCLUDABLE = {"brands": "exclude_brands", "categories": "exclude_categories", "colors": "exclude_colors",
              "materials": "exclude_materials"}


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
    # Ruled out by the shopper ("not leather", "no Nike"): hard filters, whatever the rest says.
    exclude_brands: tuple[str, ...] = ()
    exclude_categories: tuple[str, ...] = ()
    exclude_colors: tuple[str, ...] = ()
    exclude_materials: tuple[str, ...] = ()

    def with_field(self, name: str, value: Any) -> Filters:
        """These filters with the field called ``name`` (chosen at run time) set to ``value``."""
        changes: dict[str, Any] = {name: value}
        return replace(self, **changes)

    def describe(self) -> str:
        parts = []
        if self.min_price is not None and self.max_price is not None:
            parts.append(f"between ${self.min_price:g} and ${self.max_price:g}")
        elif self.max_price is not None:
            parts.append(f"under ${self.max_price:g}")
        elif self.min_price is not None:
            parts.append(f"over ${self.min_price:g}")
        for values, prefix in ((self.brands, "by "), (self.colors, ""), (self.categories, ""),
                               (self.sizes, "size "), (self.genders, "for "), (self.exclude_brands, "not by "),
                               (self.exclude_colors, "not "), (self.exclude_materials, "not "),
                               (self.exclude_categories, "no ")):
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
        """This filter with every constraint that ``change`` sets replaced by ``change``'s.

        Exclusions add up ("not Nike", then "no Adidas": neither); a value the change asks for is no
        longer excluded, and a value it rules out is no longer asked for.
        """
        updates: dict[str, Any] = {}
        if change.min_price is not None or change.max_price is not None:
            updates.update(min_price=change.min_price, max_price=change.max_price)
        for f in fields(self):
            if (f.name not in ("min_price", "max_price") and f.name not in EXCLUDABLE.values()
                    and getattr(change, f.name) not in (None, (), False)):
                updates[f.name] = getattr(change, f.name)
        for positive, negative in EXCLUDABLE.items():
            wanted = {_key(v) for v in getattr(change, positive)}
            excluded = {_key(v): v for v in (*getattr(self, negative), *getattr(change, negative))
                        if _key(v) not in wanted}
            kept = updates.get(positive, getattr(self, positive))
            updates[positive] = tuple(v for v in kept if _key(v) not in excluded)
            updates[negative] = tuple(excluded.values())
        return replace(self, **updates)


@dataclass(frozen=True)
class ParsedQuery:
    text: str
    filters: Filters = field(default_factory=Filters)
    wants_cheap: bool = False
    negated: tuple[str, ...] = ()  # values the shopper ruled out, as written (lower case): entities must not add them
    # Other names of a category the shopper named (the shop's synonyms), for the lexical search only: "torch"
    # also matches "flashlight" in titles while the embedding reads what was typed.
    expansions: tuple[str, ...] = ()


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


def _inflect(value: str, plural: bool) -> str:
    """``value`` (a category's key) in the number a shopper used: "sweaters" for "jumpers"."""
    forms = sorted(_forms(value), key=len)
    plurals = [f for f in forms if f.endswith("s") and not f.endswith("ss")]
    singulars = [f for f in forms if f not in plurals]
    if plural:
        return value if value in plurals else (plurals[-1] if plurals else value)
    return value if value in singulars else (singulars[0] if singulars else value)


def _is_plural(text: str) -> bool:
    return text.endswith("s") and not text.endswith("ss")


def vocabulary_fingerprint(vocabulary: dict[str, list[str]], synonyms: Synonyms | None = None) -> str:
    state = {"vocabulary": vocabulary, "synonyms": (synonyms or Synonyms()).to_dict(), "patterns": PATTERNS_VERSION}
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def category_aliases(vocabulary: dict[str, list[str]], synonyms: Synonyms) -> dict[str, tuple[str, ...]]:
    """Other names (every form) of the catalog's categories, from the synonym table: name -> categories."""
    category_forms: dict[str, str] = {}
    for value in vocabulary.get("category", []):
        for form in _forms(_key(value)):
            category_forms.setdefault(form, value)
    aliases: dict[str, tuple[str, ...]] = {}
    for group in synonyms.groups():
        found = tuple(dict.fromkeys(category_forms[f] for name in group for f in sorted(_forms(name))
                                    if f in category_forms))
        if not found:
            continue
        for name in group:
            forms = _forms(name)
            if not forms & category_forms.keys():  # a name that is a catalog category keeps its meaning
                for form in forms:
                    aliases.setdefault(form, found)
    return aliases


class _Patterns:
    """spaCy EntityRuler patterns, each (label, surface form) once."""

    def __init__(self) -> None:
        self.taken: set[tuple[str, str]] = set()
        self.patterns: list[dict[str, Any]] = []

    def add(self, label: str, canonical: str, surface: str) -> None:
        surface = _key(surface)
        if surface and (label, surface) not in self.taken:
            self.taken.add((label, surface))
            self.patterns.append({"label": label, "pattern": surface, "id": canonical})

    def surfaces(self) -> set[str]:
        return {p["pattern"] for p in self.patterns}


def _entity_patterns(vocabulary: dict[str, list[str]], synonyms: Synonyms) -> list[dict[str, Any]]:
    out = _Patterns()
    _vocabulary_patterns(out, vocabulary)
    _synonym_patterns(out, vocabulary, synonyms)
    for value in (s for s in vocabulary.get("size", []) if s):
        out.patterns.append({"label": "SIZE", "id": value, "pattern": [{"LOWER": {"IN": ["size", "sz"]}},
                                                                       {"LOWER": _key(value)}]})
        if _key(value) in BARE_SIZES:
            out.add("SIZE", value, value)
    return out.patterns


def _vocabulary_patterns(out: _Patterns, vocabulary: dict[str, list[str]]) -> None:
    """The catalog's colors, genders, categories, materials and brands."""
    for value in vocabulary.get("color", []):
        out.add("COLOR", value, value)
    for value in vocabulary.get("gender", []):
        for surface in GENDER_FORMS.get(_key(value), (value,)):
            out.add("GENDER", value, surface)
    for value in vocabulary.get("category", []):
        for surface in _forms(_key(value)):
            out.add("CATEGORY", value, surface)
    for value in vocabulary.get("material", []):
        out.add("MATERIAL", value, value)
    others = out.surfaces()
    for value in vocabulary.get("brand", []):
        # a brand called "black" stays a color; one called "AND" or "The" is a word of every query
        if len(value) > 1 and _key(value) not in others and _key(value) not in STOPWORDS:
            out.add("BRAND", value, value)


def _synonym_patterns(out: _Patterns, vocabulary: dict[str, list[str]], synonyms: Synonyms) -> None:
    """The shop's synonyms: a catalog category by another name, or (no such category) a group of names."""
    others = out.surfaces()
    aliases = category_aliases(vocabulary, synonyms)
    for form, categories in sorted(aliases.items()):
        if form not in others:
            out.add("CATEGORY", "|".join(categories), form)
    for group in synonyms.groups():
        if any(f in aliases or f in others for name in group for f in _forms(name)):
            continue
        for name in group:
            for form in _forms(name):
                if form not in others:
                    out.add("SYNONYM", group[0], form)


def _price_matcher(nlp: Language) -> Matcher:
    matcher = Matcher(nlp.vocab)
    num = {"LIKE_NUM": True, "IS_ALPHA": False}
    cur = {"LOWER": {"IN": list(CURRENCY)}, "OP": "?"}

    def words(*ws: str) -> list[dict[str, Any]]:
        return [{"LOWER": w} for w in ws]

    for lead in (["under"], ["below"], ["max"], ["maximum"], ["within"], ["less", "than"], ["up", "to"],
                 ["no", "more", "than"], ["cheaper", "than"], ["lower", "than"], ["at", "most"], ["not", "over"],
                 ["budget"], ["budget", "of"], ["budget", "is"], ["not", "more", "than"]):
        matcher.add("MAX_PRICE", [[*words(*lead), cur, num, cur]])
    matcher.add("MAX_PRICE", [[cur, num, cur, *words("or", "less")], [cur, num, cur, *words("or", "under")],
                              [cur, num, cur, *words("max")], [cur, num, cur, *words("tops")],
                              [cur, num, cur, *words("or", "below")], [cur, num, cur, *words("or", "cheaper")]])
    # A bare amount of money ("fifty bucks", "$40") is a budget.
    matcher.add("MAX_PRICE", [[{"LOWER": {"IN": ["$", "€", "£"]}}, num, cur],
                              [num, {"LOWER": {"IN": [c for c in CURRENCY if c not in ("$", "€", "£")]}}]])
    for lead in (["over"], ["above"], ["more", "than"], ["at", "least"], ["from"], ["min"], ["minimum"],
                 ["starting", "at"]):
        matcher.add("MIN_PRICE", [[*words(*lead), cur, num, cur]])
    matcher.add("MIN_PRICE", [[cur, num, cur, *words("or", "more")], [cur, num, cur, *words("and", "up")],
                              [cur, num, cur, {"ORTH": "+"}]])
    joiner = {"LOWER": {"IN": ["and", "to", "-"]}}
    matcher.add("PRICE_RANGE", [[{"LOWER": {"IN": ["between", "from"]}}, cur, num, cur, joiner, cur, num, cur],
                                [cur, num, cur, {"LOWER": {"IN": ["to", "-"]}}, cur, num, cur]])
    matcher.add("AROUND_PRICE", [[{"LOWER": {"IN": ["around", "about", "approximately", "approx", "roughly",
                                                    "circa"]}}, cur, num, cur]])
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
    text = spell_prices(" ".join(text.split()))
    return " ".join(re.sub(r"(?<=\d)\s*[-–]\s*(?=[$€£]?\s*\d)", " - ", text).split())


def _negation_cue(doc: Doc, i: int) -> list[int]:
    """Token positions of a negation ending at ``doc[i]`` ("not", "anything but", "don't want"), or []."""
    if i < 0:
        return []
    word = doc[i].lower_
    before = doc[i - 1].lower_ if i > 0 else ""
    do = [i - 2] if i > 1 and doc[i - 2].lower_ in ("do", "does", "did") else []
    if word in _NEGATIONS:
        return [*([i - 1] if word in ("n't", "nt") and before in ("do", "does", "did") else []), i]
    if word in ("want", "like", "need") and before in ("not", "n't", "nt"):
        return [*do, i - 1, i]
    if word == "but" and before in ("anything", "everything", "all", "nothing"):
        return [i - 1, i]
    if word == "but" and i > 1 and doc[i - 2].lower_ == "any":  # "any colour but black"
        return [i - 2, i - 1, i]
    if word == "than" and before in ("other", "rather"):
        return [i - 1, i]
    return []


def _negated_spans(doc: Doc, spans: list[Span], covered: set[int]) -> dict[int, list[int]]:
    """Spans that a negation rules out (by start), with the tokens of their cue."""
    negated: dict[int, list[int]] = {}
    ends = {span.end: span for span in spans}
    for span in sorted(spans, key=lambda s: s.start):
        if span.label_ not in (*_NEGATABLE, "SIZE", "GENDER", "SYNONYM"):
            continue
        i, bridge = span.start - 1, list[int]()
        while i >= 0 and i not in covered and doc[i].lower_ in _NEGATION_BRIDGE and len(bridge) < 3:
            bridge.append(i)
            i -= 1
        cue = _negation_cue(doc, i) if i not in covered else []
        if not cue and i >= 0 and doc[i].lower_ in _NEGATION_CHAIN:  # "not leather or suede"
            earlier = ends.get(i)
            if earlier is not None and earlier.start in negated and earlier.label_ == span.label_:
                cue = [i]
        if cue:
            first = min(cue)
            if first > 0 and doc[first - 1].lower_ in ("but", "and", "i", "we"):  # "shoes but not boots"
                cue = [first - 1, *cue]
            negated[span.start] = [*cue, *bridge]
    return negated


class QueryParser:
    def __init__(self, nlp: Language, vocabulary: dict[str, list[str]], synonyms: Synonyms | None = None) -> None:
        self.nlp = nlp
        self.vocabulary = vocabulary
        self.synonyms = synonyms or Synonyms()
        self.fingerprint = vocabulary_fingerprint(vocabulary, self.synonyms)
        self.aliases = category_aliases(vocabulary, self.synonyms)
        # every name of a synonym group, by the group's key and by each catalog category it names
        self._names: dict[str, tuple[str, ...]] = {}
        for group in self.synonyms.groups():
            keys = {_key(c) for name in group for c in self.aliases.get(name, ())} or {group[0]}
            for key in keys:
                self._names[key] = tuple(dict.fromkeys((*self._names.get(key, ()), *group)))
        self._matcher = _price_matcher(nlp)

    @classmethod
    def build(cls, vocabulary: dict[str, list[str]], synonyms: Synonyms | None = None) -> QueryParser:
        clean: dict[str, list[str]] = {}
        for name in VOCABULARY_FIELDS:  # one spelling per value, as the catalog writes it
            spellings: dict[str, str] = {}
            for value in vocabulary.get(name, []):
                if value and value.strip():
                    spellings.setdefault(_key(value), " ".join(value.split()))
            clean[name] = sorted(spellings.values(), key=_key)
        nlp = spacy.blank("en")
        synonyms = synonyms or Synonyms()
        patterns = _entity_patterns(clean, synonyms)
        if patterns:
            ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER"})
            ruler.add_patterns(patterns)  # type: ignore[attr-defined]
        return cls(nlp, clean, synonyms)

    def save(self, directory: Path) -> None:
        self.nlp.to_disk(directory)
        (directory / "vocabulary.json").write_text(json.dumps(self.vocabulary, sort_keys=True))
        (directory / "synonyms.json").write_text(json.dumps(self.synonyms.to_dict(), sort_keys=True))

    @classmethod
    def load(cls, directory: Path) -> QueryParser | None:
        if not (directory / "vocabulary.json").exists():
            return None
        synonyms_file = directory / "synonyms.json"
        synonyms = Synonyms.from_dict(json.loads(synonyms_file.read_text())) if synonyms_file.exists() else None
        return cls(spacy.load(directory), json.loads((directory / "vocabulary.json").read_text()), synonyms)

    @classmethod
    def ensure(cls, vocabulary: dict[str, list[str]], directory: Path,
               synonyms: Synonyms | None = None) -> QueryParser:
        """The saved parser when it was built from this vocabulary and synonyms; else build and save it."""
        fresh = cls.build(vocabulary, synonyms)
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
        negations = _negated_spans(doc, spans, covered)
        rewrite: dict[int, str] = {}  # first token of a synonym -> the words it searches as
        negated: list[str] = []
        expansions: list[str] = []
        for span in spans:
            if span.start in negations:
                filters = self._exclude(doc, span, filters, covered)
                negated += [_key(span.text), *(_key(v) for v in span.ent_id_.split("|") if v)]
                drop.update([*range(span.start, span.end), *negations[span.start]])
                continue
            filters, remove = self._apply(doc, span, filters, covered)
            if remove:
                drop.update(range(span.start, span.end))
                if span.start > 0 and doc[span.start - 1].lower_ in _LEAD_IN:  # "for women", "in size 10"
                    drop.add(span.start - 1)
            else:
                if (words := self._synonym_words(doc, span, covered)) is not None:
                    rewrite[span.start] = words
                    drop.update(range(span.start + 1, span.end))
                expansions += self._other_names(doc, span, covered, rewrite.get(span.start))
        kept = []
        for token in doc:
            if token.i in drop:
                continue
            if token.lower_ in _CHEAP:
                wants_cheap = True
                continue
            if token.i in rewrite:
                kept.append(rewrite[token.i] + token.whitespace_)
                continue
            kept.append(token.text_with_ws)
        semantic = " ".join(_FILLER.sub(" ", _CORRECTION.sub(" ", "".join(kept))).split()).strip(" ?.!,")
        semantic = re.sub(r"\s+([,.!?])", r"\1", semantic)
        semantic = re.sub(r"(?:^|(?<=\s))[,.;:/-]+(?=\s|$)", " ", semantic)
        semantic = re.sub(r"^\s*(?:for|in|of|at)\s+", "", semantic)  # "(under $60) for boots"
        semantic = " ".join(semantic.split()).strip(" ?.!,")
        said = set(semantic.lower().split())
        extra = tuple(dict.fromkeys(e for e in expansions if not set(e.split()) <= said))
        return ParsedQuery(semantic, filters, wants_cheap, tuple(dict.fromkeys(negated)), extra)

    def _other_names(self, doc: Doc, span: Span, covered: set[int], rewritten: str | None) -> list[str]:
        """The other names of what a category or synonym span names, from the synonym table."""
        if span.label_ == "SYNONYM":
            keys = [span.ent_id_]
        elif span.label_ == "CATEGORY" and _heads_phrase(doc, span, covered):
            keys = [_key(c) for c in span.ent_id_.split("|") if c]
        else:
            return []
        searched = _forms(rewritten or _key(span.text))  # "jumper" searches as "sweater": "jumper" is another name
        return [n for key in keys for n in self._names.get(key, ()) if n not in searched]

    def _synonym_words(self, doc: Doc, span: Span, covered: set[int]) -> str | None:
        """What a synonym of a catalog category searches as: the category's name; None otherwise."""
        typed = _key(span.text)
        plural = _is_plural(typed)
        if span.label_ != "CATEGORY" or not _heads_phrase(doc, span, covered):
            return None
        categories = [c for c in span.ent_id_.split("|") if c]
        if not categories or any(typed in _forms(_key(c)) for c in categories):
            return None  # the category's own name
        return _inflect(_key(categories[0]), plural)

    def _exclude(self, doc: Doc, span: Span, filters: Filters, covered: set[int]) -> Filters:
        """``filters`` with the value of a negated span ruled out (brand, color, material, category)."""
        name = _NEGATABLE.get(span.label_)
        if name is None:
            return filters  # a negated size or gender is dropped: "not for kids" is no filter for kids
        values = [v for v in (span.ent_id_ or _key(span.text)).split("|") if v]
        if name == "exclude_categories":
            if not _heads_phrase(doc, span, covered):
                return filters
            values = [v for v in values if _key(v) not in {_key(c) for c in filters.categories}]
        current = getattr(filters, name)
        return filters.with_field(name, (*current, *(v for v in values if v not in current)))

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
            new = [c for c in value.split("|") if c and c not in filters.categories]
            return replace(filters, categories=(*filters.categories, *new)), False
        return filters, False


def _heads_phrase(doc: Doc, span: Span, covered: set[int]) -> bool:
    if span.end >= len(doc):
        return True
    following = doc[span.end]
    return following.is_punct or following.lower_ in _PHRASE_END or span.end in covered


def strip_values(text: str, values: list[str] | tuple[str, ...]) -> str:
    """``text`` without the words of these catalog values (any form): "red jackets" without "red"."""
    for value in values:
        forms = sorted(_forms(_key(value)), key=len, reverse=True)
        text = re.sub(r"(?<!\w)(?:" + "|".join(re.escape(f) for f in forms) + r")(?!\w)", " ", text, flags=re.I)
    return " ".join(text.split())


def merge_entities(parsed: ParsedQuery, entities: list[dict[str, Any]], vocabulary: dict[str, list[str]],
                   aliases: dict[str, tuple[str, ...]] | None = None) -> ParsedQuery:
    """Adds filters from NLU entities (e.g. Rasa's) that name a known catalog value (or, for a category,
    one of its other names in ``aliases``), unless the shopper ruled that value out ("not Nike")."""
    filters = parsed.filters
    target = {"brand": "brands", "color": "colors", "category": "categories", "size": "sizes", "gender": "genders"}
    negated = set(parsed.negated)
    for entity in entities:
        name = entity.get("entity")
        if name not in target:
            continue
        raw = _key(str(entity.get("value") or ""))
        spelling = {_key(v): v for v in vocabulary.get(name, [])}.get(raw)
        spellings = [spelling] if spelling is not None else []
        if not spellings and name == "category" and aliases:
            spellings = list(aliases.get(raw, ()))
        current = getattr(filters, target[name])
        excluded = {_key(v) for v in getattr(filters, EXCLUDABLE.get(target[name], ""), ())}
        for value in spellings:
            if raw in negated or _key(value) in negated or _key(value) in excluded:
                continue
            if _key(value) not in {_key(v) for v in current}:
                current = (*current, value)
        filters = replace(filters, **{target[name]: current})
    return replace(parsed, filters=filters)
