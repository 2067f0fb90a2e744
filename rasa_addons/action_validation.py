"""Validation of action-server responses with one compiled schema validator.

Rasa 3.6 checks every response of the action server with ``jsonschema.validate(response, schema)``
(``RemoteAction._validate_action_result``). ``jsonschema.validate`` first checks the *schema* against
its metaschema, every call; with jsonschema 4.17 that is the costly part. Under load it was 46% of the
Rasa server's CPU (py-spy, 30 shoppers; see docs/benchmarks.md, "Load"). :func:`install` replaces the method with one
that validates against a validator built once: the same schema, the same draft, the same
``ValidationError`` with Rasa's message.
"""

from __future__ import annotations

from typing import Any

_MARK = "_shop_compiled_validator"


def install() -> bool:
    """Patches ``RemoteAction._validate_action_result`` (once). Returns False where Rasa is not installed."""
    try:
        from jsonschema import exceptions, validators
        from rasa.core.actions.action import RemoteAction
        from rasa.shared.constants import DOCS_BASE_URL
    except ImportError:
        return False
    if getattr(RemoteAction._validate_action_result, _MARK, False):
        return True
    schema = RemoteAction.action_response_format_spec()
    cls = validators.validator_for(schema)
    cls.check_schema(schema)  # once, instead of on every response
    validator = cls(schema)

    def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
        error = exceptions.best_match(validator.iter_errors(result))
        if error is not None:
            error.message += (
                ". Failed to validate Action server response from API, make sure your response from the Action "
                f"endpoint is valid. For more information about the format visit {DOCS_BASE_URL}/custom-actions")
            raise error
        return True

    setattr(_validate_action_result, _MARK, True)
    RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]
    return True
