"""Card numbers are masked however they are written: separators of every kind, invisible characters, glued to
words, Unicode digits; and what is not a Luhn-valid card number (order numbers, phones, prices, dates, IBANs)
stays as it was. The last test sends such cards through the real gateway (FastAPI app, real HTTP to a Rasa
stand-in that stores and logs what it gets as Rasa does) and reads the NLU inbox and the log records.
"""

from __future__ import annotations

import json
import logging
import unicodedata
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.config import Settings
from bot.db import migrate, session_scope
from bot.privacy.redact import install_log_redaction, mask_cards, redact, redact_example
from bot.rasa_events import EVENTS, create_events_table, tracker_engine
from bot.training.nlu_inbox import ingest
from bot.training.tables import NluMessage
from tests.support.json_stub import JsonStub

VISA, MASTERCARD, AMEX = "4242424242424242", "5555555555554444", "378282246310005"
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]
DASHES = ["-", "\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2015", "\u2212", "\ufe58", "\ufe63", "\uff0d"]
SPACES = ["  ", "   ", "\t", "\u00a0", "\u202f", "\u2009", "\u2007", "\u3000", "\n"]
# zero in each script (Unicode Nd: consecutive code points 0-9)
ZEROS = {"fullwidth": 0xFF10, "arabic-indic": 0x0660, "persian": 0x06F0, "devanagari": 0x0966, "bengali": 0x09E6,
         "thai": 0x0E50, "nko": 0x07C0, "math-bold": 0x1D7CE, "math-monospace": 0x1D7F6}


def in_script(digits: str, zero: int) -> str:
    return "".join(chr(zero + int(d)) for d in digits)


def groups(digits: str, sizes: tuple[int, ...] = (4, 4, 4, 4)) -> list[str]:
    out, at = [], 0
    for size in sizes:
        out.append(digits[at:at + size])
        at += size
    return out


def quads(separator: str, digits: str = VISA) -> str:
    return separator.join(groups(digits))


def digits_of(text: str) -> str:
    """Every digit of ``text`` (any script) as ASCII."""
    return "".join(str(unicodedata.digit(ch)) for ch in text if unicodedata.digit(ch, None) is not None)


# (written as, the card number, what the text around it becomes)
CARDS: list[tuple[str, str, str]] = [
    (VISA, VISA, "{}"),
    (quads(" "), VISA, "{}"),
    (quads("."), VISA, "{}"),
    (quads("/"), VISA, "{}"),
    (quads(","), VISA, "{}"),
    (quads("_"), VISA, "{}"),
    (quads("\u00b7"), VISA, "{}"),  # middle dot
    (quads("\u2022"), VISA, "{}"),  # bullet
    (quads("\uff0e"), VISA, "{}"),  # fullwidth full stop
    (quads("\uff0f"), VISA, "{}"),  # fullwidth solidus
    (quads(" - "), VISA, "{}"),
    (quads(" / "), VISA, "{}"),
    (quads(" . "), VISA, "{}"),
    *[(quads(space), VISA, "{}") for space in SPACES],
    *[(quads(dash), VISA, "{}") for dash in DASHES],
    *[(quads(dash, MASTERCARD), MASTERCARD, "{}") for dash in DASHES[:5]],
    # zero-width characters between every digit, between groups, and as the only separator
    *[(mark.join(VISA), VISA, "{}") for mark in ZERO_WIDTH],
    *[(quads(mark), VISA, "{}") for mark in ZERO_WIDTH],
    *[(quads(" " + mark), VISA, "{}") for mark in ZERO_WIDTH],
    ("4\u00ad242 42\u200e42 4242 \u202a4242\u202c", VISA, "{}\u202c"),  # soft hyphen, direction marks
    ("4242\u200b-\u200b4242\u200b-\u200b4242\u200b-\u200b4242", VISA, "{}"),
    ("\u2060" + VISA + "\ufeff", VISA, "\u2060{}\ufeff"),  # (in a JSON log line: "\\u20604242...")
    # glued to words and signs
    ("card" + VISA, VISA, "card{}"),
    ("card" + quads(" "), VISA, "card{}"),
    (VISA + "please", VISA, "{}please"),
    ("+" + VISA, VISA, "+{}"),
    ("+" + quads(" "), VISA, "+{}"),
    ("#" + VISA, VISA, "#{}"),
    ("(" + quads("-") + ")", VISA, "({})"),
    ('"' + VISA + '"', VISA, '"{}"'),
    ("no:" + VISA + ";", VISA, "no:{}" + ";"),
    # every digit spaced, pairs, triples
    (" ".join(VISA), VISA, "{}"),
    ("  ".join(VISA), VISA, "{}"),
    ("-".join(VISA), VISA, "{}"),
    (".".join(VISA), VISA, "{}"),
    (" ".join(VISA[i:i + 2] for i in range(0, 16, 2)), VISA, "{}"),
    ("-".join(MASTERCARD[i:i + 3] for i in range(0, 16, 3)), MASTERCARD, "{}"),
    # mixed separators
    ("4242-4242 4242.4242", VISA, "{}"),
    ("4242 / 4242-4242\u20134242", VISA, "{}"),
    ("5555\u00a05555 - 5555/4444", MASTERCARD, "{}"),
    # Unicode digits, alone and mixed with ASCII
    *[(quads(" ", in_script(VISA, zero)), VISA, "{}") for zero in ZEROS.values()],
    *[(in_script(MASTERCARD, zero), MASTERCARD, "{}") for zero in ZEROS.values()],
    ("4242 " + in_script("4242", ZEROS["fullwidth"]) + " 4242 " + in_script("4242", ZEROS["arabic-indic"]), VISA,
     "{}"),
    ("\u2074\u00b2\u2074\u00b2" * 4, VISA, "{}"),  # superscripts
    ("\u2463\u2461\u2463\u2461" * 4, VISA, "{}"),  # circled digits
    # every length from 13 to 19 digits, and the usual groupings of each network
    ("4222222222222", "4222222222222", "{}"),
    ("3622 720627 1667", "36227206271667", "{}"),
    (AMEX, AMEX, "{}"),
    ("3782 822463 10005", AMEX, "{}"),
    ("3782\u2013822463\u201310005", AMEX, "{}"),
    ("6011 1111 1111 1117", "6011111111111117", "{}"),
    ("3530 1113 3330 0000", "3530111333300000", "{}"),
    ("6200 0000 0000 0005", "6200000000000005", "{}"),
    ("62000000000000000", "62000000000000000", "{}"),
    ("6200 0000 0000 0000 000", "6200000000000000000", "{}"),
    ("4000 0000 0000 0000 006", "4000000000000000006", "{}"),
    ("4000-0000-0000-0000-006", "4000000000000000006", "{}"),
    # in a JSON payload
    ('/inform{"card": "' + VISA + '"}', VISA, '/inform{{"card": "{}"}}'),
]


def masked(digits: str) -> str:
    return "•••• " + digits[-4:]


@pytest.mark.parametrize(("written", "digits", "around"), CARDS, ids=[ascii(c[0])[:60] for c in CARDS])
def test_a_card_number_is_masked_however_it_is_written(written: str, digits: str, around: str) -> None:
    message = f"my card is {written} thanks"
    wanted = "my card is " + around.format(masked(digits)) + " thanks"
    assert mask_cards(message) == wanted
    assert mask_cards(wanted) == wanted  # masking twice changes nothing
    # the logs and the NLU data: the digits are gone too
    assert redact(message) == "my card is " + around.format("[card]") + " thanks"
    text, _ = redact_example(message)
    assert text == wanted
    for out in (mask_cards(message), redact(message), text):
        assert digits[:-4] not in digits_of(out)


@pytest.mark.parametrize("written", [quads(" "), quads("."), " ".join(VISA), in_script(VISA, ZEROS["fullwidth"]),
                                     "\u200b".join(VISA), "card" + quads("\u2013")])
def test_two_cards_in_one_message_are_both_masked(written: str) -> None:
    text = f"{written} or else {MASTERCARD[:4]}.{MASTERCARD[4:8]}.{MASTERCARD[8:12]}.{MASTERCARD[12:]}, ok"
    assert mask_cards(text).endswith(f"{masked(VISA)} or else {masked(MASTERCARD)}, ok")


# What must stay as it is: numbers that are not a Luhn-valid card number in a card's shape.
NOT_CARDS = [
    quads(" ", "4242424242424241"),  # Luhn fails
    quads(".", "4242424242424241"),
    " ".join("4242424242424241"),
    in_script("4242424242424241", ZEROS["fullwidth"]),
    "\u200b".join("4242424242424241"),
    "424242424242",  # 12 digits
    "4242 4242 4242",
    "42424242424242424242",  # 20 digits: no card, and no card inside it either
    "product 99999999999999999999",
    "where is order NW-100234?",
    "orders NW-100234, NW-100235 and NW-100231",
    "orders 100234 100235 100231",  # 18 digits that pass Luhn, but grouped as order numbers
    "order #100234 for 2 items, 3 left",
    "+44 20 7946 0958",
    "call +1 (555) 123-4567 or 555-1234",
    "+49 1512 3456 7891",  # passes Luhn, but grouped as a phone number
    "+4915123456789",
    "0049 151 2345 6789",
    "jackets between 20 and 40, under 1299.99 dollars",
    "prices 12.99, 15.99, 19.99, 24.99, 29.99, 34.99, 39.99, 44.99",
    "$1,299.00 or 1.299,00 €",
    "1,000,000,000,000",
    "sizes 8 10 12 14 16 in stock",
    "sizes 8 9 10 11 12 13",
    "delivered on 2026-05-01 or 01.05.2026 at 10:30:00",
    "exp 12/26, cvc 123",
    "tracking 1Z999AA10123456784 and 12345678901234",
    "GB82WEST12345698765432",  # an IBAN (redact() makes it [iban], not [card])
    "DE89 3704 0044 0532 0130 00",
    "3.14159265358979",
    "192.168.100.200:8080",
    "•••• 4242",  # already masked
    '/add_to_cart{"product_id": 12, "quantity": 2}',
]


@pytest.mark.parametrize("text", NOT_CARDS)
def test_what_is_not_a_card_number_stays(text: str) -> None:
    assert mask_cards(text) == text
    assert "[card]" not in redact(text)


def test_log_records_lose_the_card_whatever_its_format() -> None:
    install_log_redaction()
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(self.format(record))

    logger = logging.getLogger("bot.test_card_masking")
    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for written, _, _ in CARDS:
            logger.info("shopper said %s", f"pay with {written}")
            logger.info("shopper said %r", f"pay with {written}")  # repr: \\t, \\xa0, \\u200b, \\u2013 ...
            logger.info("payload %s", json.dumps({"text": f"pay with {written}"}))  # JSON escapes too
    finally:
        logger.removeHandler(handler)
    assert len(seen) == 3 * len(CARDS)
    for n, line in enumerate(seen):
        digits = CARDS[n // 3][1]
        if n % 3 == 2 and any(not ch.isascii() and unicodedata.digit(ch, None) is not None for ch in CARDS[n // 3][0]):
            continue  # JSON's escaped digits (\\uff14) are no digits any more
        assert "[card]" in line and digits[:-4] not in digits_of(line), line


# --------------------------------------------------------------------------- through the gateway


class StoringRasa(JsonStub):
    """A Rasa stand-in on 127.0.0.1: its REST webhook stores each message as a ``user`` event in Rasa's
    SQL tracker store format (a SQLite file) and logs it as Rasa's processor does, then answers "ok"."""

    def __init__(self, tracker_url: str) -> None:
        self.tracker_url = tracker_url
        create_events_table(tracker_url)
        engine = tracker_engine(tracker_url)
        received: list[str] = []
        self.received = received
        log = logging.getLogger("rasa.core.processor")

        def answer(path: str, body: dict[str, Any]) -> bytes:
            if not path.startswith("/webhooks/rest"):
                return b"{}"
            text, sender = str(body.get("message") or ""), str(body.get("sender") or "")
            received.append(text)
            log.debug("Received user message '%s' with intent '{'name': 'nlu_fallback'}'", text)
            parse = {"text": text, "intent": {"name": "nlu_fallback", "confidence": 0.3}, "entities": [],
                     "intent_ranking": [{"name": "nlu_fallback", "confidence": 0.3},
                                        {"name": "greet", "confidence": 0.2}]}
            event = {"event": "user", "timestamp": 1_700_000_000.0, "text": text, "parse_data": parse,
                     "metadata": body.get("metadata") or {}, "input_channel": "rest"}
            with engine.begin() as conn:
                conn.execute(EVENTS.insert().values(sender_id=sender, type_name="user",
                                                    timestamp=event["timestamp"], intent_name="nlu_fallback",
                                                    action_name=None, data=json.dumps(event)))
            return b'[{"text": "ok"}]'

        super().__init__(answer)


@pytest.fixture
def storing_rasa(tmp_path: Path) -> Iterator[StoringRasa]:
    rasa = StoringRasa(f"sqlite:///{tmp_path / 'tracker.sqlite3'}")
    yield rasa
    rasa.close()


# (written, what the gateway sends on)
THROUGH_GATEWAY = [(quads("."), "{}"), (quads("  "), "{}"), (quads("/"), "{}"), ("\u200b".join(VISA), "{}"),
                   (quads("\u2013"), "{}"), ("card" + VISA, "card{}"), ("+" + VISA, "+{}"), (" ".join(VISA), "{}"),
                   (in_script(VISA, ZEROS["fullwidth"]), "{}"), (in_script(VISA, ZEROS["arabic-indic"]), "{}"),
                   ("4242-4242 4242.4242", "{}")]


def test_cards_sent_through_the_gateway_reach_neither_rasa_nor_the_inbox_nor_a_log(
        catalog: int, storing_rasa: StoringRasa, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from bot.web.app import create_app

    caplog.set_level(logging.DEBUG)
    tag = uuid.uuid4().hex[:8]
    app = create_app(Settings(rasa_url=storing_rasa.url, actions_url=storing_rasa.url, rasa_timeout_s=5.0))
    with TestClient(app) as client:
        for n, (written, _) in enumerate(THROUGH_GATEWAY):
            response = client.post("/api/chat", json={"conversation_id": f"conv-{tag}-{n}",
                                                      "text": f"charge {written} please"})
            assert response.status_code == 200 and response.json()["replies"] == [{"text": "ok"}]
        with client.websocket_connect(f"/ws/chat?conversation_id=conv-{tag}-ws") as socket:
            socket.send_text(json.dumps({"type": "message", "text": f"card {quads(chr(0x2014), MASTERCARD)} ok"}))
            frames = [socket.receive_json() for _ in range(3)]
            assert {"type": "bot", "messages": [{"text": "ok"}]} in frames
    sent_on = [f"charge {around.format(masked(VISA))} please" for _, around in THROUGH_GATEWAY]
    assert storing_rasa.received == [*sent_on, f"card {masked(MASTERCARD)} ok"]

    inbox_db = f"sqlite:///{tmp_path / 'console.sqlite3'}"
    migrate(inbox_db)
    with session_scope(inbox_db) as session:
        added = ingest(session, storing_rasa.tracker_url, threshold=0.7, sample_rate=0.0)
        stored = session.scalars(select(NluMessage.text)).all()
    assert added == len(THROUGH_GATEWAY) + 1 and len(stored) == added
    logged = [record.getMessage() for record in caplog.records]
    assert any("Received user message" in line for line in logged)
    for text in [*stored, *logged]:
        assert "424242424242" not in digits_of(text) and "555555555555" not in digits_of(text), text
