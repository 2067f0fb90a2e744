from pathlib import Path

import pytest
import yaml

from bot.knowledge.shop_policy_file import PolicyError, ShopPolicy, get_policy
from tests.conftest import ROOT

# Intents that go through the policy file's knowledge first and have no answer of their own
KNOWLEDGE_FIRST = {"out_of_scope", "nlu_fallback"}


def _rules() -> list[dict]:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "data/rules/rules.yml").read_text())["rules"]  # type: ignore[no-any-return]


def _domain_policy_intents() -> set[str]:
    return {r["steps"][0]["intent"] for r in _rules()
            if "intent" in r["steps"][0] and r["steps"][1].get("action") == "action_answer_policy"}


def test_every_policy_intent_has_an_answer_that_renders() -> None:
    policy = get_policy()
    intents = _domain_policy_intents()
    assert intents, "rules route no intent to the policy action"
    assert intents >= KNOWLEDGE_FIRST, "out of scope and fallback must go through the knowledge base"
    missing = intents - KNOWLEDGE_FIRST - set(policy.topics)
    assert not missing, f"no policy answer for {sorted(missing)}"
    for topic in policy.topics:
        answer = policy.answer(topic)
        assert len(answer.text) > 40, topic
        assert "{{" not in answer.text and "{%" not in answer.text, topic
    policy.check()  # every answer with every kind of country, shipping method and payment method asked


def test_every_entry_has_a_label_questions_and_facts() -> None:
    policy = get_policy()
    seen: dict[str, str] = {}
    for entry in policy.entries:
        assert entry.label and len(entry.label) <= 30, entry.topic
        assert 6 <= len(entry.questions) <= 10, entry.topic
        for question in entry.questions:
            assert question.lower() not in seen, (question, entry.topic, seen.get(question.lower()))
            seen[question.lower()] = entry.topic
        for name in entry.facts:
            policy.fact(name)  # loading already refused a missing one
    for topic in ("international_shipping", "shipping_cost", "unaccepted_payment", "gift_cards", "store_pickup"):
        assert policy.entry(topic) is not None, topic


def test_international_summary_agrees_with_the_zones() -> None:
    """Order estimates and demo orders read price_from, days_min and days_max; the answers read the zones."""
    intl = get_policy().fact("shipping.international")
    zones = intl["zones"]
    assert intl["price_from"] == min(z["price"] for z in zones)
    assert intl["days_min"] == min(z["days_min"] for z in zones)
    assert intl["days_max"] == max(z["days_max"] for z in zones)


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
        assert method["name"][1:] in text  # the list capitalises the first letter
        for name in method.get("includes", []):
            assert name in text
    for method in policy.fact("payment.not_accepted"):
        assert method["name"] in text


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
    with pytest.raises(PolicyError, match="'x': 'questions' must be a list of texts"):
        ShopPolicy({"answers": {"x": {"text": "hi", "questions": "what?"}}})
    with pytest.raises(PolicyError, match=r"'x' lists the fact 'returns\.window_days', which the file does not have"):
        ShopPolicy({"answers": {"x": {"text": "hi", "questions": ["what?"], "facts": ["returns.window_days"]}}})
    with pytest.raises(PolicyError, match="'x' does not render"):
        ShopPolicy({"answers": {"x": {"text": "{{ asked.nothing.there }}"}}}).check()
