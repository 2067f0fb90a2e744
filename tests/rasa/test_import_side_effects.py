"""Importing our packages changes nothing process-wide: no patched Rasa, no start method, no log filters, no
environment variables, no production check. The entry points do that (actions/server.py ``set_up``,
rasa_addons/serve.py ``set_up``, our Rasa components when Rasa builds them). Each check runs in a fresh
interpreter of the venv that really imports the package."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from bot.config import Settings
from rasa_addons import settings as rasa_settings
from tests.conftest import ROOT

APP_PYTHON = ROOT / ".venv" / "bin" / "python"
RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"

# What the process looks like before and after the imports; printed as one JSON line.
_STATE = """
import json, logging, multiprocessing, os, sys
def state():
    extra = {}
    if "rasa.core.actions.action" in sys.modules:
        from rasa.core.actions.action import RemoteAction
        extra["remote_action_patched"] = bool(getattr(RemoteAction._validate_action_result,
                                                      "_shop_compiled_validator", False))
    if "sanic" in sys.modules:
        from sanic import Sanic
        extra["sanic_start_method_set"] = getattr(Sanic, "START_METHOD_SET", None)
    return {"start_method": multiprocessing.get_start_method(allow_none=True),
            "record_factory": logging.getLogRecordFactory().__module__,
            "root_filters": len(logging.getLogger().filters), "environ": dict(os.environ), **extra}
"""


def _run(python: Path, imports: list[str], first: tuple[str, ...] = (),
         env: dict[str, str] | None = None) -> dict[str, object]:
    """State before and after importing ``imports`` (``first``: the third-party modules whose state to watch,
    imported before the first look)."""
    if not python.exists():
        pytest.fail(f"{python} is missing: run `make setup`")
    script = _STATE + "\n".join([
        *(f"import {name}" for name in first),
        "before = state()",
        *(f"import {name}" for name in imports),
        "after = state()",
        "heavy = sorted(m for m in ('torch', 'pydantic', 'sqlalchemy', 'tensorflow') if m in sys.modules)",
        "print(json.dumps({'before': before, 'after': after, 'heavy': heavy}))",
    ])
    base = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([str(python), "-c", script], cwd=ROOT, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_importing_the_actions_changes_nothing_and_checks_nothing() -> None:
    """Even with development settings under SHOP_ENV=production: refusing to start is the server's job."""
    modules = sorted(p.stem for p in (ROOT / "actions").glob("*.py") if p.stem != "__init__")
    result = _run(APP_PYTHON, ["actions", *(f"actions.{m}" for m in modules)], first=("sanic",),
                  env={"SHOP_ENV": "production", "SHOP_DEMO_MODE": "true"})
    assert result["before"]["sanic_start_method_set"] is False  # type: ignore[index]
    assert result["after"] == result["before"]


def test_importing_rasa_addons_changes_nothing() -> None:
    modules = sorted(p.stem for p in (ROOT / "rasa_addons").glob("*.py") if p.stem != "__init__")
    result = _run(RASA_PYTHON, ["rasa_addons", *(f"rasa_addons.{m}" for m in modules)],
                  first=("rasa.core.actions.action", "sanic"))
    assert result["before"]["remote_action_patched"] is False  # type: ignore[index]
    assert result["after"] == result["before"]


def test_the_rasa_action_server_set_ups_do_change_the_process() -> None:
    """The other side of the two tests above: the set-up functions are what does it (so those tests can fail)."""
    script = ("import logging; from rasa.core.actions.action import RemoteAction; import rasa_addons.serve as s; "
              "s.set_up(); print(RemoteAction._validate_action_result._shop_compiled_validator, "
              "logging.getLogRecordFactory().__module__)")
    done = subprocess.run([str(RASA_PYTHON), "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["True", "bot.privacy.redact"]
    script = ("import multiprocessing, logging; from sanic import Sanic; import actions.server as s; s.set_up(); "
              "print(multiprocessing.get_start_method(allow_none=True), Sanic.START_METHOD_SET, "
              "logging.getLogRecordFactory().__module__)")
    done = subprocess.run([str(APP_PYTHON), "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["spawn", "True", "bot.privacy.redact"]


def test_sentiment_and_its_triggers_import_in_the_rasa_venv_without_heavy_libraries() -> None:
    result = _run(RASA_PYTHON, ["bot.sentiment", "bot.escalation.sentiment_triggers", "bot.escalation.episode"])
    assert result["heavy"] == []
    assert result["after"] == result["before"]


def test_importing_the_sentence_encoder_sets_no_environment() -> None:
    result = _run(APP_PYTHON, ["bot.search.embeddings"])
    assert result["after"] == result["before"]  # HF_HUB_OFFLINE and the like: only when the encoder loads


def test_the_rasa_side_settings_read_what_settings_reads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """rasa_addons/settings.py mirrors bot.config.Settings (the Rasa venv has no pydantic)."""
    for name in (rasa_settings.RASA_TOKEN_ENV, rasa_settings.POLICY_FILE_ENV):
        monkeypatch.delenv(name, raising=False)
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert rasa_settings.policy_file() == defaults.policy_file
    assert rasa_settings.rasa_token() == defaults.rasa_token == ""
    monkeypatch.setenv(rasa_settings.POLICY_FILE_ENV, str(tmp_path / "policy.yml"))
    monkeypatch.setenv(rasa_settings.RASA_TOKEN_ENV, " tok-en ")
    given = Settings(_env_file=None)  # type: ignore[call-arg]
    assert rasa_settings.policy_file() == given.policy_file == tmp_path / "policy.yml"
    assert rasa_settings.rasa_token() == "tok-en" and given.rasa_token.strip() == "tok-en"
