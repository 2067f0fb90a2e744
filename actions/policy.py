"""Answers to policy questions (shipping, payment, returns, accounts) from the shop-policy file."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import services


def say_policy_answer(dispatcher: CollectingDispatcher, topic: str) -> None:
    """Sends the policy file's answer for ``topic`` with its buttons."""
    answer = services.policy().answer(topic)
    dispatcher.utter_message(text=answer.text, buttons=[{"title": b.title, "payload": b.payload}
                                                        for b in answer.buttons])


class ActionAnswerPolicy(Action):
    """Answers the latest intent with the policy-file answer of the same name."""

    def name(self) -> str:
        return "action_answer_policy"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        intent = (tracker.latest_message.get("intent") or {}).get("name") or ""
        policy = services.policy()
        if intent not in policy.topics:
            dispatcher.utter_message(response="utter_default")
            return []
        say_policy_answer(dispatcher, intent)
        return []
