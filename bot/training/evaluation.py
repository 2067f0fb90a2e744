"""NLU evaluation with Rasa: cross-validation, and a model's scores on the held-out test set.

Scores on the test set are computed here from Rasa's per-message predictions (``rasa test nlu
--successes``), over the intents that the test set contains: accuracy, macro-F1 (the unweighted mean of
those intents' F1) and per-intent F1. Predictions of labels the test set does not contain (``nlu_fallback``)
count as errors for the true intent and add no zero-F1 label of their own, so two models are compared on
the same intents.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bot import PROJECT_ROOT
from bot.training.rasa_model import rasa_env, rasa_executable

CONFUSION_PNG = "intent_confusion_matrix.png"


def cross_validate(folds: int = 3, out: Path = Path("results/nlu-cv")) -> dict[str, Any]:
    out = out if out.is_absolute() else PROJECT_ROOT / out
    out.mkdir(parents=True, exist_ok=True)
    cmd = [str(rasa_executable()), "test", "nlu", "--nlu", "data/nlu", "--config", "config.yml",
           "--cross-validation", "--folds", str(folds), "--out", str(out), "--no-plot"]
    subprocess.run(cmd, cwd=PROJECT_ROOT, check=True, stdout=subprocess.DEVNULL, env=rasa_env())
    return summarise(out / "intent_report.json", folds)


def summarise(report_path: Path, folds: int) -> dict[str, Any]:
    report = json.loads(report_path.read_text())
    per_intent = {k: v for k, v in report.items() if isinstance(v, dict) and "f1-score" in v
                  and k not in ("macro avg", "weighted avg", "micro avg")}
    return {
        "benchmark": "nlu_cross_validation",
        "folds": folds,
        "intents": len(per_intent),
        "examples": int(report.get("macro avg", {}).get("support", 0)),
        "accuracy": round(float(report.get("accuracy", report.get("micro avg", {}).get("f1-score", 0.0))), 4),
        "macro_f1": round(float(report["macro avg"]["f1-score"]), 4),
        "weighted_f1": round(float(report["weighted avg"]["f1-score"]), 4),
        "worst_intents": sorted(((k, round(v["f1-score"], 3)) for k, v in per_intent.items()),
                                key=lambda kv: kv[1])[:5],
    }


# --------------------------------------------------------------------------- the held-out test set


@dataclass(frozen=True)
class Prediction:
    text: str
    expected: str
    predicted: str
    confidence: float


@dataclass
class Scores:
    accuracy: float
    macro_f1: float
    examples: int
    per_intent: dict[str, dict[str, float]] = field(default_factory=dict)  # intent -> {f1, precision, recall, support}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def file_fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


def sets_fingerprint(paths: list[Path]) -> str:
    """One fingerprint of several held-out sets (the first alone gives its own file fingerprint, so evaluations
    cached before the informal and off-topic sets existed stay valid for the test set alone)."""
    if len(paths) == 1:
        return file_fingerprint(paths[0])
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + file_fingerprint(path).encode() + b"\0")
    return digest.hexdigest()


HELD_OUT = "held_out.json"


def score_held_out(model: Path, root: Path, out: Path) -> dict[str, Any]:
    """Scores on the informal set and the off-topic set (``bot.nlu.evaluation_sets``), where the root has them:
    ``{"nlu_informal": {"accuracy", "macro_f1", "examples"}, "offtopic_recall", "in_scope_false_rejection"}``
    (rejection over the informal set's in-scope messages). Cached in ``out``."""
    from bot.nlu.evaluation_sets import false_rejection, in_scope, labelled, off_topic, off_topic_recall, predictions
    from bot.nlu.parsing import parse_batch

    cached = out / HELD_OUT
    if cached.exists():
        return dict(json.loads(cached.read_text()))
    tests = root / "tests"
    informal = labelled(root, "nlu_informal") if (tests / "nlu_informal.yml").exists() else None
    off = off_topic(root, "test") if (tests / "offtopic.yml").exists() else None
    result: dict[str, Any] = {}
    texts = [*(informal.texts if informal else []), *(off.texts if off else [])]
    if texts:
        parsed = parse_batch(texts, model)
        if informal is not None:
            scores = score(predictions(informal, parsed))
            result["nlu_informal"] = {"accuracy": scores.accuracy, "macro_f1": scores.macro_f1,
                                      "examples": scores.examples}
            result["in_scope_false_rejection"] = false_rejection(parsed, in_scope(informal))
        if off is not None:
            result["offtopic_recall"] = off_topic_recall(parsed, off.texts)
    out.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(result))
    return result


def score(predictions: list[Prediction]) -> Scores:
    """Accuracy, macro-F1 and per-intent F1 over the intents the test set contains."""
    intents = sorted({p.expected for p in predictions})
    true_pos: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    support: Counter[str] = Counter()
    for p in predictions:
        support[p.expected] += 1
        predicted[p.predicted] += 1
        if p.predicted == p.expected:
            true_pos[p.expected] += 1
    per_intent: dict[str, dict[str, float]] = {}
    for intent in intents:
        precision = true_pos[intent] / predicted[intent] if predicted[intent] else 0.0
        recall = true_pos[intent] / support[intent] if support[intent] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_intent[intent] = {"f1": round(f1, 4), "precision": round(precision, 4), "recall": round(recall, 4),
                              "support": support[intent]}
    total = len(predictions)
    return Scores(
        accuracy=round(sum(true_pos.values()) / total, 4) if total else 0.0,
        macro_f1=round(sum(v["f1"] for v in per_intent.values()) / len(per_intent), 4) if per_intent else 0.0,
        examples=total, per_intent=per_intent)


def read_predictions(out: Path) -> list[Prediction]:
    """Rasa's ``intent_successes.json`` and ``intent_errors.json`` as one list."""
    rows: list[Prediction] = []
    for name in ("intent_successes.json", "intent_errors.json"):
        path = out / name
        if not path.exists():
            continue
        for item in json.loads(path.read_text()):
            guess = item.get("intent_prediction") or {}
            rows.append(Prediction(text=str(item.get("text", "")), expected=str(item.get("intent", "")),
                                   predicted=str(guess.get("name") or ""),
                                   confidence=round(float(guess.get("confidence") or 0.0), 4)))
    rows.sort(key=lambda p: (p.expected, p.text))
    return rows


def evaluate_model(model: Path, test_set: Path, out: Path, log: Path | None = None) -> tuple[Scores, list[Prediction]]:
    """Runs ``rasa test nlu`` for ``model`` on ``test_set``; writes Rasa's reports and the confusion matrix
    image into ``out`` and keeps the predictions as ``predictions.json`` there."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [str(rasa_executable()), "test", "nlu", "--model", str(model), "--nlu", str(test_set), "--out", str(out),
           "--successes"]
    with (log or out / "evaluate.log").open("ab") as sink:
        subprocess.run(cmd, cwd=PROJECT_ROOT, check=True, stdout=sink, stderr=subprocess.STDOUT, env=rasa_env())
    predictions = read_predictions(out)
    if not predictions:
        raise RuntimeError(f"rasa test nlu wrote no predictions for {test_set} (is it empty?)")
    (out / "predictions.json").write_text(json.dumps([asdict(p) for p in predictions], indent=1))
    return score(predictions), predictions


def cached_predictions(out: Path) -> list[Prediction] | None:
    path = out / "predictions.json"
    if not path.exists():
        return None
    return [Prediction(**row) for row in json.loads(path.read_text())]


def changed_predictions(before: list[Prediction], after: list[Prediction]) -> list[dict[str, Any]]:
    """Test messages whose predicted intent differs between two models; ``fixed`` when the new one is right."""
    old = {(p.text, p.expected): p for p in before}
    changed = []
    for p in after:
        prior = old.get((p.text, p.expected))
        if prior is not None and prior.predicted != p.predicted:
            changed.append({"text": p.text, "expected": p.expected, "before": prior.predicted,
                            "after": p.predicted, "fixed": p.predicted == p.expected})
    changed.sort(key=lambda c: (c["fixed"], c["expected"], c["text"]))
    return changed

