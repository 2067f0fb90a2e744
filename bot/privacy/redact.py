"""Personal data in free text: emails, phone numbers, payment card numbers and IBANs.

:func:`redact` replaces each with a placeholder (``[email]``, ``[phone]``, ``[card]``, ``[iban]``);
:func:`mask_cards` only masks card numbers, keeping their last four digits (``•••• 4242``), which is
what the gateway does to every shopper message before it reaches Rasa or a store. :func:`redact_example`
replaces them with placeholders of the same shape (``someone@example.com``, ``555-0100``, ``•••• 4242``)
and moves entity offsets with them: that is what NLU training data gets (the inbox and the label export).

Card numbers are found however they are written: 13-19 digits of any script (fullwidth, Arabic-Indic, ...;
read with :func:`unicodedata.digit`), contiguous, one per group, or in groups (4-4-4-4, 4-6-5, 2-2-2-...)
separated by up to three spaces, dashes of any kind, dots, slashes, commas or underscores, with invisible
characters (zero-width spaces and joiners, word joiner, BOM, soft hyphen, direction marks) anywhere, glued
to a word (``card4242...``) or after a ``+``, and in log lines with those characters written as escapes
(``%r``, JSON: ``\\u200b``, ``\\t``); and each candidate must pass the Luhn check. Other candidates
are checked too: an IBAN passes ISO 13616's mod-97 check; a phone number has 7-15 digits, at least one group
of three, and is not a date. Order numbers (``NW-100234``), prices, sizes and quantities are left alone.
:class:`RedactingFilter` applies :func:`redact` to log records; :func:`install_log_redaction` puts it
where every record of the process passes.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

EMAIL = re.compile(r"(?<![A-Za-z0-9._%+'-])[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_IBAN_CANDIDATE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}[A-Za-z0-9]{0,30}(?: [A-Za-z0-9]{1,4})*(?![A-Za-z0-9])")
_PHONE_CANDIDATE = re.compile(r"(?<![\w+./-])(?:\+\(?|\()?\d[\d ().-]{5,}\d(?![\w/-])")
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")
CARD_MASK = "•••• "

# Card numbers. A digit: any decimal digit (\d is Unicode's Nd) and the other characters that have a digit
# value (superscripts, subscripts, circled and Ethiopic digits, ...): unicodedata.digit() reads them all.
_DIGIT = (r"[\d\u00b2\u00b3\u00b9\u1369-\u1371\u19da\u2070\u2074-\u2079\u2080-\u2089\u2460-\u2468\u2474-\u247c"
          r"\u2488-\u2490\u24ea\u24f5-\u24fd\u24ff\u2776-\u277e\u2780-\u2788\u278a-\u2792\U00010a40-\U00010a43"
          r"\U00010e60-\U00010e68\U00011052-\U0001105a\U0001f100-\U0001f10a]")
# Invisible characters, ignored wherever they are: soft hyphen, combining grapheme joiner, Arabic letter mark,
# Mongolian separators, zero-width space / non-joiner / joiner, direction marks and embeddings, word joiner
# and the other invisible operators, variation selectors, BOM (zero-width no-break space); and the same as
# the escapes a log line shows for them (``%r``, ``json.dumps``: ``\u200b``, ``\xad``).
_INVISIBLE_ESCAPE = r"\\(?:u200[b-fB-F]|u206[0-9a-fA-F]|u202[a-eA-E]|u[fF][eE][fF][fF]|x[aA][dD]|u00[aA][dD])"
_INVISIBLE = (rf"(?:{_INVISIBLE_ESCAPE}"
              r"|[\u00ad\u034f\u061c\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufe00-\ufe0f\ufeff])")
# What people put between groups of digits: any white space, dashes of every kind (hyphen, en and em dash,
# minus, fullwidth), dots, bullets, slashes, commas, underscores (with their fullwidth forms); and escapes
# of white space and punctuation as a log line shows them (``\t``, ``\xa0``, ``\u2013``, ``\uff0e``).
# (disjoint from the invisible ones: an escape that could be read as either would make the pattern backtrack
# without end)
_GAP_ESCAPE = (r"\\(?:[tnr]|x[aA][0-9a-cA-CeEfF]|x[bB][0-9a-fA-F]|u00[aA][0-9a-cA-CeEfF]|u00[bB][0-9a-fA-F]"
               r"|u20(?:0[0-9aA]|1[0-9a-fA-F]|2[0-9fF]|[34][0-9a-fA-F])"
               r"|u(?:221|22[cC]|30[0fF]|[fF][eE][56]|[fF][fF][03]|060)[0-9a-fA-F])")
_GAP_CHAR = (rf"(?:{_GAP_ESCAPE}"
             r"|[\s\-\u2010-\u2015\u2043\u2212\ufe58\ufe63\uff0d.\u00b7\u2022\u2027\u2219\u22c5\u30fb\uff0e"
             r"/\\\u2044\u2215\uff0f\uff3c,\uff0c\u060c_\uff3f])")
# A group of digits (invisible characters inside it ignored); an escape is skipped whole, so that the digits
# of "\\u2013" are not read as a group.
_GROUP = re.compile(rf"{_INVISIBLE_ESCAPE}|{_GAP_ESCAPE}|(?P<group>{_DIGIT}(?:{_INVISIBLE}*{_DIGIT})*)")
# Groups of digits with gaps of one to three separators (plus any invisible characters) between them; an
# escape right before the first digit is taken with them (the digits of "\\u2060" are not the card's).
_DIGIT_RUN = re.compile(rf"(?:{_INVISIBLE_ESCAPE}|{_GAP_ESCAPE}){{0,3}}"
                        rf"{_DIGIT}(?:{_INVISIBLE}*{_DIGIT})*(?:(?:{_INVISIBLE}*{_GAP_CHAR}){{1,3}}{_INVISIBLE}*"
                        rf"{_DIGIT}(?:{_INVISIBLE}*{_DIGIT})*)*")
_INVISIBLES = re.compile(f"{_INVISIBLE}+")
_MIN_CARD, _MAX_CARD = 13, 19

Edit = tuple[int, int, str]  # (start, end, replacement) in the text one pass of the redaction saw


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of digits (payment card numbers)."""
    if not digits.isdigit():
        return False
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """ISO 13616 check: 15-34 letters and digits, country code, two check digits, mod 97 == 1."""
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]+", compact):
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def _is_card(groups: Sequence[str], gaps: Sequence[str], start: int, end: int) -> bool:
    """Whether ``groups[start:end]`` (with ``gaps[start:end - 1]`` between them) is a card number: 13-19
    digits passing the Luhn check, written as one group; or 4, then 4-6 each, the last 1-6 (4-4-4-4, 4-6-5,
    4-4-4-4-3), separated by anything; or in groups of one, two or three digits alike, the last possibly
    shorter, separated alike (``4 2 4 2 ...``, ``42-42-42-...``; not ``12.99, 15.99, ...``), and then the
    whole run of such groups (no card cut out of a longer row of single digits)."""
    card = groups[start:end]
    if not _MIN_CARD <= sum(len(g) for g in card) <= _MAX_CARD:
        return False
    if len(card) == 1:
        return luhn_valid(card[0])
    first, middle, last = len(card[0]), [len(g) for g in card[1:-1]], len(card[-1])
    if not (first == 4 and all(4 <= n <= 6 for n in middle) and 1 <= last <= 6):
        if first > 3 or any(n != first for n in middle) or not 1 <= last <= first:
            return False
        between = set(gaps[start:end - 1])
        if len(between) != 1:
            return False
        gap = between.pop()
        if start > 0 and gaps[start - 1] == gap and len(groups[start - 1]) == first:
            return False  # the row of groups goes on before
        if end < len(groups) and last == first and gaps[end - 1] == gap and len(groups[end]) <= first:
            return False  # ... or after
    return luhn_valid("".join(card))


def _ascii_digits(text: str) -> str:
    """The digits of ``text`` (any script) as ASCII; everything else dropped."""
    return "".join(str(unicodedata.digit(ch)) for ch in text if unicodedata.digit(ch, None) is not None)


def _card_edits(text: str, replacement: Callable[[str], str]) -> list[Edit]:
    """Each card number in ``text``: its span and ``replacement(its digits in ASCII)``.

    Within a run of digit groups, the first group that starts a card (the longest one it starts) is taken,
    and the search goes on after it; a group that starts none is skipped. A run of more than 19 digits
    without a separator is never a card (nor part of one).
    """
    edits: list[Edit] = []
    for run in _DIGIT_RUN.finditer(text):
        groups = [(run.start() + g.start(), run.start() + g.end(), _ascii_digits(_INVISIBLES.sub("", g.group())))
                  for g in _GROUP.finditer(run.group()) if g.group("group")]
        # gaps[k]: what separates group k from group k + 1, invisible characters left out
        gaps = [_INVISIBLES.sub("", text[a[1]:b[0]]) for a, b in pairwise(groups)]
        digits = [g[2] for g in groups]
        i = 0
        while i < len(groups):
            ends, total = [], 0
            for j in range(i, len(groups)):
                total += len(digits[j])
                if total > _MAX_CARD:
                    break
                if total >= _MIN_CARD:
                    ends.append(j + 1)
            end = next((j for j in reversed(ends) if _is_card(digits, gaps, i, j)), None)
            if end is None:
                i += 1
                continue
            edits.append((groups[i][0], groups[end - 1][1], replacement("".join(digits[i:end]))))
            i = end
    return edits


def _iban_edits(text: str, replacement: Callable[[str], str]) -> list[Edit]:
    """Each IBAN (the longest prefix of whole space-separated groups of a candidate that passes the check)."""
    edits: list[Edit] = []
    for match in _IBAN_CANDIDATE.finditer(text):
        found = match.group(0)
        ends = [m.start() for m in re.finditer(" ", found)] + [len(found)]
        for end in reversed(ends):
            groups = found[:end].split(" ")
            if (len(groups) == 1 or len(groups[0]) == 4) and iban_valid("".join(groups)):
                edits.append((match.start(), match.start() + end, replacement(found[:end])))
                break
    return edits


def _is_phone(found: str) -> bool:
    digits = re.sub(r"\D", "", found)
    groups = [g for g in re.split(r"\D+", found) if g]
    if not 7 <= len(digits) <= 15 or _DATE.fullmatch(found.strip("()")):
        return False
    if not any(len(g) >= 3 for g in groups):
        return False  # "sizes 8 10 12 14"
    if found.isdigit() and len(digits) > 12:
        return False  # a long plain number (a tracking or reference number) without a "+"
    # short numbers only in the usual local shape (555-1234)
    return len(digits) >= 9 or found.startswith("+") or re.fullmatch(r"\d{3}[-. ]\d{4}", found) is not None


def _phone_edits(text: str, replacement: Callable[[str], str]) -> list[Edit]:
    return [(m.start(), m.end(), replacement(m.group(0))) for m in _PHONE_CANDIDATE.finditer(text)
            if _is_phone(m.group(0))]


def _email_edits(text: str, replacement: Callable[[str], str]) -> list[Edit]:
    return [(m.start(), m.end(), replacement(m.group(0))) for m in EMAIL.finditer(text)]


def _apply(text: str, edits: Sequence[Edit]) -> str:
    out, at = [], 0
    for start, end, replacement in edits:
        out.append(text[at:start])
        out.append(replacement)
        at = end
    out.append(text[at:])
    return "".join(out)


@dataclass(frozen=True)
class Placeholders:
    """What each kind of personal data becomes; a card's is made from its digits (ASCII)."""

    email: str
    phone: str
    iban: str
    card: Callable[[str], str]


TAGS = Placeholders("[email]", "[phone]", "[iban]", lambda _digits: "[card]")
# For NLU examples: text of the same shape, so the email regex and entity still see an email, and a card
# reads as the gateway's mask. None of them is found again as something else (redaction is idempotent).
EXAMPLE = Placeholders("someone@example.com", "555-0100", "XX00 0000 0000", lambda digits: CARD_MASK + digits[-4:])


def _redact(text: str, placeholders: Placeholders) -> tuple[str, list[list[Edit]]]:
    """The redacted text and the edits of each pass (emails, IBANs, cards, phones; each on the text the
    previous passes left)."""
    passes: list[list[Edit]] = []
    finders: list[tuple[Callable[[str, Callable[[str], str]], list[Edit]], Callable[[str], str]]] = [
        (_email_edits, lambda _: placeholders.email), (_iban_edits, lambda _: placeholders.iban),
        (_card_edits, placeholders.card), (_phone_edits, lambda _: placeholders.phone)]
    for n, (find, replacement) in enumerate(finders):
        if n == 1 and not any(c.isdigit() for c in text):
            break  # everything but an email has digits
        edits = find(text, replacement)
        if edits:
            text = _apply(text, edits)
            passes.append(edits)
    return text, passes


def mask_cards(text: str) -> str:
    """Luhn-valid card numbers replaced by ``•••• 1234`` (their last four digits); nothing else changes."""
    if not text or not any(c.isdigit() for c in text):
        return text
    ibans = _iban_edits(text, str)  # an IBAN's digits are not a card number
    edits = [edit for edit in _card_edits(text, lambda digits: CARD_MASK + digits[-4:])
             if not any(edit[0] < end and start < edit[1] for start, end, _ in ibans)]
    return _apply(text, edits) if edits else text


def redact(text: str) -> str:
    """Emails, card numbers, IBANs and phone numbers replaced by ``[email]``, ``[card]``, ``[iban]``,
    ``[phone]``."""
    if not text:
        return text or ""
    return _redact(text, TAGS)[0]


def _moved(position: int, passes: Sequence[Sequence[Edit]], *, end: bool) -> int:
    """Where ``position`` of the original text is after the edits; one inside a replaced span goes to the
    start of its replacement (``end=False``) or to its end (``end=True``)."""
    for edits in passes:
        shift, inside = 0, None
        for start, stop, replacement in edits:
            if position <= start:
                break
            if position < stop:
                inside = start + shift + (len(replacement) if end else 0)
                break
            shift += len(replacement) - (stop - start)
        position = inside if inside is not None else position + shift
    return position


def redact_example(text: str, entities: Sequence[Mapping[str, Any]] = ()) -> tuple[str, list[dict[str, Any]]]:
    """An NLU example with its personal data replaced by placeholders of the same shape
    (``someone@example.com``, ``555-0100``, ``XX00 0000 0000``, ``•••• 4242``), and its entities
    (``start``/``end`` offsets, ``value``) moved to fit: an entity over an email covers the placeholder,
    and a value with personal data in it is redacted too. Entities with offsets that do not fit are dropped.
    """
    redacted, passes = _redact(text or "", EXAMPLE)
    out: list[dict[str, Any]] = []
    for entity in entities:
        try:
            start, end = int(entity["start"]), int(entity["end"])
        except (KeyError, TypeError, ValueError):
            continue
        if not 0 <= start < end <= len(text):
            continue
        new_start, new_end = _moved(start, passes, end=False), _moved(end, passes, end=True)
        if not 0 <= new_start < new_end <= len(redacted):
            continue
        moved = {**entity, "start": new_start, "end": new_end}
        value = entity.get("value")
        if isinstance(value, str):
            moved["value"] = redacted[new_start:new_end] if value == text[start:end] else _redact(value, EXAMPLE)[0]
        out.append(moved)
    return redacted, out


def redact_for_training(text: str) -> str:
    """:func:`redact_example` without entities: the text alone."""
    return _redact(text or "", EXAMPLE)[0]


def redact_value(value: Any) -> Any:
    """:func:`redact` applied to every string inside plain JSON-like data (dicts, lists)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


# --------------------------------------------------------------------------- logging


class RedactingFilter(logging.Filter):
    """Redacts a record's message (with its arguments merged in) and its exception text; never drops it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler to report
            return True
        record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        record._redacted = True
        return True


_FILTER = RedactingFilter()
_installed = False


def install_log_redaction() -> None:
    """Redact every log record this process makes, whichever logger and handler it goes through.

    A filter on the root logger alone only sees records logged on the root logger itself (Python skips
    ancestors' filters when a record propagates), so the filter also runs from the log record factory:
    every record is redacted when it is made. Safe to call more than once.
    """
    global _installed
    if _installed:
        return
    root = logging.getLogger()
    root.addFilter(_FILTER)
    make_record = logging.getLogRecordFactory()

    def redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        _FILTER.filter(record)
        return record

    logging.setLogRecordFactory(redacted_record)
    _installed = True
