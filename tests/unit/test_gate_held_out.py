"""The gate also holds a new model to the informal and off-topic sets that `bench nlu` reports."""

from __future__ import annotations

from bot.training import gate

LIMITS = gate.GateLimits(max_macro_f1_drop=0.005, max_intent_f1_drop=0.05, max_rate_drop=0.02)


def metrics(informal_f1: float, recall: float, rejection: float) -> dict:
    return {"accuracy": 0.95, "macro_f1": 0.95, "per_intent": {},
            "held_out": {"nlu_informal": {"accuracy": informal_f1, "macro_f1": informal_f1, "examples": 1040},
                         "offtopic_recall": recall, "in_scope_false_rejection": rejection}}


def test_same_held_out_scores_pass() -> None:
    verdict = gate.check(metrics(0.95, 0.96, 0.02), metrics(0.95, 0.96, 0.02), LIMITS, [])
    assert verdict["passed"], verdict


def test_informal_macro_f1_drop_refuses() -> None:
    verdict = gate.check(metrics(0.93, 0.96, 0.02), metrics(0.95, 0.96, 0.02), LIMITS, [])
    assert not verdict["passed"]
    assert any("informal set" in r for r in verdict["reasons"])


def test_off_topic_recall_drop_and_rejection_rise_refuse() -> None:
    verdict = gate.check(metrics(0.95, 0.90, 0.05), metrics(0.95, 0.96, 0.02), LIMITS, [])
    assert not verdict["passed"]
    assert any("Off-topic recall falls" in r for r in verdict["reasons"])
    assert any("rejected as out of scope" in r for r in verdict["reasons"])


def test_small_moves_within_the_limit_pass() -> None:
    verdict = gate.check(metrics(0.947, 0.95, 0.035), metrics(0.95, 0.96, 0.02), LIMITS, [])
    assert verdict["passed"], verdict


def test_a_baseline_scored_without_the_held_out_sets_compares_only_the_test_set() -> None:
    old = {"accuracy": 0.95, "macro_f1": 0.95, "per_intent": {}}
    assert gate.check(metrics(0.5, 0.1, 0.9), old, LIMITS, [])["passed"]
