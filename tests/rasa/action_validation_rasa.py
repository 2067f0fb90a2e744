"""Run with the Rasa venv (tests/rasa/test_action_validation.py does): the compiled validator of action-server
responses (rasa_addons/action_validation.py) accepts and refuses exactly what ``jsonschema.validate`` does."""

import json
import sys
import tempfile
import time
from pathlib import Path

import jsonschema
from rasa.core.actions.action import RemoteAction
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.utils.endpoints import EndpointConfig

import rasa_addons.escalation
import rasa_addons.sentiment  # imported as the pipeline does: installs nothing


def build_policy_as_rasa_does() -> None:
    """``rasa run`` and ``rasa test`` build the escalation policy of config.yml; that installs the validator."""
    with tempfile.TemporaryDirectory() as folder:
        policy = rasa_addons.escalation.EscalationPolicy
        policy.create(policy.get_default_config(), LocalModelStorage(Path(folder)), Resource("escalation"),
                      ExecutionContext(GraphSchema({}), "test"))

RESPONSES = [
    {"events": [{"event": "slot", "name": "a", "value": 1}], "responses": [{"text": "hi"}]},
    {"events": [], "responses": []},
    {},
    {"events": [{"event": "followup", "name": "action_x"}], "responses": [{"custom": {"type": "product_cards"}}]},
    {"events": "not a list"},
    {"events": [{"name": "no event key"}]},
    {"events": [{"event": 5}]},
    {"responses": "text"},
    {"events": [{"event": "slot", "name": "a", "value": {"nested": [1, 2]}, "timestamp": 1.5}]},
]


def outcome(check) -> str:  # type: ignore[no-untyped-def]
    try:
        check()
        return "ok"
    except jsonschema.ValidationError as error:
        return error.message.split(". Failed to validate")[0]


def main() -> None:
    action = RemoteAction("action_test", EndpointConfig("http://127.0.0.1:9"))
    schema = RemoteAction.action_response_format_spec()
    patched_at_import = getattr(RemoteAction._validate_action_result, "_shop_compiled_validator", False)
    build_policy_as_rasa_does()
    patched = getattr(RemoteAction._validate_action_result, "_shop_compiled_validator", False)
    ours = [outcome(lambda r=r: action._validate_action_result(r)) for r in RESPONSES]
    reference = [outcome(lambda r=r: jsonschema.validate(r, schema)) for r in RESPONSES]
    try:
        action._validate_action_result({"events": "x"})
        message = ""
    except jsonschema.ValidationError as error:
        message = error.message
    started = time.perf_counter()
    for _ in range(200):
        action._validate_action_result(RESPONSES[0])
    ours_ms = (time.perf_counter() - started) / 200 * 1000
    started = time.perf_counter()
    for _ in range(20):
        jsonschema.validate(RESPONSES[0], schema)
    reference_ms = (time.perf_counter() - started) / 20 * 1000
    json.dump({"patched_at_import": patched_at_import, "patched": patched, "ours": ours, "reference": reference,
               "message": message, "ours_ms": ours_ms, "reference_ms": reference_ms}, sys.stdout)


if __name__ == "__main__":
    main()
