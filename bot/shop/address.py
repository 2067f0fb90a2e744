"""Postal addresses typed in a chat: one line ("12 Baker Street, London NW1 6XE, UK") or several.

``parse_address`` finds the country, the postcode (validated for the country), the city and the
street with its house number, and says precisely what is missing or wrong when it cannot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class AddressError(ValueError):
    """The text is not a usable address; the message says why and is safe to show the shopper."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Address:
    line1: str
    city: str
    postcode: str
    country: str = "US"  # ISO 3166-1 alpha-2
    line2: str = ""
    region: str = ""  # US state / Canadian province code, when given
    name: str = ""

    @property
    def city_line(self) -> str:
        """The city as stored on an order (the order has no region column: "Springfield, IL")."""
        return f"{self.city}, {self.region}" if self.region else self.city

    @property
    def lines(self) -> list[str]:
        if self.country in ("US", "CA"):
            last = f"{self.city_line} {self.postcode}"
        elif self.country == "GB":
            last = f"{self.city} {self.postcode}"
        else:
            last = f"{self.postcode} {self.city}"
        return [p for p in [self.name, self.line1, self.line2, last, COUNTRY_NAMES.get(self.country, self.country)]
                if p]

    def one_line(self) -> str:
        return ", ".join(self.lines)


COUNTRY_NAMES = {
    "US": "United States", "GB": "United Kingdom", "CA": "Canada", "DE": "Germany", "FR": "France",
    "NL": "Netherlands", "AU": "Australia", "JP": "Japan",
}

_ALIASES = {
    "us": "US", "usa": "US", "u.s.": "US", "u.s.a.": "US", "united states": "US", "united states of america": "US",
    "america": "US",
    "uk": "GB", "u.k.": "GB", "gb": "GB", "united kingdom": "GB", "great britain": "GB", "england": "GB",
    "scotland": "GB", "wales": "GB", "northern ireland": "GB",
    "canada": "CA",
    "de": "DE", "germany": "DE", "deutschland": "DE",
    "fr": "FR", "france": "FR",
    "nl": "NL", "netherlands": "NL", "the netherlands": "NL", "holland": "NL",
    "au": "AU", "australia": "AU",
    "jp": "JP", "japan": "JP",
}

# Postcode patterns (upper-case text); each finds the postcode as a whole token.
_POSTCODE = {
    "US": re.compile(r"(?<![\w-])(\d{5}(?:-\d{4})?)(?![\w-])"),
    "GB": re.compile(r"(?<!\w)([A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2})(?!\w)"),
    "CA": re.compile(r"(?<!\w)([ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] ?\d[ABCEGHJ-NPRSTV-Z]\d)(?!\w)"),
    "DE": re.compile(r"(?<![\w-])(\d{5})(?![\w-])"),
    "FR": re.compile(r"(?<![\w-])(\d{5})(?![\w-])"),
    "NL": re.compile(r"(?<!\w)(\d{4} ?[A-Z]{2})(?!\w)"),
    "AU": re.compile(r"(?<![\w-])(\d{4})(?![\w-])"),
    "JP": re.compile(r"(?<![\w-])(\d{3}-\d{4})(?![\w-])"),
}
_IN_NAMES = {"US": "the US", "GB": "the UK", "NL": "the Netherlands"}
_CITY_EXAMPLES = {"US": "'Springfield, IL 62704'", "CA": "'Toronto, ON M5H 2N2'", "GB": "'London NW1 6XE'",
                  "DE": "'10115 Berlin'", "FR": "'75001 Paris'"}
_EXAMPLES = {
    "US": "a 5-digit ZIP code such as 62704 (or ZIP+4, 62704-1234)",
    "GB": "a UK postcode such as NW1 6XE",
    "CA": "a Canadian postal code such as K1A 0B1",
    "DE": "a 5-digit postcode such as 10115",
    "FR": "a 5-digit postcode such as 75001",
    "NL": "a Dutch postcode such as 1012 AB",
    "AU": "a 4-digit postcode such as 2000",
    "JP": "a postcode such as 100-0001",
}
_US_STATES = frozenset({
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY",
    "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH",
    "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "PR",
})
_CA_PROVINCES = frozenset({"AB", "BC", "MB", "NB", "NL", "NS", "NT", "NU", "ON", "PE", "QC", "SK", "YT"})
_POSTCODE_LIKE = re.compile(r"(?<!\w)([A-Z]{0,2}\d[\dA-Z -]{1,8})\s*$")


def _country_of(part: str) -> str | None:
    return _ALIASES.get(" ".join(part.lower().split()))


def _normalize_postcode(country: str, code: str) -> str:
    code = code.upper()
    if country in ("GB", "CA"):
        compact = code.replace(" ", "")
        return f"{compact[:-3]} {compact[-3:]}"
    if country == "NL":
        compact = code.replace(" ", "")
        return f"{compact[:4]} {compact[4:]}"
    return code


def _find_postcode(parts: list[str], country: str) -> tuple[int, re.Match[str]] | None:
    """The last part holding a postcode of ``country`` (searched from the end, so a house number
    such as "12345 Main St" in the first line is not mistaken for a ZIP code)."""
    pattern = _POSTCODE[country]
    for index in range(len(parts) - 1, -1, -1):
        matches = list(pattern.finditer(parts[index].upper()))
        if matches and (index > 0 or len(parts) == 1):
            return index, matches[-1]
    return None


def _has_digit(text: str) -> bool:
    return any(ch.isdigit() for ch in text)


def _split_region(country: str, text: str) -> tuple[str, str]:
    """"Springfield IL" -> ("Springfield", "IL") for US states and Canadian provinces."""
    words = text.split()
    states = _US_STATES if country == "US" else _CA_PROVINCES if country == "CA" else frozenset()
    if words and words[-1].upper().strip(".") in states:
        return " ".join(words[:-1]), words[-1].upper().strip(".")
    return text, ""


def parse_address(text: str, default_country: str = "US") -> Address:
    """Parse a shopper's address; raises :class:`AddressError` saying what to fix."""
    if not text or not text.strip():
        raise AddressError("Please type the full address: street and house number, city and postcode.")
    parts = [" ".join(p.split()) for p in re.split(r"[\n;,]+", text) if p.strip()]
    country: str | None = None
    if len(parts) > 1 and parts[-1].upper() == "CA":  # a lone "CA" at the end is California
        parts[-2:] = [f"{parts[-2]} CA"]
    elif len(parts) > 1 and (found := _country_of(parts[-1])):
        country = found
        parts.pop()
    if len(parts) < 2:
        raise AddressError(
            "That looks incomplete: I need the street with the house number, the city and the postcode, "
            "e.g. '12 Baker Street, London NW1 6XE, UK'."
        )

    # The postcode: of the named country, else of the default country, else of any we know.
    candidates = [country] if country else [default_country, *[c for c in _POSTCODE if c != default_country]]
    hit = None
    for candidate in candidates:
        if candidate in _POSTCODE and (found_pc := _find_postcode(parts, candidate)):
            country, hit = candidate, found_pc
            break
    if hit is None or country is None:
        where = country or default_country
        example = _EXAMPLES.get(where, "the postcode")
        tail = parts[-1].upper()
        if _POSTCODE_LIKE.search(tail) and _has_digit(tail):
            place = _IN_NAMES.get(where, COUNTRY_NAMES.get(where, where))
            raise AddressError(f"That postcode doesn't look right for {place}: I need {example}.")
        raise AddressError(f"The postcode is missing: please add {example}.")
    index, match = hit
    postcode = _normalize_postcode(country, match.group(1))
    part = parts[index]
    rest = " ".join((part[: match.start()] + " " + part[match.end():]).strip(" -").split())

    # The city: beside the postcode ("London NW1 6XE", "75001 Paris"), else the part before it.
    city, region = _split_region(country, rest)
    city_index = index
    if not city:
        if index == 0 or (_has_digit(parts[index - 1]) and index == 1):
            raise AddressError("The city is missing: please add the town or city, e.g. "
                               f"{_CITY_EXAMPLES.get(country, _CITY_EXAMPLES['GB'])}.")
        city_index = index - 1
        city, found_region = _split_region(country, parts[city_index])
        region = region or found_region
    if not city or _has_digit(city):
        raise AddressError("The city is missing: please add the town or city after the street.")

    # The street: what comes before the city; its house number is required.
    street_parts = parts[:city_index]
    if not street_parts:
        raise AddressError("The street is missing: please add the street and house number, e.g. '12 Baker Street'.")
    name = ""
    if len(street_parts) > 1 and not _has_digit(street_parts[0]) and any(_has_digit(p) for p in street_parts[1:]):
        name, street_parts = street_parts[0], street_parts[1:]
    if not any(_has_digit(p) for p in street_parts):
        raise AddressError(
            f"The house number is missing in '{street_parts[0]}': please add it, e.g. '12 {street_parts[0]}'."
        )
    return Address(
        line1=street_parts[0][:200],
        line2=", ".join(street_parts[1:])[:200],
        city=city[:100],
        postcode=postcode,
        country=country,
        region=region,
        name=name[:200],
    )
