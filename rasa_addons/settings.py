"""The settings the Rasa process reads, in one place.

The Rasa venv (Python 3.10) has no pydantic, so it cannot import ``bot.config``; this module reads the same
environment variables, with the same defaults, as the ``bot.config.Settings`` fields named below (checked by
tests/rasa/test_import_side_effects.py). Nothing else under ``rasa_addons`` reads ``os.environ`` for a setting.
"""

from __future__ import annotations

import os
from pathlib import Path

from bot import PROJECT_ROOT

RASA_TOKEN_ENV = "SHOP_RASA_TOKEN"  # Settings.rasa_token
POLICY_FILE_ENV = "SHOP_POLICY_FILE"  # Settings.policy_file
DEFAULT_POLICY_FILE = PROJECT_ROOT / "data" / "shop_policy.yml"


def rasa_token() -> str:
    """The token of Rasa's HTTP API and REST webhook; empty when unset."""
    return os.environ.get(RASA_TOKEN_ENV, "").strip()


def policy_file() -> Path:
    """The shop-policy file, whose ``escalation`` section the escalation policy reads."""
    return Path(os.environ.get(POLICY_FILE_ENV) or DEFAULT_POLICY_FILE)
