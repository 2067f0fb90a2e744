from pathlib import Path

import pytest
import yaml

from bot.policy import PolicyError, ShopPolicy, get_policy
from tests.conftest import ROOT


def _domain_policy_intents() -> set[str]:
    rules = yaml.safe_load((ROOT / "data/rules/rules.yml").read_text())["rules"]
    return {r["steps"][0]["intent"] for r in rules if r["steps"][1].get("action") == "action_answer_policy"}


def test_every_policy_intent_has_an_answer_that_renders() -> None:
    policy = get_policy()
    intents = _domain_policy_intents()
    assert intents, "rules route no intent to the policy action"
    missing = intents - set(policy.topics)
    assert not missing, f"no policy answer for {sorted(missing)}"
    for topic in policy.topics:
        answer = policy.answer(topic)
        assert len(answer.text) > 40, topic
        assert "{{" not in answer.text and "{%" not in answer.text, topic


def test_answers_follow_the_facts(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "data/shop_policy.yml").read_text())
    data["returns"]["window_days"] = 45
    data["shipping"]["methods"][0]["price"] = 3.5
    policy = ShopPolicy(data)
    assert "within 45 days" in policy.answer("check_refund_policy").text
    assert "$3.50" in policy.answer("delivery_options").text
    assert policy.fact("returns.window_days") == 45


def test_payment_answer_lists_every_method() -> None:
    policy = get_policy()
    text = policy.answer("check_payment_methods").text
    for method in policy.fact("payment.methods"):
        assert method in text


def test_bad_policy_files_get_clear_errors(tmp_path: Path) -> None:
    broken = tmp_path / "policy.yml"
    broken.write_text("answers: [unclosed")
    with pytest.raises(PolicyError, match="not valid YAML"):
        ShopPolicy.load(broken)
    with pytest.raises(PolicyError, match="not found"):
        ShopPolicy.load(tmp_path / "missing.yml")
    policy = ShopPolicy({"answers": {"x": "Window: {{ returns.window_days }}"}})
    with pytest.raises(PolicyError, match="'x' does not render"):
        policy.answer("x")
    with pytest.raises(PolicyError, match="no answer"):
        policy.answer("nothing")
