"""The evaluation gate: a new model may not make the assistant worse on the held-out test set.

A model is refused when its macro-F1 is more than ``max_macro_f1_drop`` below the active model's, or when
any intent of the test set loses more than ``max_intent_f1_drop`` of F1. A lead can still activate it
with a reason (an override, recorded in the registry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EPSILON = 1e-9  # scores are rounded to 4 decimals: a drop exactly at the limit passes


@dataclass(frozen=True)
class GateLimits:
    max_macro_f1_drop: float = 0.005
    max_intent_f1_drop: float = 0.05


def _points(value: float) -> str:
    return f"{value * 100:.1f}"


def check(new: dict[str, Any], baseline: dict[str, Any] | None, limits: GateLimits) -> dict[str, Any]:
    """``{"passed": bool, "reasons": [...], "compared_with": "baseline"|None}`` for metrics dicts as
    :class:`bot.training.evaluation.Scores` writes them."""
    if not baseline:
        return {"passed": True, "reasons": ["No active model was evaluated on this test set: nothing to compare."]}
    reasons: list[str] = []
    drop = float(baseline["macro_f1"]) - float(new["macro_f1"])
    if drop > limits.max_macro_f1_drop + EPSILON:
        reasons.append(f"Macro-F1 falls {_points(drop)} points ({_points(baseline['macro_f1'])} → "
                       f"{_points(new['macro_f1'])}); at most {_points(limits.max_macro_f1_drop)} is allowed.")
    new_intents = new.get("per_intent", {})
    for intent, before in sorted(baseline.get("per_intent", {}).items()):
        after = new_intents.get(intent)
        if after is None or not before.get("support"):
            continue
        fall = float(before["f1"]) - float(after["f1"])
        if fall > limits.max_intent_f1_drop + EPSILON:
            reasons.append(f"F1 of intent '{intent}' falls {_points(fall)} points ({_points(before['f1'])} → "
                           f"{_points(after['f1'])}); at most {_points(limits.max_intent_f1_drop)} is allowed.")
    return {"passed": not reasons, "reasons": reasons}
