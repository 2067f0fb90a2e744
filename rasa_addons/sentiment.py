"""NLU component: the VADER + shop-lexicon sentiment of every shopper message, in its parse data.

``parse_data["sentiment"] = {"compound": float, "lexicon": [shop phrases]}`` is stored with each user
event in Rasa's tracker store (what the escalation policy and analytics read). Not trainable; it runs in
the prediction graph only.
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.privacy.redact import install_log_redaction
from bot.sentiment import score

SENTIMENT = "sentiment"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class ShopSentimentAnalyzer(GraphComponent):
    """Adds ``sentiment`` (``bot.sentiment.score``) to each message's parse data."""

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ShopSentimentAnalyzer:
        # Rasa's own log lines: emails, phones, cards and IBANs redacted too. Here rather than at import: every
        # Rasa process that runs our pipeline builds this component, also when Rasa's own command line started it.
        install_log_redaction()
        return cls()

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            result = score(message.get(TEXT) or "")
            message.set(SENTIMENT, {"compound": result.compound, "lexicon": list(result.lexicon)},
                        add_to_output=True)
        return messages
