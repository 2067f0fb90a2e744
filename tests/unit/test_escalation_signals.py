"""Per-message signals of a dissatisfied shopper (``bot.escalation.signals``), one test per signal.

Repeat detection uses the real all-MiniLM-L6-v2 sentence embedder. Phrasings a shop should read differently
from the current patterns are ``xfail(strict=True)``: fixing the pattern turns them into failures to unmark.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from bot.escalation.signals import (
    REPEAT_SIMILARITY,
    SIGNALS,
    Exchange,
    asks_for_person,
    is_bot_failure,
    is_payload,
    is_product_criticism,
    same_reply,
    signal_rows,
)
from bot.escalation.training import sentence_embedder

Embed = Callable[[list[str]], np.ndarray]
Row = dict[str, float]

FAILURE = "Sorry, I didn't quite get that. Could you rephrase it?"
GOOD_ANSWER = "Yes, we deliver to Ireland in 3-5 working days."
PAYLOAD = '/add_to_cart{"product_id": 5, "size": "M"}'


def rows(exchanges: Sequence[Exchange]) -> list[Row]:
    return [row.as_dict() for row in signal_rows(exchanges)]


def one(text: str, bot_before: tuple[str, ...] = ()) -> Row:
    """The signals of a single shopper message, the first of its episode."""
    return rows([Exchange(text, bot_before)])[0]


def embedded(embed: Embed, texts: Sequence[str], bot_before: Sequence[tuple[str, ...]] | None = None,
             ) -> list[Exchange]:
    """Exchanges with real sentence embeddings for every message (short ones included: the signals must
    ignore those themselves)."""
    vectors = embed(list(texts))
    before = list(bot_before) if bot_before is not None else [() for _ in texts]
    return [Exchange(text, tuple(bot), embedding=vector) for text, bot, vector in zip(texts, before, vectors,
                                                                                      strict=True)]


@pytest.fixture(scope="module")
def embed() -> Embed:
    return sentence_embedder()


def test_row_has_every_signal_in_order() -> None:
    row = signal_rows([Exchange("do you ship to ireland")])[0]
    assert len(row.values) == len(SIGNALS)
    assert list(row.as_dict()) == list(SIGNALS)


# ------------------------------------------------------------------ sentiment, negative, mood, anger, criticism


def test_angry_service_message_is_negative_and_lowers_mood() -> None:
    row = one("this is useless, you're not helping at all")
    assert row["sentiment"] < -0.5
    assert row["negative"] == pytest.approx(-row["sentiment"])
    assert row["mood"] == pytest.approx(0.5 * row["sentiment"], abs=1e-4)
    assert row["criticism"] == 0.0
    assert row["anger"] == 2.0  # "you're not helping", "useless"


def test_product_criticism_is_shopping_not_frustration() -> None:
    row = one("these look cheap, show me something nicer")
    assert row["criticism"] == 1.0
    assert row["negative"] == 0.0
    assert row["mood"] == 0.0
    assert row["anger"] == 0.0


def test_negative_criticism_does_not_lower_the_mood() -> None:
    angry = "your service is terrible and I'm furious"
    criticised, neutral = (rows([Exchange(angry), Exchange(text)]) for text in ("hate the colour", "show me jackets"))
    assert criticised[1]["sentiment"] < 0  # VADER still sees "hate"...
    assert criticised[1]["criticism"] == 1.0
    assert criticised[1]["negative"] == 0.0  # ...but about a product it is neutral for the service signals
    assert criticised[1]["mood"] >= criticised[0]["mood"]
    assert criticised[1]["mood"] == neutral[1]["mood"]
    assert neutral[1]["criticism"] == 0.0


def test_service_complaint_with_a_product_word_is_not_criticism() -> None:
    row = one("these look cheap and your bot is useless")
    assert row["criticism"] == 0.0
    assert row["negative"] > 0.3
    assert row["mood"] < 0.0
    assert row["anger"] >= 1.0


def test_mood_follows_messages_with_ewma() -> None:
    texts = ["your service is terrible and I'm furious", "ugh, this chat is a waste of time", "great, thanks!"]
    got = rows([Exchange(t) for t in texts])
    mood = 0.0
    for row in got:
        mood += 0.5 * (row["sentiment"] - mood)
        assert row["mood"] == pytest.approx(mood, abs=1e-3)
    assert got[1]["mood"] < got[0]["mood"] < 0.0
    assert got[2]["negative"] == 0.0
    assert got[2]["mood"] > got[1]["mood"]


def test_anger_counts_lexicon_hits_up_to_three() -> None:
    assert one("where is my order?")["anger"] == 0.0
    assert one("you're useless")["anger"] == 1.0
    assert one("this is ridiculous, useless, pathetic scam")["anger"] == 3.0  # four hits, capped


def test_known_sentiment_is_used() -> None:
    row = rows([Exchange("where is my order?", sentiment=-0.6)])[0]
    assert row["sentiment"] == -0.6
    assert row["negative"] == 0.6


@pytest.mark.parametrize("text", [
    "these look cheap, show me something nicer", "hate the colour", "too expensive", "not my style",
    "the jacket is ugly", "the shoes look flimsy", "I hate these boots", "these are way too pricey",
    "I don't like the pattern", "overpriced",
    "the price is too high",
])
def test_criticism_fires(text: str) -> None:
    assert is_product_criticism(text)
    assert one(text)["criticism"] == 1.0
    assert one(text)["negative"] == 0.0


@pytest.mark.parametrize("text", [
    "this is useless", "the delivery was terrible", "your service is awful", "you're useless",
    "my refund is late and this is ridiculous", "show me jackets", "I love this colour",
])
def test_criticism_stays_quiet(text: str) -> None:
    assert not is_product_criticism(text)
    assert one(text)["criticism"] == 0.0


# ------------------------------------------------------------------------------------------ rephrase, repeats


def test_rephrased_request_is_a_repeat(embed: Embed) -> None:
    got = rows(embedded(embed, ["do you ship to ireland", "can you send orders to ireland?",
                                "do you deliver to ireland?"]))
    assert got[0]["rephrase"] == 0.0
    assert got[1]["rephrase"] >= REPEAT_SIMILARITY
    assert got[2]["rephrase"] >= REPEAT_SIMILARITY
    assert [r["repeats"] for r in got] == [0.0, 1.0, 2.0]


def test_identical_request_has_similarity_one(embed: Embed) -> None:
    got = rows(embedded(embed, ["where is my order", "where is my order"]))
    assert got[1]["rephrase"] == pytest.approx(1.0, abs=1e-3)
    assert got[1]["repeats"] == 1.0


def test_unrelated_follow_up_is_not_a_repeat(embed: Embed) -> None:
    got = rows(embedded(embed, ["do you ship to ireland", "what colours does the blue jacket come in",
                                "is there a size M in the black hoodie"]))
    for row in got[1:]:
        assert 0.0 <= row["rephrase"] < REPEAT_SIMILARITY
    assert [r["repeats"] for r in got] == [0.0, 0.0, 0.0]


def test_short_answers_never_repeat(embed: Embed) -> None:
    texts = ["where is my order", "NW-100234", "NW-100234", "yes", "yes", "M", "M", "order NW-100234",
             "order NW-100234"]
    got = rows(embedded(embed, texts))
    assert [r["rephrase"] for r in got] == [0.0] * len(texts)
    assert [r["repeats"] for r in got] == [0.0] * len(texts)


def test_no_embeddings_no_repeats() -> None:
    got = rows([Exchange("do you ship to ireland"), Exchange("do you ship to ireland"),
                Exchange("can you send orders to ireland?")])
    assert [r["rephrase"] for r in got] == [0.0, 0.0, 0.0]
    assert [r["repeats"] for r in got] == [0.0, 0.0, 0.0]


def test_repeats_are_capped_at_four(embed: Embed) -> None:
    got = rows(embedded(embed, ["where is my order"] * 7))
    assert [r["repeats"] for r in got] == [0.0, 1.0, 2.0, 3.0, 4.0, 4.0, 4.0]


# ---------------------------------------------------------------- bot_failed, bot_failures, bot_repeated(s)


@pytest.mark.parametrize("reply", [
    FAILURE, "Sorry, I didn't catch that.", "That's outside what I can help with.",
    "Hmm, I'm not sure what you mean.", "I couldn't find an order with that number.",
    "There are no products matching 'xyz'.", "That order number isn't valid.",
    "Sorry, I can only help with shopping questions.", "Something went wrong, please try again.",
    "That doesn't look like an order number.",
    "I'm not able to help with that.",
    "That doesn't seem to be a valid email address.",
])
def test_bot_failure_fires(reply: str) -> None:
    assert is_bot_failure(reply)
    assert one("do you ship to ireland", (reply,))["bot_failed"] == 1.0


@pytest.mark.parametrize("reply", [
    GOOD_ANSWER, "Here are 3 jackets in black:", "Your order NW-100234 was shipped on Monday.",
    "Added the blue hoodie (M) to your cart.", "Anything else I can help with?", "Sure, which size would you like?",
    "I can help with that! What's your order number?", "No problem! Here are some sneakers.",
    "I'm sorry, I've refunded the delivery fee.",
])
def test_bot_failure_stays_quiet(reply: str) -> None:
    assert not is_bot_failure(reply)
    assert one("do you ship to ireland", (reply,))["bot_failed"] == 0.0


def test_bot_failures_count_up() -> None:
    got = rows([
        Exchange("do you ship to ireland"),
        Exchange("do you deliver to ireland", ("Hmm, I'm not sure what you mean.",)),
        Exchange("NW-100234", (GOOD_ANSWER, "What's your order number?")),
        Exchange("NW 100234", ("Here is your order.", "That order number isn't valid.")),
        Exchange("forget it", ("Here are 3 jackets in black:",)),
    ])
    assert [r["bot_failed"] for r in got] == [0.0, 1.0, 0.0, 1.0, 0.0]
    assert [r["bot_failures"] for r in got] == [0.0, 1.0, 1.0, 2.0, 2.0]


def test_same_substantive_reply_twice_is_a_bot_repeat() -> None:
    status = "Your order NW-100234 was shipped on Monday and should arrive by Thursday."
    got = rows([
        Exchange("where is my order"),
        Exchange("it still hasn't arrived", (status,)),
        Exchange("it's Friday and nothing came", (status,)),
        Exchange("hello?", (FAILURE,)),
        Exchange("?", (FAILURE,)),
    ])
    assert [r["bot_repeated"] for r in got] == [0.0, 0.0, 1.0, 0.0, 1.0]
    assert [r["bot_repeats"] for r in got] == [0.0, 0.0, 1.0, 1.0, 2.0]
    assert got[4]["bot_failed"] == 1.0


def test_repeated_pleasantries_are_not_bot_repeats() -> None:
    got = rows([
        Exchange("where is my order"),
        Exchange("thanks", ("It arrives Thursday.", "Anything else I can help with?")),
        Exchange("how do I return a jacket", ("You're welcome!", "Anything else I can help with?")),
        Exchange("great, thanks", ("You can return items within 30 days.", "Anything else I can help with?")),
        Exchange("that's all", ("You're welcome!",)),
    ])
    assert [r["bot_repeated"] for r in got] == [0.0] * 5
    assert [r["bot_repeats"] for r in got] == [0.0] * 5
    assert not same_reply("Anything else I can help with?", "Anything else I can help with?")
    assert not same_reply("You're welcome!", "You're welcome!")
    assert not same_reply("Here are 3 jackets in black:", "You can return items within 30 days.")
    assert same_reply(GOOD_ANSWER, GOOD_ANSWER)


# ------------------------------------------------------------------------------------------ complaint(s)


@pytest.mark.parametrize("text", [
    "that's not what I asked", "thats not what i asked", "it's not what I wanted", "I already told you my order number",
    "I already gave you my order number", "you are not listening", "you don't understand", "that doesn't help at all",
    "you didn't answer my question", "you keep sending me the same link", "this is the third time I'm asking",
    "how many times do I have to say it", "this bot is useless", "did you even read my message",
    "you're not listening",
    "you're not helping",
    "you aren't listening",
    "I've told you three times now",
])
def test_complaint_fires(text: str) -> None:
    assert one(text)["complaint"] == 1.0


@pytest.mark.parametrize("text", [
    "that helps, thanks", "it's exactly what I wanted", "that's just what I need, thanks",
    "I already have an account with you", "I just ordered a jacket, when does it ship?",
    "can you show me the same jacket in black?", "what's the return policy?", "is it still available?",
    "that's what I wanted, thanks",
    "this is what I want, add it to the cart",
    "is this what I ordered last time?",
    "this bot is great",
    "this chat is really handy, thanks",
    "when will it be back in stock again?",
    "can I order the same one again?",
])
def test_complaint_stays_quiet(text: str) -> None:
    assert one(text)["complaint"] == 0.0


def test_complaints_count_up_to_four() -> None:
    texts = ["where is my order", "that's not what I asked", "I already told you my order number", "ok",
             "that doesn't help at all", "you didn't answer my question", "how many times do I have to say it"]
    got = rows([Exchange(t) for t in texts])
    assert [r["complaint"] for r in got] == [0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    assert [r["complaints"] for r in got] == [0.0, 1.0, 2.0, 2.0, 3.0, 4.0, 4.0]


# ------------------------------------------------------------------------------------------ correction(s)


@pytest.mark.parametrize("text", [
    "no, I said size M", "I meant the navy one", "wrong colour", "that's the wrong order", "no, the other one",
    "nope", "not that one, the black one", "no, I asked for size 10", "that's not right",
    "incorrect, it's NW-100234",
])
def test_correction_fires(text: str) -> None:
    assert one(text)["correction"] == 1.0


@pytest.mark.parametrize("text", [
    "no thanks", "no, thank you", "no worries", "no problem", "nothing else, thanks", "that's the right one",
    "I'd like to return a jacket", "is this the right size for me?", "none of these, thanks",
    "not yet, I'll decide later",
    "no, that's all",
    "no, I'm good",
    "no that's everything, thanks",
    "not right now, thanks",
    "I wanted to ask about delivery times",
    "I wanted to buy a gift for my mum",
])
def test_correction_stays_quiet(text: str) -> None:
    assert one(text)["correction"] == 0.0


def test_corrections_count_up_to_four() -> None:
    texts = ["I want the hoodie in size M", "no, I said size M", "no thanks", "I meant the navy one", "wrong colour",
             "that's not right", "nope"]
    got = rows([Exchange(t) for t in texts])
    assert [r["correction"] for r in got] == [0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    assert [r["corrections"] for r in got] == [0.0, 1.0, 1.0, 2.0, 3.0, 4.0, 4.0]


# ------------------------------------------------------------------------------------------------ give_up


@pytest.mark.parametrize("text", [
    "forget it", "never mind", "nevermind, I'll shop elsewhere", "nvm", "whatever", "I give up",
    "I'll just call the store", "forget it, I'll buy it on amazon", "i'm done with this", "don't bother",
    "forget I asked",
])
def test_give_up_fires(text: str) -> None:
    assert one(text)["give_up"] == 1.0


@pytest.mark.parametrize("text", [
    "don't forget the gift note", "whatever is cheapest is fine", "whatever you recommend", "can I call you?",
    "thanks, bye!", "is there a point system?", "what's the point of the loyalty card?",
    "I'm done shopping, can I check out?",
    "I'm done choosing, add it to my cart",
    "I'm out of town next week, can it arrive before?",
    "please don't forget it's a gift",
    "I'll email you a photo of the damage",
    "I'll call my sister and ask her size",
])
def test_give_up_stays_quiet(text: str) -> None:
    assert one(text)["give_up"] == 0.0


# -------------------------------------------------------------------------------------------------- human


@pytest.mark.parametrize("text", [
    "can I talk to a real person", "agent please", "human", "let me speak to someone",
    "connect me to customer service", "I want to speak to a manager", "transfer me to an agent",
    "speak to a human please", "is there a human I can talk to?", "real person please", "can someone call me back?",
])
def test_human_fires(text: str) -> None:
    assert asks_for_person(text)
    assert one(text)["human"] == 1.0


@pytest.mark.parametrize("text", [
    "what's your delivery agent's name", "do you sell human hair wigs?", "who is the delivery person?",
    "let me talk to my wife first", "let me know when it ships", "do you have a staff discount?",
    "the courier left it with someone", "text me when it ships",
    "call me when it's back in stock",
    "I need to get someone a birthday present",
    "I want to get somebody a gift card",
    "can I get some staff picks?",
])
def test_human_stays_quiet(text: str) -> None:
    assert not asks_for_person(text)
    assert one(text)["human"] == 0.0


# ------------------------------------------------------------------------------- words, length_ratio, shrinking


def test_messages_getting_shorter() -> None:
    texts = ["I ordered a blue hoodie in size M last week and it has not arrived yet", "can you check where it is",
             "NW-100234"]
    lengths = [len(t.split()) for t in texts]
    got = rows([Exchange(t) for t in texts])
    assert [r["words"] for r in got] == [pytest.approx(math.log1p(n), abs=1e-4) for n in lengths]
    assert got[0]["length_ratio"] == 1.0
    assert got[1]["length_ratio"] == pytest.approx(lengths[1] / lengths[0], abs=1e-4)
    assert got[2]["length_ratio"] == pytest.approx(lengths[2] / ((lengths[0] + lengths[1]) / 2), abs=1e-4)
    assert [r["shrinking"] for r in got] == [0.0, 0.0, 1.0]


def test_terse_shopper_from_the_start_is_not_shrinking() -> None:
    got = rows([Exchange(t) for t in ["M", "yes", "ok", "NW-100234"]])
    assert [r["shrinking"] for r in got] == [0.0] * 4
    assert [r["length_ratio"] for r in got] == [1.0] * 4
    assert [r["words"] for r in got] == [pytest.approx(math.log(2), abs=1e-4)] * 4


def test_shrinking_needs_two_drops_in_a_row() -> None:
    got = rows([Exchange(t) for t in ["where is my order from last week", "can you check it",
                                      "can you check it", "NW-100234"]])
    assert [r["shrinking"] for r in got] == [0.0, 0.0, 0.0, 0.0]


def test_length_ratio_is_capped() -> None:
    got = rows([Exchange("yes"), Exchange("ok"),
                Exchange("could you please tell me when my order NW-100234 will arrive")])
    assert got[2]["length_ratio"] == 3.0


# -------------------------------------------------------------------- repeat/correction after a bot failure


def test_repeat_right_after_failure(embed: Embed) -> None:
    texts = ["do you ship to ireland", "can you send orders to ireland?"]
    after_failure = rows(embedded(embed, texts, [(), (FAILURE,)]))[1]
    after_answer = rows(embedded(embed, texts, [(), (GOOD_ANSWER,)]))[1]
    assert after_failure["rephrase"] >= REPEAT_SIMILARITY
    assert after_failure["repeat_after_failure"] == 1.0
    assert after_answer["rephrase"] >= REPEAT_SIMILARITY  # still a repeat...
    assert after_answer["repeat_after_failure"] == 0.0  # ...but not after a failure


def test_repeat_after_the_same_bot_reply_again(embed: Embed) -> None:
    got = rows(embedded(embed, ["do you ship to ireland", "how long does that take",
                                "can you send orders to ireland?"], [(), (GOOD_ANSWER,), (GOOD_ANSWER,)]))
    assert got[2]["bot_failed"] == 0.0
    assert got[2]["bot_repeated"] == 1.0
    assert got[2]["repeat_after_failure"] == 1.0


def test_unrelated_message_after_failure_is_no_repeat_after_failure(embed: Embed) -> None:
    got = rows(embedded(embed, ["do you ship to ireland", "what colours does the blue jacket come in"],
                        [(), (FAILURE,)]))
    assert got[1]["bot_failed"] == 1.0
    assert got[1]["repeat_after_failure"] == 0.0


def test_correction_right_after_failure() -> None:
    first = Exchange("I want the hoodie in size M")
    after_failure = rows([first, Exchange("no, I said size M", ("I couldn't find that size.",))])[1]
    after_answer = rows([first, Exchange("no, I said size M", ("Here is the hoodie in size L.",))])[1]
    assert after_failure["correction"] == after_answer["correction"] == 1.0
    assert after_failure["correction_after_failure"] == 1.0
    assert after_answer["correction_after_failure"] == 0.0
    plain = rows([first, Exchange("thanks, that's the one", ("I couldn't find that size.",))])[1]
    assert plain["correction_after_failure"] == 0.0


# ---------------------------------------------------------------------------------------------- payloads


def test_payloads_are_neutral(embed: Embed) -> None:
    payloads = [PAYLOAD, PAYLOAD, '/inform{"text": "no, forget it, this is useless, you are not listening"}',
                '/human{"reason": "talk to a real person"}']
    assert all(is_payload(p) for p in payloads)
    got = rows(embedded(embed, payloads))
    quiet = ("sentiment", "negative", "mood", "anger", "criticism", "rephrase", "repeats", "complaint",
             "complaints", "correction", "corrections", "give_up", "human", "words", "shrinking",
             "repeat_after_failure", "correction_after_failure")
    for row in got:
        assert {name: row[name] for name in quiet} == dict.fromkeys(quiet, 0.0)
        assert row["length_ratio"] == 1.0


def test_payloads_do_not_count_as_messages_for_length() -> None:
    long = "I ordered a blue hoodie in size M last week and it has not arrived yet"
    got = rows([Exchange(long), Exchange(PAYLOAD), Exchange("can you check where it is")])
    assert got[2]["length_ratio"] == pytest.approx(6 / len(long.split()), abs=1e-4)
    assert got[2]["shrinking"] == 0.0


# ------------------------------------------------------------------------------------ rows see only the past


def test_each_row_depends_only_on_earlier_messages(embed: Embed) -> None:
    texts = ["do you ship to ireland", "can you send orders to ireland?", PAYLOAD, "no, I said ireland",
             "this is useless, you're not helping at all", "hate the colour", "NW-100234", "forget it",
             "can I talk to a real person"]
    bot_before = [(), (FAILURE,), (GOOD_ANSWER,), ("Added it to your cart.",), (GOOD_ANSWER,), (FAILURE,),
                  ("Here are 3 jackets in black:",), ("That order number isn't valid.",), (FAILURE,)]
    exchanges = embedded(embed, texts, bot_before)
    full = signal_rows(exchanges)
    assert len(full) == len(exchanges)
    for i in range(len(exchanges)):
        assert signal_rows(exchanges[: i + 1])[-1] == full[i], f"row {i} ({texts[i]!r})"
    # the dialogue exercises the signals, so the comparison is not between rows of zeros
    last = full[-1].as_dict()
    assert last["repeats"] >= 1 and last["bot_failures"] >= 3 and last["human"] == 1.0
    assert last["complaints"] >= 1 and last["corrections"] >= 1
