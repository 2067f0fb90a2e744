"""``python -m bot bench escalation``: the escalation policy over labelled dialogues.

Dataset: JSON lines ``{"id", "segment"?, "turns": [{"role": "user"|"bot", "text", "label": "escalate"|"ok"}]}``,
labels on user turns ("escalate": a person should have taken over by this message). The optional ``segment``
is the shopper's CRM segment (VIP segments escalate sooner).

Each dialogue is replayed message by message through ``sentiment_triggers.evaluate``, as the Rasa policy sees it;
the first escalation ends the replay (the bot then pauses). Scores:

- precision: escalations that fired on a turn labelled "escalate" / all escalations;
- recall: such escalations / dialogues with an "escalate" label;
- turns late: for those, user turns between the first labelled turn and the one it fired on (0 = on time);
- early: escalations before the first labelled turn (they count against precision);
- false-escalation rate: dialogues without any "escalate" label in which it fired / such dialogues;
- turn precision/recall: per user turn, "escalated by now" against the turn's label.

Intents: ``--nlu rasa`` parses every user message with the trained Rasa model (one batch in the Rasa venv,
``rasa_addons.parse_batch``), so the intent triggers (explicit request, repeated fallback, order topic) take
part; ``--nlu none`` gives no intents, so only the sentiment triggers apply.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.config import escalation_thresholds
from bot.escalation.dialogues import DatasetError, Dialogue, Parses, load_dialogues
from bot.escalation.sentiment_triggers import EscalationThresholds, evaluate
from bot.nlu.parsing import parse_batch
from bot.sentiment import Turn, score

__all__ = ["DatasetError", "benchmark", "compare_moods", "load_dialogues", "replay", "summarise"]


# --------------------------------------------------------------------------------------------- NLU


def parse_with_rasa(texts: Iterable[str], model: Path, timeout: float = 900.0) -> Parses:
    """Intent and confidence of each distinct text from the trained Rasa model (one subprocess)."""
    parsed = parse_batch(texts, model, timeout)
    return {text: (r["intent"], r["confidence"]) for text, r in parsed.items()}


# --------------------------------------------------------------------------------------------- replay


@dataclass(frozen=True)
class Outcome:
    dialogue: str
    fired_at: int | None  # index among user turns
    reason: str | None
    first_label: int | None
    labels: tuple[str, ...]


def replay(dialogue: Dialogue, thresholds: EscalationThresholds, nlu: Parses | None = None,
           sentiments: dict[str, float] | None = None) -> Outcome:
    turns: list[Turn] = []
    users = dialogue.user_turns
    for i, user in enumerate(users):
        intent, confidence = (nlu or {}).get(user.text, (None, None))
        compound = sentiments[user.text] if sentiments and user.text in sentiments else score(user.text).compound
        turns.append(Turn(user.text, intent, confidence, compound))
        decision = evaluate(turns, dialogue.segment, thresholds)
        if decision is not None:
            return Outcome(dialogue.id, i, decision.reason, dialogue.first_label, tuple(str(u.label) for u in users))
    return Outcome(dialogue.id, None, None, dialogue.first_label, tuple(str(u.label) for u in users))


def summarise(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    fired = [o for o in outcomes if o.fired_at is not None]
    true_pos = [o for o in fired if o.labels[o.fired_at] == "escalate"]  # type: ignore[index]
    positives = [o for o in outcomes if o.first_label is not None]
    negatives = [o for o in outcomes if o.first_label is None]
    late = [o.fired_at - o.first_label for o in true_pos]  # type: ignore[operator]
    early = [o for o in fired if o.first_label is not None and o.fired_at < o.first_label]  # type: ignore[operator]
    precision = len(true_pos) / len(fired) if fired else 0.0
    recall = len(true_pos) / len(positives) if positives else 0.0
    turn_tp = turn_fp = turn_fn = 0
    for o in outcomes:
        for i, label in enumerate(o.labels):
            escalated = o.fired_at is not None and o.fired_at <= i
            turn_tp += escalated and label == "escalate"
            turn_fp += escalated and label != "escalate"
            turn_fn += not escalated and label == "escalate"
    return {
        "dialogues": len(outcomes),
        "turns": sum(len(o.labels) for o in outcomes),
        "labelled_dialogues": len(positives),
        "escalations": len(fired),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
        "turns_late_mean": round(statistics.fmean(late), 3) if late else None,
        "turns_late_median": statistics.median(late) if late else None,
        "on_time": round(late.count(0) / len(late), 4) if late else None,
        "early": len(early),
        "false_escalation_rate": round(sum(o.fired_at is not None for o in negatives) / len(negatives), 4)
        if negatives else None,
        "turn_precision": round(turn_tp / (turn_tp + turn_fp), 4) if turn_tp + turn_fp else 0.0,
        "turn_recall": round(turn_tp / (turn_tp + turn_fn), 4) if turn_tp + turn_fn else 0.0,
        "reasons": dict(sorted(Counter(o.reason for o in fired if o.reason).items())),
    }


def _nlu_for(dialogues: Sequence[Dialogue], nlu: str, model: Path | None) -> Parses | None:
    if nlu == "none":
        return None
    if nlu != "rasa":
        raise ValueError(f"--nlu must be rasa or none, got {nlu!r}")
    from bot.training.rasa_model import model_path

    return parse_with_rasa((t.text for d in dialogues for t in d.user_turns), model or model_path())


def benchmark(dataset: Path, nlu: str = "rasa", thresholds: EscalationThresholds | None = None,
              model: Path | None = None) -> dict[str, Any]:
    dialogues = load_dialogues(dataset)
    thresholds = thresholds or escalation_thresholds()
    parses = _nlu_for(dialogues, nlu, model)
    outcomes = [replay(d, thresholds, parses) for d in dialogues]
    return {"benchmark": "escalation", "dataset": str(dataset), "nlu": nlu, **summarise(outcomes),
            "mood": thresholds.mood, "mood_threshold": thresholds.mood_threshold}


# --------------------------------------------------------------------------------------------- mood functions

MOOD_CANDIDATES: dict[str, dict[str, Any]] = {
    "last": {"mood": "last"},
    "mean": {"mood": "mean"},
    "ewma_0.3": {"mood": "ewma", "mood_alpha": 0.3},
    "ewma_0.5": {"mood": "ewma", "mood_alpha": 0.5},
    "ewma_0.7": {"mood": "ewma", "mood_alpha": 0.7},
    "adaptive": {"mood": "adaptive", "mood_alpha": 0.6, "mood_alpha_recover": 0.3, "mood_alpha_neutral": 0.15},
    "adaptive_fast": {"mood": "adaptive", "mood_alpha": 0.8, "mood_alpha_recover": 0.3, "mood_alpha_neutral": 0.15},
    "leaky_0.3": {"mood": "leaky", "mood_decay": 0.3},
    "leaky_0.5": {"mood": "leaky", "mood_decay": 0.5},
    "leaky_0.7": {"mood": "leaky", "mood_decay": 0.7},
}
MOOD_GRID = tuple(round(-0.10 - 0.02 * i, 2) for i in range(31))  # -0.10 .. -0.70


def _f1(outcomes: Sequence[Outcome]) -> float:
    return float(summarise(outcomes)["f1"])


def compare_moods(dataset: Path, nlu: str = "rasa", model: Path | None = None,
                  base: EscalationThresholds | None = None) -> list[dict[str, Any]]:
    """Each mood function at its best threshold, and with 2-fold cross-validation (the threshold picked on
    the even dialogues is scored on the odd ones and the other way round, so the figure is not tuned on the
    dialogues it scores). ``mood_only`` switches the very-negative-message trigger off to see the mood alone."""
    dialogues = load_dialogues(dataset)
    base = base or escalation_thresholds()
    parses = _nlu_for(dialogues, nlu, model)
    sentiments = {t.text: score(t.text).compound for d in dialogues for t in d.user_turns}
    folds = (dialogues[0::2], dialogues[1::2])
    rows = []
    for mood_only in (False, True):
        for name, params in MOOD_CANDIDATES.items():
            variant = dataclasses.replace(base, **params)
            if mood_only:
                variant = dataclasses.replace(variant, very_negative=-1.0)

            def run(subset: Sequence[Dialogue], threshold: float,
                    variant: EscalationThresholds = variant) -> list[Outcome]:
                t = dataclasses.replace(variant, mood_threshold=threshold)
                return [replay(d, t, parses, sentiments) for d in subset]

            best = max(MOOD_GRID, key=lambda th: (_f1(run(dialogues, th)), th))
            cv: list[Outcome] = []
            chosen = []
            for train, test in (folds, folds[::-1]):
                def on_train(th: float, train: Sequence[Dialogue] = train) -> tuple[float, float]:
                    return _f1(run(train, th)), th

                threshold = max(MOOD_GRID, key=on_train)
                chosen.append(threshold)
                cv += run(test, threshold)
            at_best, at_cv = summarise(run(dialogues, best)), summarise(cv)
            rows.append({
                "benchmark": "escalation_moods", "nlu": nlu, "mood_only": mood_only, "mood": name,
                "best_threshold": best, "precision": at_best["precision"], "recall": at_best["recall"],
                "f1": at_best["f1"], "turns_late_mean": at_best["turns_late_mean"],
                "false_escalation_rate": at_best["false_escalation_rate"],
                "cv_thresholds": chosen, "cv_precision": at_cv["precision"], "cv_recall": at_cv["recall"],
                "cv_f1": at_cv["f1"], "cv_false_escalation_rate": at_cv["false_escalation_rate"],
            })
    return rows
