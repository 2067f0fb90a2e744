"""Personal data in free text: emails, phone numbers, payment card numbers and IBANs.

:func:`redact` replaces each with a placeholder (``[email]``, ``[phone]``, ``[card]``, ``[iban]``);
:func:`mask_cards` only masks card numbers, keeping their last four digits (``•••• 4242``), which is
what the gateway does to every shopper message before it reaches Rasa or a store.

Candidates are found by shape and then checked, so ordinary numbers stay: a card number has 13-19
digits (contiguous, or in groups of 4 / 4-6-5 separated by spaces or dashes) and passes the Luhn check;
an IBAN passes ISO 13616's mod-97 check; a phone number has 7-15 digits, at least one group of three,
and is not a date. Order numbers (``NW-100234``), prices, sizes and quantities are left alone.
:class:`RedactingFilter` applies :func:`redact` to log records; :func:`install_log_redaction` puts it
where every record of the process passes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# A run of digits, possibly in groups separated by one space or dash (checked further in _card).
_CARD_CANDIDATE = re.compile(r"(?<![\w+.,/-])\d{4,19}(?:[ -]\d{1,6})*(?![\w])")
_IBAN_CANDIDATE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}[A-Za-z0-9]{0,30}(?: [A-Za-z0-9]{1,4})*(?![A-Za-z0-9])")
_PHONE_CANDIDATE = re.compile(r"(?<![\w+./-])(?:\+\(?|\()?\d[\d ().-]{5,}\d(?![\w/-])")
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")
_SEPARATOR = re.compile(r"[ -]")
CARD_MASK = "•••• "


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


def _card_groups_ok(groups: list[str]) -> bool:
    if len(groups) == 1:
        return True
    return len(groups[0]) == 4 and all(4 <= len(g) <= 6 for g in groups[1:-1]) and 1 <= len(groups[-1]) <= 6


def _longest_valid_prefix(text: str, separator: re.Pattern[str],
                          valid: Callable[[list[str]], bool]) -> int | None:
    """Length (in characters of ``text``) of the longest prefix of whole groups that ``valid`` accepts."""
    ends = [m.start() for m in separator.finditer(text)] + [len(text)]
    for end in reversed(ends):
        if valid(separator.split(text[:end])):
            return end
    return None


def _is_card(groups: list[str]) -> bool:
    digits = "".join(groups)
    return 13 <= len(digits) <= 19 and _card_groups_ok(groups) and luhn_valid(digits)


def _is_iban(groups: list[str]) -> bool:
    return (len(groups) == 1 or len(groups[0]) == 4) and iban_valid("".join(groups))


def _replace_checked(pattern: re.Pattern[str], separator: re.Pattern[str], valid: Callable[[list[str]], bool],
                     text: str, replacement: Callable[[str], str]) -> str:
    """Each candidate of ``pattern`` whose longest valid prefix of groups is replaced; the rest kept."""
    def one(match: re.Match[str]) -> str:
        found = match.group(0)
        end = _longest_valid_prefix(found, separator, valid)
        if end is None:
            return found
        return replacement(found[:end]) + found[end:]
    return pattern.sub(one, text)


def _phone(match: re.Match[str]) -> str:
    found = match.group(0)
    digits = re.sub(r"\D", "", found)
    groups = [g for g in re.split(r"\D+", found) if g]
    if not 7 <= len(digits) <= 15 or _DATE.fullmatch(found.strip("()")):
        return found
    if not any(len(g) >= 3 for g in groups):
        return found  # "sizes 8 10 12 14"
    if found.isdigit() and len(digits) > 12:
        return found  # a long plain number (a tracking or reference number) without a "+"
    if len(digits) < 9 and not (found.startswith("+") or re.fullmatch(r"\d{3}[-. ]\d{4}", found)):
        return found  # short numbers only in the usual local shape (555-1234)
    return "[phone]"


def mask_cards(text: str) -> str:
    """Luhn-valid card numbers replaced by ``•••• 1234`` (their last four digits); nothing else changes."""
    if not text or not any(c.isdigit() for c in text):
        return text
    return _replace_checked(_CARD_CANDIDATE, _SEPARATOR, _is_card, text,
                            lambda card: CARD_MASK + re.sub(r"\D", "", card)[-4:])


def redact(text: str) -> str:
    """Emails, card numbers, IBANs and phone numbers replaced by ``[email]``, ``[card]``, ``[iban]``,
    ``[phone]``."""
    if not text:
        return text or ""
    text = EMAIL.sub("[email]", text)
    if not any(c.isdigit() for c in text):
        return text
    text = _replace_checked(_CARD_CANDIDATE, _SEPARATOR, _is_card, text, lambda _: "[card]")
    text = _replace_checked(_IBAN_CANDIDATE, re.compile(" "), _is_iban, text, lambda _: "[iban]")
    return _PHONE_CANDIDATE.sub(_phone, text)


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
