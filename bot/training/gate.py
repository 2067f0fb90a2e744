"""The evaluation gate: a new model may not make the assistant worse on the held-out test set.

A model is refused when its macro-F1 is more than ``max_macro_f1_drop`` below the active model's, or when
an intent of the test set loses more than ``max_intent_f1_drop`` of F1 *and* the messages behind that
drop are more than retraining noise: an exact two-sided sign test (McNemar) over the test messages whose
correctness for that intent changed, at ``intent_alpha``. Retraining DIET on a little more data changes
about 5% of the test predictions in both directions (measured: README), and with 26 test messages per
intent one or two of them move an intent's F1 by more than 5 points, so a rule on the point estimate
alone refuses almost every retraining. ``intent_alpha = 1`` restores that literal rule. Drops that pass
as noise are still listed (``notes``). A lead can activate a refused model with a reason (an override).

The same held-out sets as ``python -m bot bench nlu`` count (``metrics["held_out"]``, where both models were
scored on them): the informal set's macro-F1 may fall by at most ``max_macro_f1_drop`` like the test set's, the
off-topic recall by at most ``max_rate_drop``, and the in-scope false rejection may rise by at most
``max_rate_drop``.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb
from typing import Any

EPSILON = 1e-9  # scores are rounded to 4 decimals: a drop exactly at the limit passes


@dataclass(frozen=True)
class GateLimits:
    max_macro_f1_drop: float = 0.005
    max_intent_f1_drop: float = 0.05
    intent_alpha: float = 0.05
    max_rate_drop: float = 0.02  # off-topic recall down / in-scope false rejection up, as a share of messages


def sign_test(worse: int, better: int) -> float:
    """Two-sided exact p-value that ``worse`` vs ``better`` changed messages differ only by chance."""
    n = worse + better
    if n == 0:
        return 1.0
    tail = sum(comb(n, k) for k in range(min(worse, better) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def intent_changes(intent: str, changed: list[dict[str, Any]]) -> tuple[int, int]:
    """(worse, better): changed test messages that the new model gets wrong / right *for this intent*
    (a message of the intent, or one predicted as it), out of those whose prediction changed."""
    worse = better = 0
    for c in changed:
        was_wrong = (c["expected"] == intent) != (c["before"] == intent)
        is_wrong = (c["expected"] == intent) != (c["after"] == intent)
        worse += int(is_wrong and not was_wrong)
        better += int(was_wrong and not is_wrong)
    return worse, better


def _points(value: float) -> str:
    return f"{value * 100:.1f}"


def check(new: dict[str, Any], baseline: dict[str, Any] | None, limits: GateLimits,
          changed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """``{"passed": bool, "reasons": [...], "notes": [...]}`` for metrics dicts as
    :class:`bot.training.evaluation.Scores` writes them; ``changed`` as
    :func:`bot.training.evaluation.changed_predictions` lists them (None: no noise test)."""
    if not baseline:
        return {"passed": True, "reasons": [],
                "notes": ["No active model was evaluated on this test set: nothing to compare."]}
    reasons: list[str] = []
    notes: list[str] = []
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
        if fall <= limits.max_intent_f1_drop + EPSILON:
            continue
        text = (f"F1 of intent '{intent}' falls {_points(fall)} points ({_points(before['f1'])} → "
                f"{_points(after['f1'])}); at most {_points(limits.max_intent_f1_drop)} is allowed")
        if changed is None or limits.intent_alpha >= 1:
            reasons.append(text + ".")
            continue
        worse, better = intent_changes(intent, changed)
        p = sign_test(worse, better)
        detail = f"{worse} test message{'s' if worse != 1 else ''} worse, {better} better, sign test p = {p:.2f}"
        if p <= limits.intent_alpha:
            reasons.append(f"{text} ({detail}).")
        else:
            notes.append(f"{text}, but {detail}: within retraining noise (alpha {limits.intent_alpha:g}).")
    reasons += held_out_reasons(new.get("held_out") or {}, baseline.get("held_out") or {}, limits)
    return {"passed": not reasons, "reasons": reasons, "notes": notes}


def held_out_reasons(new: dict[str, Any], old: dict[str, Any], limits: GateLimits) -> list[str]:
    """Refusals from the informal and off-topic sets (only what both models were scored on)."""
    reasons: list[str] = []
    if "nlu_informal" in new and "nlu_informal" in old:
        before, after = float(old["nlu_informal"]["macro_f1"]), float(new["nlu_informal"]["macro_f1"])
        if before - after > limits.max_macro_f1_drop + EPSILON:
            reasons.append(f"Macro-F1 on the informal set falls {_points(before - after)} points ({_points(before)} "
                           f"→ {_points(after)}); at most {_points(limits.max_macro_f1_drop)} is allowed.")
    if "offtopic_recall" in new and "offtopic_recall" in old:
        before, after = float(old["offtopic_recall"]), float(new["offtopic_recall"])
        if before - after > limits.max_rate_drop + EPSILON:
            reasons.append(f"Off-topic recall falls from {_points(before)}% to {_points(after)}%; at most "
                           f"{_points(limits.max_rate_drop)} points is allowed.")
    if "in_scope_false_rejection" in new and "in_scope_false_rejection" in old:
        before, after = float(old["in_scope_false_rejection"]), float(new["in_scope_false_rejection"])
        if after - before > limits.max_rate_drop + EPSILON:
            reasons.append(f"In-scope messages rejected as out of scope or not understood rise from "
                           f"{_points(before)}% to {_points(after)}%; at most {_points(limits.max_rate_drop)} "
                           f"points more is allowed.")
    return reasons
