"""Dialogue policy: predicts ``action_escalate`` when ``bot.escalation.decision`` says a person should take over:
an explicit request, or the escalation model's score at the threshold for the shop's target false-escalation
rate (the policy file's ``escalation`` section, re-read when it changes; a VIP's bar is lower).

Evaluated right after every shopper message, whatever the bot is doing. Rasa 3.6 mechanics it relies on
(checked in rasa/core/policies/ensemble.py, rule_policy.py and core/processor.py):

- In the middle of a form, RulePolicy predicts the form's action as a *no-user* prediction (its loop "happy
  path"), and ``DefaultPolicyPredictionEnsemble`` only compares predictions of that kind when there is one:
  priority alone would not win. This policy's prediction is therefore also marked ``is_no_user_prediction``;
  among those, (confidence, priority) decides, and 1.0 at a priority above RulePolicy's (4) wins.
  ``action_escalate`` then deactivates the form.
- It predicts nothing (all zeros) otherwise, and never twice in one bot episode: not once ``action_escalate``
  ran since the latest ``resume`` (or ``restart``); while the conversation is paused Rasa logs the message
  (with its NLU parse and sentiment) but runs no prediction at all.
- Rasa trains every policy of the config (``is_trainable`` does not matter for policies), so ``train`` only
  checks the domain and persists a small marker. The escalation model (``bot/escalation/escalation_model.json``)
  and the policy file (``SHOP_POLICY_FILE``, rasa_addons/settings.py) are read when they change: neither needs
  a retraining or a restart.
- The signals compare a message with the shopper's earlier ones through the sentence embeddings that the NLU
  featurizer stores in each message's parse data.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from rasa.core.constants import RULE_POLICY_PRIORITY
from rasa.core.policies.policy import Policy, PolicyPrediction
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker

from bot.escalation.decision import decide_events, policy_settings
from bot.escalation.episode import ESCALATE_ACTION
from bot.escalation.model import ModelError
from rasa_addons import settings
from rasa_addons.action_validation import install as install_action_validation

logger = logging.getLogger(__name__)


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT], is_trainable=False)
class EscalationPolicy(Policy):
    """Hands the conversation to a person: an explicit request, or a dissatisfied shopper as the escalation model
    sees it (repeats, bot failures, complaints, giving up, mood; see ``bot.escalation``)."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"priority": RULE_POLICY_PRIORITY + 1, "action": ESCALATE_ACTION}

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        featurizer: Any | None = None,
    ) -> None:
        super().__init__(config, model_storage, resource, execution_context, featurizer)
        # Rasa calls the action server only where it predicts actions, that is where it built this policy (create
        # or load, both through here), also when Rasa's own command line started it (docker-compose, rasa test):
        # install the compiled validator of action-server responses here rather than at import.
        install_action_validation()
        self.action = str(config.get("action", ESCALATE_ACTION))
        self._warned = False

    def train(self, training_trackers: list[TrackerWithCachedStates], domain: Domain, **kwargs: Any) -> Resource:
        if self.action not in domain.action_names_or_texts:
            logger.warning(f"EscalationPolicy: '{self.action}' is not an action in the domain; it will never fire.")
        with self._model_storage.write_to(self._resource) as path:
            (path / "escalation_policy.json").write_text(json.dumps({"action": self.action}))
        return self._resource

    def predict_action_probabilities(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        rule_only_data: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> PolicyPrediction:
        probabilities = self._default_predictions(domain)
        if tracker.latest_action_name != ACTION_LISTEN_NAME or tracker.latest_message is None:
            return self._prediction(probabilities)
        if self.action not in domain.action_names_or_texts:
            if not self._warned:
                logger.warning(f"EscalationPolicy: '{self.action}' is not in the domain; not escalating.")
                self._warned = True
            return self._prediction(probabilities)
        try:
            decision = decide_events((event.as_dict() for event in tracker.events),
                                     settings=policy_settings(settings.policy_file()))
        except ModelError as exc:  # a broken model file must not stop the conversation
            logger.error(f"EscalationPolicy: {exc}")
            return self._prediction(probabilities)
        if decision is None:
            return self._prediction(probabilities)
        logger.debug(f"EscalationPolicy: {decision.reason} ({decision.detail})")
        probabilities[domain.index_for_action(self.action)] = 1.0
        return self._prediction(
            probabilities,
            is_no_user_prediction=True,
            action_metadata={"escalation": {"reason": decision.reason, "detail": decision.detail,
                                            "mood": decision.mood, "score": decision.score,
                                            "signals": list(decision.signals)}},
        )
