"""Rasa's own checks: data validation and the test stories, on the trained model."""

from __future__ import annotations

import os
import subprocess

import pytest

from bot.training import rasa_model
from tests.conftest import ROOT

pytestmark = pytest.mark.rasa


def _rasa(*args: str, tmp_path) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "ACTION_ENDPOINT_URL": "http://127.0.0.1:1/webhook",
           "TRACKER_DIALECT": "sqlite", "TRACKER_DB": str(tmp_path / "tracker.sqlite3")}
    return subprocess.run([str(rasa_model.rasa_executable()), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)


def test_training_data_validates_without_warnings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = _rasa("data", "validate", "--fail-on-warnings", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_every_intent_has_enough_varied_examples() -> None:
    import yaml

    counts: dict[str, int] = {}
    for path in (ROOT / "data" / "nlu").glob("*.yml"):
        for block in yaml.safe_load(path.read_text())["nlu"]:
            if "intent" in block:
                examples = [e for e in block["examples"].splitlines() if e.strip().startswith("- ")]
                counts[block["intent"]] = counts.get(block["intent"], 0) + len(set(examples))
    domain = yaml.safe_load((ROOT / "domain.yml").read_text())
    assert set(domain["intents"]) <= set(counts)
    thin = {k: v for k, v in counts.items() if v < 30}
    assert not thin, thin


def test_story_main_paths_pass(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert rasa_model.is_current(), "the Rasa model is stale: run `make model`"
    out = tmp_path / "results"
    result = _rasa("test", "core", "--model", str(rasa_model.model_path()), "--stories", "tests/test_stories.yml",
                   "--fail-on-prediction-errors", "--out", str(out), "--no-plot", tmp_path=tmp_path)
    failed = (out / "failed_test_stories.yml")
    detail = failed.read_text()[-4000:] if failed.exists() else result.stdout[-3000:] + result.stderr[-3000:]
    assert result.returncode == 0, detail


def test_no_slot_a_shopper_can_fill_decides_access_or_confirms() -> None:
    """Identity comes from verified metadata only; the proof and the pending yes/no are set by actions."""
    import yaml

    domain = yaml.safe_load((ROOT / "domain.yml").read_text())
    slots = domain["slots"]
    assert not {"customer_id", "customer", "verified", "authenticated"} & set(slots)
    for name in ("order_contact", "pending_confirmation"):
        assert [m["type"] for m in slots[name]["mappings"]] == ["custom"], name
    # every form pins the order first, and each intent that starts one has exactly one rule for it
    rules = yaml.safe_load((ROOT / "data" / "rules" / "orders.yml").read_text())["rules"]
    handoff = yaml.safe_load((ROOT / "data" / "rules" / "handoff.yml").read_text())["rules"]
    assert domain["forms"]["followup_form"]["required_slots"] == ["followup_email"]  # an address, no access
    assert [m["type"] for m in slots["followup_email"]["mappings"]] == ["custom"]
    assert [r for r in handoff if r["steps"][-2:] == [{"action": "followup_form"}, {"active_loop": "followup_form"}]]
    for form, spec in domain["forms"].items():
        if form == "followup_form":
            continue
        assert spec["required_slots"][:2] == ["order_number", "order_contact"], form
        starts = [r for r in rules if r["steps"][-2:] == [{"action": form}, {"active_loop": form}]]
        assert starts, form


def test_every_response_an_action_names_is_in_the_domain() -> None:
    """An action that names a missing response sends nothing at all: Rasa drops it without an error."""
    import re

    import yaml

    domain = yaml.safe_load((ROOT / "domain.yml").read_text())
    named = {m for path in (ROOT / "actions").glob("*.py")
             for m in re.findall(r"\"(utter_\w+)\"", path.read_text())}
    assert named, "no action names a response: the pattern is stale"
    assert named <= set(domain["responses"]), named - set(domain["responses"])


def test_every_slot_an_action_sets_is_in_the_domain() -> None:
    """Rasa drops a SlotSet for an undeclared slot with an error in its log: the value is lost (a preference
    waiting for consent was, so "yes" saved nothing)."""
    import re

    import yaml

    domain = yaml.safe_load((ROOT / "domain.yml").read_text())
    named = {m for path in (ROOT / "actions").glob("*.py")
             for m in re.findall(r"SlotSet\(\s*\"(\w+)\"", path.read_text())}
    assert {"pending_preference", "pending_confirmation", "shown_products"} <= named, "the pattern is stale"
    builtin = {"requested_slot"}
    assert named - builtin <= set(domain["slots"]), named - builtin - set(domain["slots"])
