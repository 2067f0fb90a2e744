"""Dialogue policy: what the bot does after an action that no rule or story continues.

The shop's dialogue is rule-driven: every intent has a rule (``data/rules/``) naming the action(s) it runs,
forms carry themselves, and the stories only chain those steps. What rules alone do not cover is a question
in the middle of a form: the form rejects "what are your shipping options", the question's own rule
answers it, and then RulePolicy has no next step (rules that do not mention a form do not apply while it is
active), so it predicts its core fallback (``action_default_fallback``); the shopper's next message would
not even reach the form, which stays rejected. A learned policy (TEDPolicy) used to fill that gap, at about
a quarter of Rasa's CPU per message under load.

This policy fills it with the answer a person would give, at a confidence above the core fallback threshold
and below the 1.0 of any rule or memorised story, so it decides only when nothing else does, and only after
a bot action (after a shopper message it predicts nothing, so an unknown message still gets the fallback):

- a form is active and the action was not the form: the form runs again. Called after a bot action it does
  not validate; it asks for its requested slot again, and the shopper's answer takes its usual path.
- otherwise ``action_listen``: the turn is over.
"""

from __future__ import annotations

import json
from typing import Any

from rasa.core.constants import DEFAULT_POLICY_PRIORITY
from rasa.core.policies.policy import Policy, PolicyPrediction
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import InvalidConfigException


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT], is_trainable=False)
class EndOfTurnPolicy(Policy):
    """After a bot action that no rule or story continues: the active form again, else ``action_listen``."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        # confidence must beat RulePolicy's core fallback (0.3 in config.yml) and lose to rules (1.0)
        return {"priority": DEFAULT_POLICY_PRIORITY, "confidence": 0.5}

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        featurizer: Any | None = None,
    ) -> None:
        super().__init__(config, model_storage, resource, execution_context, featurizer)
        self.confidence = float(config.get("confidence", 0.5))
        if not 0.0 < self.confidence < 1.0:
            raise InvalidConfigException(
                f"EndOfTurnPolicy: confidence must be between 0 and 1 (exclusive), not {self.confidence}")

    def train(self, training_trackers: list[TrackerWithCachedStates], domain: Domain, **kwargs: Any) -> Resource:
        # nothing to learn; Rasa still trains every policy of the config, and loading needs a resource
        with self._model_storage.write_to(self._resource) as path:
            (path / "end_of_turn_policy.json").write_text(json.dumps({"confidence": self.confidence}))
        return self._resource

    def predict_action_probabilities(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        rule_only_data: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> PolicyPrediction:
        probabilities = self._default_predictions(domain)
        latest = tracker.latest_action_name
        if latest in (None, ACTION_LISTEN_NAME):
            return self._prediction(probabilities)
        form = tracker.active_loop_name
        resume = form is not None and form != latest and form in domain.action_names_or_texts
        probabilities[domain.index_for_action(form if resume else ACTION_LISTEN_NAME)] = self.confidence
        return self._prediction(probabilities)
