"""Answers to policy questions (shipping, payment, returns, accounts) from the shop-policy file.

``action_answer_policy`` runs for every policy intent and for ``out_of_scope`` and ``nlu_fallback``. The
knowledge base (``bot.knowledge``) chooses from the NLU intent and from the message's meaning: a policy
intent keeps its own answer unless another entry fits clearly better, a weak match gets one clarifying
question with the closest entries as buttons, and a message the NLU did not place is answered from the
policy file only when an entry matches it strongly (so an entry the shop owner just added is found),
else it gets the usual "outside what I can help with" or "please rephrase". The answer gives what was
asked: the named country's rates, the named shipping method's price, whether a payment method is accepted.
"""

from __future__ import annotations

import logging
import multiprocessing
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import services
from actions.context import intent_of
from bot.knowledge.asked import NOTHING_ASKED, Asked
from bot.knowledge.base import KnowledgeBase, get_knowledge_base
from bot.knowledge.requests import clauses, split_requests
from bot.knowledge.shop_policy_file import PolicyError, get_policy

logger = logging.getLogger(__name__)

CLARIFY_RESPONSE = "utter_ask_which_topic"  # domain.yml; the buttons come from the policy file's entries


def knowledge() -> KnowledgeBase:
    return get_knowledge_base()


def say_policy_answer(dispatcher: CollectingDispatcher, topic: str, asked: Asked = NOTHING_ASKED) -> None:
    """Sends the policy file's answer for ``topic`` (the current version of the file) with its buttons."""
    answer = get_policy().answer(topic, asked)
    dispatcher.utter_message(text=answer.text, buttons=[{"title": b.title, "payload": b.payload}
                                                        for b in answer.buttons])


class ActionAnswerPolicy(Action):
    """Answers a policy question, an out-of-scope message or an NLU fallback from the policy file."""

    def name(self) -> str:
        return "action_answer_policy"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        intent = intent_of(tracker)
        text = str(tracker.latest_message.get("text") or "")
        if not text.startswith("/"):
            several = self._several_requests(dispatcher, tracker, domain, text)
            if several is not None:
                return several
        choice = knowledge().choose(text, intent)
        logger.debug("policy answer for intent %s: %s %s (%s)", intent, choice.kind, choice.topic, choice.why)
        if choice.kind == "answer" and choice.topic is not None:
            say_policy_answer(dispatcher, choice.topic, choice.asked)
        elif choice.kind == "clarify":
            # the payload is the entry's first question: pressed, it goes through NLU and retrieval again
            dispatcher.utter_message(response=CLARIFY_RESPONSE, buttons=[
                {"title": m.label, "payload": m.first_question} for m in choice.matches])
        else:
            dispatcher.utter_message(response="utter_out_of_scope" if intent == "out_of_scope" else "utter_default")
        return []

    @staticmethod
    def _several_requests(dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any],
                          text: str) -> list[dict[str, Any]] | None:
        """Answers a message that holds several requests: each policy question (once per topic), then a
        product search for the rest when the rest names products ("do you ship to canada? and i need red
        boots"). None when the message is one request."""
        parts = clauses(text)
        if len(parts) < 2:
            return None
        requests = split_requests(knowledge(), text)
        if requests.side:
            from actions.search import ActionSearchProducts  # the search action imports this module

            query = services.product_search().parse(requests.main, [])
            if not (query.filters.categories or query.filters.brands):
                return None  # the rest is not a product request: answer the message as one question
            for side in requests.side:
                say_policy_answer(dispatcher, str(side.choice.topic), side.choice.asked)
            return ActionSearchProducts().search(dispatcher, tracker, domain, requests.main)
        answered = [knowledge().choose(clause, None) for _, clause in parts]
        topics = list(dict.fromkeys(c.topic for c in answered if c.kind == "answer" and c.topic))
        if len(topics) < 2 or len(topics) < len(parts):
            return None
        for topic in topics:  # "what's your return policy and how long does delivery take"
            choice = next(c for c in answered if c.topic == topic)
            say_policy_answer(dispatcher, topic, choice.asked)
        return []


if multiprocessing.parent_process() is not None:
    # In the action server's worker process: embed the entries' questions before the first shopper asks.
    try:
        knowledge().match("hello")
    except PolicyError as exc:
        logger.error("The policy file does not load; policy answers fail until it is fixed. %s", exc)
