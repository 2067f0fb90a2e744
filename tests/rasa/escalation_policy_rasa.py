"""Runs in the Rasa venv (``.venv-rasa/bin/python tests/rasa/escalation_policy_rasa.py WORKDIR``, cwd = project root),
started by tests/rasa/test_escalation_policy.py: trains a small real Rasa model (our sentiment component, our
sentence-embedding featurizer and EscalationPolicy next to RulePolicy, a form that asks for an order number),
drives Rasa's real message processor through each escalation scenario and prints one JSON object with what
happened. The policy decides with the project's escalation model (bot/escalation/escalation_model.json).

Only the tiny NLU/domain is made up; the graph, the ensemble, the form and the processor are Rasa's own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

DOMAIN = """
version: "3.1"
intents: [greet, track_order, cancel_order, contact_human_agent, out_of_scope, inform, thank]
entities: [order_number]
slots:
  order_number:
    type: text
    influence_conversation: false
    mappings:
      - type: from_entity
        entity: order_number
        conditions:
          - active_loop: track_order_form
forms:
  track_order_form:
    required_slots: [order_number]
responses:
  utter_greet: [{text: "Hi! How can I help?"}]
  utter_ask_order_number: [{text: "What's the order number?"}]
  utter_order_status: [{text: "Your order is on its way."}]
  utter_cancel: [{text: "Which order should I cancel?"}]
  utter_out_of_scope: [{text: "Sorry, I can't help with that."}]
  utter_welcome: [{text: "You're welcome!"}]
actions: [action_escalate]
"""

NLU = """
version: "3.1"
nlu:
- intent: greet
  examples: |
    - hi
    - hello
    - hey there
    - good morning
    - hi, I have a question
- intent: track_order
  examples: |
    - where is my order
    - track my order
    - has my order shipped
    - where's my package
    - when will my parcel arrive
    - what's the status of my order
- intent: cancel_order
  examples: |
    - cancel my order
    - I want to cancel my order
    - please cancel the order I placed
    - can I cancel an order
    - stop my order
- intent: contact_human_agent
  examples: |
    - I want to talk to a human
    - let me speak to a person
    - real person please
    - connect me with an agent
    - get me a live agent
- intent: out_of_scope
  examples: |
    - what's the weather like
    - who won the game last night
    - can you do my homework
    - tell me about the stock market
    - what is the meaning of life
    - book me a flight to paris
- intent: inform
  examples: |
    - it's [NW-100234](order_number)
    - the order number is [NW-100871](order_number)
    - [NW-200117](order_number)
    - order [NW-311002](order_number)
- intent: thank
  examples: |
    - thanks
    - thank you
    - great, thanks
"""

RULES = """
version: "3.1"
rules:
- rule: greet
  steps: [{intent: greet}, {action: utter_greet}]
- rule: thank
  steps: [{intent: thank}, {action: utter_welcome}]
- rule: cancel
  steps: [{intent: cancel_order}, {action: utter_cancel}]
- rule: out of scope
  steps: [{intent: out_of_scope}, {action: utter_out_of_scope}]
- rule: start the form
  steps: [{intent: track_order}, {action: track_order_form}, {active_loop: track_order_form}]
- rule: submit the form
  condition: [{active_loop: track_order_form}]
  steps:
  - action: track_order_form
  - active_loop: null
  - slot_was_set: [{requested_slot: null}]
  - action: utter_order_status
"""

CONFIG = """
recipe: default.v1
language: en
assistant_id: escalation-policy-check
pipeline:
  - name: WhitespaceTokenizer
  - name: rasa_addons.sentiment.ShopSentimentAnalyzer
  - name: rasa_addons.sentence_embeddings.SentenceEmbeddingFeaturizer
  - name: CountVectorsFeaturizer
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 4
  - name: DIETClassifier
    epochs: 60
    random_seed: 7
  - name: FallbackClassifier
    threshold: 0.4
policies:
  - name: rasa_addons.escalation.EscalationPolicy
  - name: RulePolicy
"""

RESULT_PREFIX = "ESCALATION-POLICY-RESULT "
ANGRY = "third time I ask: where is my order?? this is ridiculous, it still hasn't arrived"


def train(workdir: Path) -> str:
    from rasa.model_training import train as rasa_train

    (workdir / "domain.yml").write_text(DOMAIN)
    (workdir / "config.yml").write_text(CONFIG)
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    (data / "nlu.yml").write_text(NLU)
    (data / "rules.yml").write_text(RULES)
    result = rasa_train(domain=str(workdir / "domain.yml"), config=str(workdir / "config.yml"),
                        training_files=[str(data)], output=str(workdir / "models"), fixed_model_name="tiny")
    if result.code != 0 or not result.model:
        raise SystemExit(f"training failed with code {result.code}")
    return str(result.model)


async def scenarios(model: str) -> dict[str, Any]:
    from rasa.core.agent import Agent
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
    from rasa.shared.core.events import (
        ActionExecuted,
        BotUttered,
        ConversationPaused,
        ConversationResumed,
        UserUttered,
    )

    agent = Agent.load(model)
    processor = agent.processor
    assert processor is not None

    async def say(sender: str, text: str, metadata: dict[str, Any] | None = None) -> list[str]:
        """The whole turn, as a channel would send it; the bot's texts."""
        out = CollectingOutputChannel()
        await agent.handle_message(UserMessage(text, out, sender, metadata=metadata))
        return [m.get("text") or "" for m in out.messages]

    async def predict_after(sender: str, text: str) -> dict[str, Any]:
        """Logs the message (NLU + sentiment, as Rasa does) and asks what the ensemble would do next."""
        tracker = await processor.log_message(UserMessage(text, None, sender), should_save_tracker=True)
        # what predict_next_with_tracker (POST /conversations/{id}/predict) reports, plus the prediction's kind
        prediction = processor._predict_next_with_tracker(tracker)
        best = max(range(len(prediction.probabilities)), key=prediction.probabilities.__getitem__)
        latest = tracker.latest_message
        return {"action": processor.domain.action_names_or_texts[best], "policy": prediction.policy_name,
                "confidence": prediction.max_confidence, "no_user": prediction.is_no_user_prediction,
                "metadata": prediction.action_metadata,
                "active_loop": tracker.active_loop_name, "intent": latest.intent.get("name"),
                "sentiment": latest.parse_data.get("sentiment"),
                "has_embedding": bool(latest.parse_data.get("embedding"))}

    async def append(sender: str, *events: Any) -> None:
        tracker = await processor.fetch_tracker_with_initial_session(sender)
        for event in events:
            tracker.update(event)
        await processor.save_tracker(tracker)

    result: dict[str, Any] = {}
    # 1. An angry message while the form waits for the order number; and the neutral answer for comparison.
    result["form_ask"] = await say("mid-form", "where is my order")
    result["mid_form_angry"] = await predict_after("mid-form", ANGRY)
    result["form_ask_2"] = await say("calm-form", "where is my order")
    result["mid_form_calm"] = await predict_after("calm-form", "it's NW-100234")
    # 2. A neutral request is not anger.
    result["neutral_cancel"] = await predict_after("neutral", "cancel my order")
    # 3. Asking for a person.
    result["explicit"] = await predict_after("explicit", "I want to talk to a human")
    # 4. A rephrase loop: the same request three times, the bot failing each time (no negative words).
    def bot_says(text: str) -> list[Any]:  # what a bot turn leaves in the tracker
        return [ActionExecuted("utter_out_of_scope"), BotUttered(text), ActionExecuted("action_listen")]

    result["loop_1"] = await predict_after("loop", "can you gift wrap my order")
    await append("loop", *bot_says("Sorry, I can't help with that."))
    result["loop_2"] = await predict_after("loop", "is gift wrapping available for my order")
    await append("loop", *bot_says("Sorry, I can't help with that."))
    result["loop_3"] = await predict_after("loop", "do you offer gift wrap on orders")
    # 5. Product criticism steers the search; it is not frustration with the service.
    await say("critic", "hi")
    await append("critic", *bot_says("I found 3: Alpine Shell Jacket ($79), Storm Parka ($99), Trail Fleece ($49)"))
    result["criticism_1"] = await predict_after("critic", "these look cheap, show me something nicer")
    await append("critic", *bot_says("I found 3: Summit Down Jacket ($189), Nordic Wool Coat ($210)"))
    result["criticism_2"] = await predict_after("critic", "hmm, not great, these look a bit cheap")
    # 6. The same mildly annoyed message from a VIP (a lower bar) and from a regular shopper.
    mild = "my refund still hasn't come through"
    result["vip_greet"] = await say("vip", "hi", metadata={"segment": "vip"})
    result["vip_mild"] = await predict_after("vip", mild)
    await say("regular", "hi", metadata={"segment": "regular"})
    result["regular_mild"] = await predict_after("regular", mild)
    # 6. Never twice: once action_escalate ran, no more; after the agent hands back (resume), again.
    await append("mid-form", ActionExecuted("action_escalate"), ActionExecuted("action_listen"))
    result["after_escalation"] = await predict_after("mid-form", ANGRY)
    await append("mid-form", ConversationResumed(), ActionExecuted("action_listen"))
    result["after_resume"] = await predict_after("mid-form", ANGRY + "!!! still no refund either")
    # 7. Paused: the message is logged with its NLU and sentiment, and nothing is predicted.
    await say("paused", "hi")
    await append("paused", ConversationPaused())
    before = len((await processor.fetch_tracker_with_initial_session("paused")).events)
    replies = await say("paused", ANGRY)
    tracker = await processor.fetch_tracker_with_initial_session("paused")
    new = list(tracker.events)[before:]
    result["paused"] = {
        "replies": replies,
        "user_events": [e.parse_data.get("sentiment") for e in new if isinstance(e, UserUttered)],
        "actions": [e.action_name for e in new if isinstance(e, ActionExecuted)],
    }
    return result


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.path.insert(1, str(Path(__file__).resolve().parents[2]))  # as `rasa` does with its cwd
    workdir = Path(argv[0])
    workdir.mkdir(parents=True, exist_ok=True)
    model = train(workdir)
    result = asyncio.run(scenarios(model))
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)  # Rasa logs to stdout too
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
