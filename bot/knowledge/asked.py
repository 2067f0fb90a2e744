"""What a shopper's message names among the policy's facts: a country, a shipping method, a payment method.

The vocabularies come from the policy file itself (``shipping.domestic``, ``shipping.international``,
``shipping.methods``, ``payment.methods``, ``payment.not_accepted``: their ``name``, ``country``,
``countries``, ``regions``, ``includes`` and ``aliases``) plus the world's countries (``countries.txt``),
so that a country the shop does not ship to is recognised too. What is found reaches the answer templates
as ``asked``; nothing here words an answer.

Matching: whole words in any case, a plural "s" allowed, punctuation ignored ("next-day" is "next day"), a
leading "the" optional. A name written in capitals ("US", "COD") matches only in capitals. Of overlapping
names the longest wins ("New Mexico" over "Mexico"); of several, the first in the message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Generic, TypeVar

WORLD_FILE = Path(__file__).with_name("countries.txt")

T = TypeVar("T")


@dataclass(frozen=True)
class Asked:
    """What the message named; every field is empty when it named nothing."""

    country: str | None = None  # as the facts spell it ("the United Kingdom", "Brazil")
    place: str | None = None  # the place named: the country, or a region of the home country ("Alaska")
    zone: Mapping[str, Any] | None = None  # the shipping.international zone that ships there (None: none does)
    domestic: bool = False  # the shop's own country (shipping.domestic)
    method: Mapping[str, Any] | None = None  # one of shipping.methods
    payment: Mapping[str, Any] | None = None  # one of payment.methods or payment.not_accepted
    payment_accepted: bool | None = None
    payment_term: str | None = None  # the name or alias it was found by, as the policy file writes it
    facts: tuple[str, ...] = ()  # the facts these come from ("shipping.international", "payment.methods")


NOTHING_ASKED = Asked()


def normalize(text: str) -> str:
    """Lower case, every character that is not a letter or digit a space (same length as ``text``)."""
    return "".join(c.lower() if c.isalnum() and len(c.lower()) == 1 else (c if c.isalnum() else " ") for c in text)


def _key(name: str) -> str:
    words = normalize(name).split()
    if len(words) > 1 and words[0] == "the":
        words = words[1:]
    return " ".join(words)


def _capitals(name: str) -> bool:
    letters = [c for c in name if c.isalpha()]
    return bool(letters) and all(c.isupper() for c in letters) and len(letters) > 1


class Vocabulary(Generic[T]):
    """Names (and aliases) that stand for values; finds the first one a text mentions."""

    def __init__(self, names: Iterable[tuple[str, T]]) -> None:
        self._values: dict[str, tuple[T, str]] = {}  # key -> (value, name as written)
        self._exact: dict[str, tuple[T, str]] = {}  # names in capitals, matched as written
        for name, value in names:
            name = str(name).strip()
            if _capitals(name):
                self._exact.setdefault(name, (value, name))
            elif key := _key(name):
                self._values.setdefault(key, (value, name))
        self._pattern = self._compile(
            [r"\s+".join(re.escape(w) for w in k.split()) for k in self._values], r"(?:e?s)?")
        self._exact_pattern = self._compile([re.escape(k) for k in self._exact], "")

    @staticmethod
    def _compile(alternatives: list[str], suffix: str) -> re.Pattern[str] | None:
        if not alternatives:
            return None
        ordered = sorted(alternatives, key=len, reverse=True)  # at one position the longest name wins
        return re.compile(r"(?<![^\W_])(?:" + "|".join(ordered) + ")" + suffix + r"(?![^\W_])")

    def __bool__(self) -> bool:
        return bool(self._values or self._exact)

    def items(self) -> Iterator[tuple[T, str]]:
        """Every (value, name as written)."""
        yield from self._values.values()
        yield from self._exact.values()

    def find(self, text: str) -> tuple[T, str] | None:
        """The value of the first name ``text`` mentions and that name as written, or None."""
        found: list[tuple[int, int, T, str]] = []
        if self._pattern is not None and (m := self._pattern.search(normalize(text))):
            key = " ".join(m.group(0).split())
            hit = self._values.get(key) or self._values.get(key[:-1]) or self._values.get(key[:-2])
            if hit is not None:
                found.append((m.start(), -len(key), *hit))
        if self._exact_pattern is not None and (m := self._exact_pattern.search(text)):
            found.append((m.start(), -len(m.group(0)), *self._exact[m.group(0)]))
        if not found:
            return None
        _, _, value, name = min(found, key=lambda f: (f[0], f[1]))
        return value, name


@dataclass(frozen=True)
class _Place:
    country: str
    place: str
    zone: Mapping[str, Any] | None
    domestic: bool


@lru_cache(maxsize=1)
def world_countries(path: Path = WORLD_FILE) -> tuple[tuple[str, ...], ...]:
    """Each line of ``countries.txt``: the country's name, then its other names."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rows.append(tuple(n.strip() for n in line.split("|") if n.strip()))
    return tuple(rows)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _mappings(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value if isinstance(v, str | int | float)] if isinstance(value, list) else []


def _names_of(item: Mapping[str, Any]) -> list[str]:
    return [*_strings(item.get("name")), *_strings(item.get("includes")), *_strings(item.get("aliases"))]


class AskedExtractor:
    """Finds what a message names, with vocabularies built from one version of the policy file's facts."""

    def __init__(self, data: Mapping[str, Any], world: Iterable[tuple[str, ...]] = ()) -> None:
        shipping = _mapping(data.get("shipping"))
        self._places = Vocabulary(self._place_names(shipping, world))
        self._methods = Vocabulary((name, m) for m in _mappings(shipping.get("methods")) for name in _names_of(m))
        payment = _mapping(data.get("payment"))
        self._payments = Vocabulary(
            [(name, (m, True)) for m in _mappings(payment.get("methods")) for name in _names_of(m)]
            + [(name, (m, False)) for m in _mappings(payment.get("not_accepted")) for name in _names_of(m)])

    @classmethod
    def for_policy(cls, data: Mapping[str, Any]) -> AskedExtractor:
        return cls(data, world_countries())

    @staticmethod
    def _place_names(shipping: Mapping[str, Any], world: Iterable[tuple[str, ...]]) -> list[tuple[str, _Place]]:
        names: list[tuple[str, _Place]] = []
        known: dict[str, _Place] = {}

        def add(name: str, place: _Place) -> None:
            names.append((name, place))
            known.setdefault(_key(name), place)

        domestic = _mapping(shipping.get("domestic"))
        if home := str(domestic.get("country") or ""):
            here = _Place(home, home, None, True)
            for name in [home, *_strings(domestic.get("aliases"))]:
                add(name, here)
            for region in _strings(domestic.get("regions")):
                add(region, _Place(home, region, None, True))
        international = _mapping(shipping.get("international"))
        for zone in _mappings(international.get("zones")):
            zone_name = str(zone.get("name") or "")
            for country in _strings(zone.get("countries")):
                add(country, _Place(country, country, zone, False))
            if zone_name:
                whole = known.get(_key(zone_name)) or _Place(zone_name, zone_name, zone, False)
                for name in [zone_name, *_strings(zone.get("aliases"))]:
                    add(name, whole)
        for country, aliases in _mapping(international.get("country_aliases")).items():
            place = known.get(_key(str(country))) or _Place(str(country), str(country), None, False)
            for name in [str(country), *_strings(aliases)]:
                add(name, place)
        for row in world:  # the rest of the world: known to the policy, or a country it does not ship to
            place = next((known[_key(n)] for n in row if _key(n) in known), None) or _Place(row[0], row[0], None, False)
            for name in row:
                add(name, place)
        return names

    def extract(self, text: str) -> Asked:
        asked = NOTHING_ASKED
        facts: list[str] = []
        if found := self._places.find(text):
            place = found[0]
            asked = replace(asked, country=place.country, place=place.place, zone=place.zone, domestic=place.domestic)
            facts.append("shipping.domestic" if place.domestic else "shipping.international")
        if found_method := self._methods.find(text):
            asked = replace(asked, method=found_method[0])
            facts.append("shipping.methods")
        if found_payment := self._payments.find(text):
            (method, accepted), term = found_payment
            asked = replace(asked, payment=method, payment_accepted=accepted, payment_term=term)
            facts.append("payment.methods" if accepted else "payment.not_accepted")
        return replace(asked, facts=tuple(facts)) if facts else asked

    def samples(self) -> list[Asked]:
        """One ``Asked`` per kind of thing a message can name, to render every branch of every answer."""
        samples = [NOTHING_ASKED]
        kinds: set[tuple[str, bool, bool, bool]] = set()
        for place, _ in self._places.items():
            zone = str(place.zone.get("name") or "") if place.zone is not None else ""
            kind = (zone, place.domestic, place.place != place.country, place.country == zone)
            if kind not in kinds:
                kinds.add(kind)
                samples.append(Asked(country=place.country, place=place.place, zone=place.zone,
                                     domestic=place.domestic, facts=("shipping.international",)))
        seen: set[tuple[int, bool]] = set()
        for method, _ in self._methods.items():
            if (id(method), False) not in seen:
                seen.add((id(method), False))
                samples.append(Asked(method=method, facts=("shipping.methods",)))
        for (payment, accepted), name in self._payments.items():
            alias = name != payment.get("name")
            if (id(payment), alias) not in seen:
                seen.add((id(payment), alias))
                samples.append(Asked(payment=payment, payment_accepted=accepted, payment_term=name,
                                     facts=("payment.methods" if accepted else "payment.not_accepted",)))
        return samples
