"""Saved conversation tests played against a real Rasa with the trained model and the action server."""

from __future__ import annotations

import httpx
import pytest

from bot.convtests import runner
from bot.convtests.spec import ConversationTest, ExpectedTurn, ReplyKind
from bot.training import rasa_model

pytestmark = pytest.mark.integration

GREET = ExpectedTurn("hi there", intent="greet", actions=("action_greet",), reply=ReplyKind.TEXT)
SWEATERS = ExpectedTurn("show me red sweaters", intent="search_product", actions=("action_search_products",),
                        reply=ReplyKind.PRODUCT_CARDS)


def test_a_conversation_the_model_holds_passes(stack) -> None:  # type: ignore[no-untyped-def]
    outcome = runner.play(ConversationTest("greet then search", (GREET, SWEATERS)), stack.rasa_url,
                          stack.rasa_token)
    assert outcome.passed and outcome.diverged_at is None and not outcome.error, outcome
    assert [t.intent for t in outcome.turns] == ["greet", "search_product"]
    assert outcome.turns[1].actions == ("action_search_products",)  # action_listen and the session start left out
    assert outcome.turns[1].reply == ReplyKind.PRODUCT_CARDS and outcome.turns[0].reply == ReplyKind.TEXT


def test_a_wrong_intent_fails_and_names_both(stack) -> None:  # type: ignore[no-untyped-def]
    wrong = ExpectedTurn("hi there", intent="track_order")
    outcome = runner.play(ConversationTest("wrong intent", (wrong, SWEATERS)), stack.rasa_url, stack.rasa_token)
    assert not outcome.passed and outcome.diverged_at == 0
    assert len(outcome.turns) == 1  # stopped at the first diverging turn
    assert outcome.turns[0].differences == ("intent: expected track_order, got greet",)


def test_a_multi_turn_test_diverges_at_its_second_turn(stack) -> None:  # type: ignore[no-untyped-def]
    second = ExpectedTurn("show me red sweaters", intent="search_product", actions=("utter_default",),
                          reply=ReplyKind.FORM_QUESTION)
    outcome = runner.play(ConversationTest("diverges later", (GREET, second, GREET)), stack.rasa_url,
                          stack.rasa_token)
    assert not outcome.passed and outcome.diverged_at == 1 and len(outcome.turns) == 2
    assert outcome.turns[0].passed and not outcome.turns[1].passed
    assert outcome.turns[1].differences == ("actions: expected [utter_default], got [action_search_products]",
                                            "reply: expected form_question, got product_cards")


def test_a_form_question_is_told_apart(stack) -> None:  # type: ignore[no-untyped-def]
    ask = ExpectedTurn("where is my order", intent="track_order", actions=("track_order_form",),
                       reply=ReplyKind.FORM_QUESTION)
    outcome = runner.play(ConversationTest("track", (ask,)), stack.rasa_url, stack.rasa_token)
    assert outcome.passed, outcome


def test_rasa_unreachable_is_a_failed_outcome_with_the_reason() -> None:
    outcome = runner.play(ConversationTest("nobody home", (GREET,)), f"http://127.0.0.1:{runner.free_port()}",
                          "token")
    assert not outcome.passed and outcome.diverged_at == 0 and "did not answer turn 1" in outcome.error


def test_scratch_rasa_plays_a_test_on_the_trained_model_and_stops(catalog: int) -> None:
    with runner.ScratchRasa(rasa_model.model_path()) as scratch:
        url = scratch.url
        outcome = runner.play(ConversationTest("scratch", (GREET,)), url, scratch.token)
        assert outcome.passed, outcome
        # its own token: the HTTP API refuses a request without it
        assert httpx.get(f"{url}/status", timeout=10).status_code == 401
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/status", timeout=3)  # stopped with the block
    outcomes = runner.run_suite([ConversationTest("missing model", (GREET,))], rasa_model.model_path().with_name(
        "no-such-model.tar.gz"))
    assert not outcomes[0].passed and "no model archive" in outcomes[0].error
