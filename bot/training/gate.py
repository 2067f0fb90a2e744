"""The evaluation gate: a new model may not make the assistant worse on the held-out test set.

A model is blocked when its macro-F1 is more than ``max_macro_f1_drop`` below the active model's, or when
an intent of the test set loses more than ``max_intent_f1_drop`` of F1 *and* the messages behind that
drop are more than retraining noise: an exact two-sided sign test (McNemar) over the test messages whose
correctness for that intent changed, at ``intent_alpha``. Retraining DIET on a little more data changes
about 5% of the test predictions in both directions (measured: docs/benchmarks.md), and with 26 test messages per
intent one or two of them move an intent's F1 by more than 5 points, so a rule on the point estimate
alone refuses almost every retraining. ``intent_alpha = 1`` restores that literal rule. Drops that pass
as noise are still listed (``notes``, and status ``within_noise`` in ``intents``). A lead can activate a
blocked model with a reason (an override).

The same held-out sets as ``python -m bot bench nlu`` count (``metrics["held_out"]``, where both models were
scored on them): the informal set's macro-F1 may fall by at most ``max_macro_f1_drop`` like the test set's, the
off-topic recall by at most ``max_rate_drop``, and the in-scope false rejection may rise by at most
``max_rate_drop``.

:func:`check` returns one decision object, and everything shown about a model's gate comes from it: the
verdict (``passed``, ``verdict``, ``summary``), the rules applied with their numbers (``rules``), one entry per
rule that compared something (``checks``), and one entry per intent (``intents``: ``pass``, ``within_noise`` or
``fail``). ``passed`` is computed from those entries, so the verdict and the rows cannot disagree.

Saved conversation tests (``bot.convtests``), when the training job played them against the new model, are one
more rule: every test passes. Any failed test blocks the model (with or without a baseline), with one entry per
test in ``conversations`` (``pass`` or ``fail``, the turn where it diverged and what differed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from math import comb
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.convtests.spec import TestOutcome

EPSILON = 1e-9  # scores are rounded to 4 decimals: a drop exactly at the limit passes

PASS, NOISE, FAIL = "pass", "within_noise", "fail"
PASSED, BLOCKED, FIRST, NOTHING = "passed", "blocked", "first_model", "nothing_to_compare"
FIRST_MODEL = "First model, nothing to compare."
NO_BASELINE = "No active model was evaluated on this test set: nothing to compare."
NO_CONVERSATIONS = "Saved conversation tests: there are no saved conversation tests, so none was played."


@dataclass(frozen=True)
class GateLimits:
    max_macro_f1_drop: float = 0.005
    max_intent_f1_drop: float = 0.05
    intent_alpha: float = 0.05
    max_rate_drop: float = 0.02  # off-topic recall down / in-scope false rejection up, as a share of messages

    @classmethod
    def from_settings(cls, settings: Settings) -> GateLimits:
        return cls(settings.gate_max_macro_f1_drop, settings.gate_max_intent_f1_drop, settings.gate_intent_alpha)

    def as_dict(self) -> dict[str, float]:
        return {"max_macro_f1_drop": self.max_macro_f1_drop, "max_intent_f1_drop": self.max_intent_f1_drop,
                "intent_alpha": self.intent_alpha, "max_rate_drop": self.max_rate_drop}


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


def rules(limits: GateLimits, *, noise_test: bool = True) -> list[str]:
    """Every rule the gate applies, with its numbers, as the console and the registry state them."""
    intent_limit = _points(limits.max_intent_f1_drop)
    if noise_test and limits.intent_alpha < 1:
        intent = (f"An intent whose F1 falls more than {intent_limit} points blocks the model only when the drop "
                  f"is more than retraining noise: an exact two-sided sign test over the test messages whose "
                  f"prediction for that intent changed (worse against better) gives p ≤ {limits.intent_alpha:g}; "
                  f"with p > {limits.intent_alpha:g} the drop is shown as within noise and does not block.")
    else:
        why = ("SHOP_GATE_INTENT_ALPHA is 1" if limits.intent_alpha >= 1 else
               "the changed predictions were not available")
        intent = f"No intent's F1 may fall by more than {intent_limit} points (no noise test: {why})."
    return [
        f"Macro-F1 on the test set may fall by at most {_points(limits.max_macro_f1_drop)} points.",
        intent,
        f"Macro-F1 on the informal set may fall by at most {_points(limits.max_macro_f1_drop)} points, "
        f"off-topic recall by at most {_points(limits.max_rate_drop)} points, and in-scope false rejection may "
        f"rise by at most {_points(limits.max_rate_drop)} points (where both models were scored on these sets).",
    ]


def conversation_rule(outcomes: list[TestOutcome] | None) -> list[str]:
    """The conversation tests' rule line: none when they were not played (skipped), else the rule or the note
    that there are no tests."""
    if outcomes is None:
        return []
    if not outcomes:
        return [NO_CONVERSATIONS]
    count = f"{len(outcomes)} saved conversation test{'s' if len(outcomes) != 1 else ''}"
    return [f"Every saved conversation test passes: the {count} played against the new model in a scratch Rasa "
            f"with the action server must each do at every turn what the test says (intent, actions, reply kind)."]


def conversation_entries(outcomes: list[TestOutcome] | None) -> list[dict[str, Any]]:
    """One status per saved conversation test: ``pass``, or ``fail`` with the turn where it diverged."""
    entries: list[dict[str, Any]] = []
    for outcome in outcomes or []:
        entry: dict[str, Any] = {"name": outcome.name, "status": PASS if outcome.passed else FAIL,
                                 "diverged_at": outcome.diverged_at, "differences": [], "text": ""}
        if not outcome.passed:
            turn = (outcome.diverged_at or 0) + 1
            result = next((t for t in outcome.turns if t.index == outcome.diverged_at), None)
            if outcome.error:
                entry["text"] = f"Saved conversation test '{outcome.name}' could not be played: {outcome.error}"
            else:
                entry["differences"] = list(result.differences) if result else []
                said = f' ("{result.user}")' if result else ""
                entry["text"] = (f"Saved conversation test '{outcome.name}' fails at turn {turn}{said}: "
                                 + "; ".join(entry["differences"] or ["it diverged"]) + ".")
        entries.append(entry)
    return entries


def conversation_check(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not entries:
        return []
    failed = sum(e["status"] == FAIL for e in entries)
    return [{"rule": "conversations", "passed": len(entries) - failed, "total": len(entries),
             "status": FAIL if failed else PASS,
             "text": f"{failed} of {len(entries)} saved conversation tests fail." if failed else ""}]


def first_model() -> dict[str, Any]:
    """The decision for a version with nothing before it (version 1, which `make model` trained)."""
    return {"passed": True, "verdict": FIRST, "summary": FIRST_MODEL, "reasons": [], "notes": [], "rules": [],
            "checks": [], "intents": {}}


def _summary(verdict: str, failures: int, noisy: list[str], limits: GateLimits | None) -> str:
    if verdict == BLOCKED:
        checks = f"{failures} check{'s' if failures != 1 else ''} of the gate fail{'s' if failures == 1 else ''}"
        return f"Blocked: {checks} for this model (listed below); a lead can still activate it with a reason."
    if noisy:
        over = f"more than {_points(limits.max_intent_f1_drop)} points" if limits else "more than the limit"
        alpha = f"sign test p > {limits.intent_alpha:g}" if limits else "sign test"
        return (f"Passed: no check fails. {len(noisy)} intent{'s' if len(noisy) != 1 else ''} "
                f"({', '.join(noisy)}) fall{'s' if len(noisy) == 1 else ''} {over}, but within retraining noise "
                f"({alpha}).")
    return "Passed: no check fails."


def check(new: dict[str, Any], baseline: dict[str, Any] | None, limits: GateLimits,
          changed: list[dict[str, Any]] | None = None,
          conversations: list[TestOutcome] | None = None) -> dict[str, Any]:
    """The gate's decision for metrics dicts as :class:`bot.training.evaluation.Scores` writes them; ``changed``
    as :func:`bot.training.evaluation.changed_predictions` lists them (None: no noise test).

    ``{"passed", "verdict", "summary", "reasons", "notes", "rules", "checks", "intents", "limits"}``: ``reasons``
    are the texts of the failing checks and intents, ``notes`` those of the intents within noise.
    ``conversations``: the saved conversation tests played against the new model (None: not played)."""
    noise_test = changed is not None and limits.intent_alpha < 1
    played = conversation_entries(conversations)
    conversation_reasons = [e["text"] for e in played if e["status"] == FAIL]
    all_rules = rules(limits, noise_test=noise_test) + conversation_rule(conversations)
    if not baseline:
        verdict = BLOCKED if conversation_reasons else NOTHING
        summary = _summary(BLOCKED, 1, [], limits) if conversation_reasons else NO_BASELINE
        return {"passed": not conversation_reasons, "verdict": verdict, "summary": summary,
                "reasons": conversation_reasons, "notes": [NO_BASELINE], "rules": all_rules,
                "checks": conversation_check(played), "intents": {}, "conversations": played,
                "limits": limits.as_dict()}
    checks: list[dict[str, Any]] = []
    before, after = float(baseline["macro_f1"]), float(new["macro_f1"])
    drop = before - after
    checks.append(_check("macro_f1", before, after, drop, limits.max_macro_f1_drop,
                         f"Macro-F1 falls {_points(drop)} points ({_points(before)} → {_points(after)}); at most "
                         f"{_points(limits.max_macro_f1_drop)} is allowed."))
    intents: dict[str, dict[str, Any]] = {}
    reasons: list[str] = []
    notes: list[str] = []
    new_intents = new.get("per_intent", {})
    for intent, old in sorted(baseline.get("per_intent", {}).items()):
        now = new_intents.get(intent)
        if now is None or not old.get("support"):
            continue
        fall = float(old["f1"]) - float(now["f1"])
        entry: dict[str, Any] = {"before": float(old["f1"]), "after": float(now["f1"]), "drop": round(fall, 4),
                                 "status": PASS, "text": ""}
        intents[intent] = entry
        if fall <= limits.max_intent_f1_drop + EPSILON:
            continue
        text = (f"F1 of intent '{intent}' falls {_points(fall)} points ({_points(old['f1'])} → "
                f"{_points(now['f1'])}); at most {_points(limits.max_intent_f1_drop)} is allowed")
        if not noise_test:
            entry.update(status=FAIL, text=text + ".")
        else:
            worse, better = intent_changes(intent, changed or [])
            p = sign_test(worse, better)
            detail = (f"{worse} test message{'s' if worse != 1 else ''} worse, {better} better, "
                      f"sign test p = {p:.2f}")
            entry.update(worse=worse, better=better, p=round(p, 4))
            if p <= limits.intent_alpha:
                entry.update(status=FAIL, text=f"{text} ({detail} ≤ {limits.intent_alpha:g}).")
            else:
                entry.update(status=NOISE, text=f"{text}, but {detail}: within retraining noise (alpha "
                                                f"{limits.intent_alpha:g}).")
        (reasons if entry["status"] == FAIL else notes).append(entry["text"])
    checks += held_out_checks(new.get("held_out") or {}, baseline.get("held_out") or {}, limits)
    reasons = [c["text"] for c in checks[:1] if c["status"] == FAIL] + reasons + \
        [c["text"] for c in checks[1:] if c["status"] == FAIL] + conversation_reasons
    checks += conversation_check(played)
    failed = [c for c in checks if c["status"] == FAIL] + [e for e in intents.values() if e["status"] == FAIL]
    verdict = BLOCKED if failed else PASSED
    noisy = [name for name, e in intents.items() if e["status"] == NOISE]
    return {"passed": not failed, "verdict": verdict, "summary": _summary(verdict, len(failed), noisy, limits),
            "reasons": reasons, "notes": notes, "rules": all_rules, "checks": checks, "intents": intents,
            "conversations": played, "limits": limits.as_dict()}


def _check(rule: str, before: float, after: float, worsening: float, limit: float, text: str) -> dict[str, Any]:
    failed = worsening > limit + EPSILON
    return {"rule": rule, "before": before, "after": after, "limit": limit, "status": FAIL if failed else PASS,
            "text": text if failed else ""}


def held_out_checks(new: dict[str, Any], old: dict[str, Any], limits: GateLimits) -> list[dict[str, Any]]:
    """The informal and off-topic sets' checks (only what both models were scored on)."""
    checks: list[dict[str, Any]] = []
    if "nlu_informal" in new and "nlu_informal" in old:
        before, after = float(old["nlu_informal"]["macro_f1"]), float(new["nlu_informal"]["macro_f1"])
        checks.append(_check("informal_macro_f1", before, after, before - after, limits.max_macro_f1_drop,
                             f"Macro-F1 on the informal set falls {_points(before - after)} points ({_points(before)} "
                             f"→ {_points(after)}); at most {_points(limits.max_macro_f1_drop)} is allowed."))
    if "offtopic_recall" in new and "offtopic_recall" in old:
        before, after = float(old["offtopic_recall"]), float(new["offtopic_recall"])
        checks.append(_check("offtopic_recall", before, after, before - after, limits.max_rate_drop,
                             f"Off-topic recall falls from {_points(before)}% to {_points(after)}%; at most "
                             f"{_points(limits.max_rate_drop)} points is allowed."))
    if "in_scope_false_rejection" in new and "in_scope_false_rejection" in old:
        before, after = float(old["in_scope_false_rejection"]), float(new["in_scope_false_rejection"])
        checks.append(_check("in_scope_false_rejection", before, after, after - before, limits.max_rate_drop,
                             f"In-scope messages rejected as out of scope or not understood rise from "
                             f"{_points(before)}% to {_points(after)}%; at most {_points(limits.max_rate_drop)} "
                             f"points more is allowed."))
    return checks


def held_out_reasons(new: dict[str, Any], old: dict[str, Any], limits: GateLimits) -> list[str]:
    """Refusals from the informal and off-topic sets (only what both models were scored on)."""
    return [c["text"] for c in held_out_checks(new, old, limits) if c["status"] == FAIL]


_INTENT_TEXT = re.compile(r"^F1 of intent '(.+?)' falls")


def stored(decision: dict[str, Any] | None) -> dict[str, Any]:
    """A decision as the registry stored it, in the current shape. Decisions stored before ``verdict`` and
    ``intents`` existed held only ``passed``, ``reasons`` and ``notes``: their intents are read back from the
    texts this module wrote (a reason: the intent fails; a note: within noise); other intents have no entry."""
    if not decision or "passed" not in decision:
        return dict(decision or {})
    if "verdict" in decision:
        return dict(decision)
    reasons, notes = list(decision.get("reasons") or []), list(decision.get("notes") or [])
    intents: dict[str, dict[str, Any]] = {}
    for status, texts in ((FAIL, reasons), (NOISE, notes)):
        for text in texts:
            found = _INTENT_TEXT.match(text)
            if found:
                intents[found.group(1)] = {"status": status, "text": text}
    checks = [{"rule": "macro_f1", "status": FAIL, "text": r} for r in reasons if r.startswith("Macro-F1 falls")]
    if notes and notes[0] == NO_BASELINE:
        verdict, summary = NOTHING, NO_BASELINE
    else:
        verdict = PASSED if decision["passed"] else BLOCKED
        noisy = [name for name, e in intents.items() if e["status"] == NOISE]
        summary = _summary(verdict, len(reasons), noisy, None)
    return {**decision, "verdict": verdict, "summary": summary, "rules": [], "checks": checks, "intents": intents}
