"""``python -m bot bench escalation``: the escalation model against the old sentiment-only policy.

Each dialogue is replayed message by message as the Rasa policy sees it: the model's decision
(``bot.escalation.decision``, threshold from the shop's target false-escalation rate, a VIP's lower bar)
next to the sentiment triggers of ``sentiment_triggers`` (the policy before the model). The first escalation
ends a replay. Scores (``benchmarks.sentiment.summarise``): precision, recall, F1, false-escalation rate,
turns late; plus the precision-recall curve over every threshold (a PNG chart) and the per-message cost of
the decision (signals and model; the sentence embedding is the NLU's, computed anyway).

Intents: ``--nlu rasa`` parses every shopper message with the trained Rasa model in batches (explicit
requests, and the old policy's intent triggers) and takes each message's embedding from the parse; ``--nlu
none`` has no intents and embeds with the same encoder here. Either way 5,000 dialogues take minutes.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.sentiment import Outcome, replay, summarise
from bot import PROJECT_ROOT
from bot.config import escalation_thresholds, get_settings
from bot.escalation.decision import EscalationSettings, decide, decode_embedding, policy_settings, rule_of
from bot.escalation.dialogues import Dialogue, Parses, load_files, split_files
from bot.escalation.model import EscalationModel
from bot.escalation.sentiment_triggers import EscalationThresholds
from bot.escalation.signals import signal_rows
from bot.escalation.training import (
    embed_dialogues,
    exchanges_of,
    needs_embedding,
    sentence_embedder,
)

logger = logging.getLogger(__name__)

DEFAULT_CHART = PROJECT_ROOT / "results" / "escalation_pr.png"
PARSE_BATCH = 256


@dataclass(frozen=True)
class Scored:
    """One dialogue's per-message scores, and where a rule escalates at once (an explicit request for a person,
    one furious message about an order, giving up after a bot failure, a third attempt at a request the bot
    missed), if anywhere."""

    dialogue: Dialogue
    scores: tuple[float, ...]
    rule_at: int | None
    rule: str | None = None


def _outcome(dialogue: Dialogue, fired_at: int | None, reason: str | None) -> Outcome:
    labels = tuple(str(t.label) for t in dialogue.user_turns)
    return Outcome(dialogue.id, fired_at, reason, dialogue.first_label, labels)


def replay_scored(item: Scored, threshold: float) -> Outcome:
    fired = next((i for i, s in enumerate(item.scores) if s >= threshold), None)
    if item.rule_at is not None and (fired is None or item.rule_at <= fired):
        return _outcome(item.dialogue, item.rule_at, item.rule)
    return _outcome(item.dialogue, fired, None if fired is None else "model")


def score_dialogues(dialogues: Sequence[Dialogue], model: EscalationModel, embeddings: dict[str, np.ndarray],
                    parses: Parses | None, settings: EscalationSettings) -> list[Scored]:
    out = []
    for dialogue in dialogues:
        exchanges = exchanges_of(dialogue, embeddings, parses)
        rows = signal_rows(exchanges)
        rule_at, rule = None, None
        for i, (exchange, row) in enumerate(zip(exchanges, rows, strict=True)):
            if (found := rule_of(exchange, row, settings)) is not None:
                rule_at, rule = i, found[0]
                break
        out.append(Scored(dialogue, tuple(model.score(row.values) for row in rows), rule_at, rule))
    return out


def pr_curve(scored: Sequence[Scored], points: int = 200) -> list[dict[str, float]]:
    """Precision, recall and false-escalation rate at thresholds spread over the scores' range."""
    everything = np.array([s for item in scored for s in item.scores] or [0.0])
    thresholds = sorted(set(np.quantile(everything, np.linspace(0.0, 1.0, points)).round(5).tolist()) | {1.01})
    curve = []
    for threshold in thresholds:
        summary = summarise([replay_scored(item, threshold) for item in scored])
        curve.append({"threshold": threshold, "precision": summary["precision"], "recall": summary["recall"],
                      "false_escalation_rate": summary["false_escalation_rate"] or 0.0})
    return curve


def draw_chart(curve: Sequence[dict[str, float]], at: dict[str, Any], old: dict[str, Any], path: Path,
               title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    recall = [p["recall"] for p in curve]
    left.plot(recall, [p["precision"] for p in curve], color="#1f77b4", label="escalation model")
    left.scatter([at["recall"]], [at["precision"]], color="#1f77b4", zorder=3,
                 label=f"calibrated ({at['target_rate']:.0%} target)")
    left.scatter([old["recall"]], [old["precision"]], color="#d62728", marker="x", zorder=3,
                 label="sentiment-only policy")
    left.set(xlabel="recall (dissatisfied dialogues caught)", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
             title="precision-recall")
    left.legend(loc="lower left")
    right.plot([p["false_escalation_rate"] for p in curve], recall, color="#1f77b4")
    right.scatter([at["false_escalation_rate"]], [at["recall"]], color="#1f77b4", zorder=3)
    right.scatter([old["false_escalation_rate"] or 0.0], [old["recall"]], color="#d62728", marker="x", zorder=3)
    right.axvline(at["target_rate"], color="grey", linestyle=":")
    right.set(xlabel="false-escalation rate (satisfied dialogues handed over)", ylabel="recall", xlim=(0, 1),
              ylim=(0, 1.02), title="recall against false escalations")
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def message_cost(scored: Sequence[Scored], embeddings: dict[str, np.ndarray], parses: Parses | None,
                 model: EscalationModel, settings: EscalationSettings, sample: int = 2000) -> dict[str, Any]:
    """Milliseconds the decision adds to one message, as the policy runs it (all signals of the episode so
    far, the model, the threshold), over up to ``sample`` messages spread over the dialogues."""
    timings: list[float] = []
    step = max(1, sum(len(item.scores) for item in scored) // sample)
    counter = 0
    for item in scored:
        exchanges = exchanges_of(item.dialogue, embeddings, parses)
        for i in range(len(exchanges)):
            counter += 1
            if counter % step:
                continue
            started = time.perf_counter()
            decide(exchanges[:i + 1], item.dialogue.segment, model, settings)
            timings.append((time.perf_counter() - started) * 1000)
    if not timings:
        return {"messages_timed": 0}
    ordered = sorted(timings)
    return {"messages_timed": len(timings), "p50_ms": round(statistics.median(ordered), 3),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
            "max_ms": round(ordered[-1], 3)}


def rasa_parses(dialogues: Sequence[Dialogue], model_file: Path) -> tuple[Parses, dict[str, np.ndarray]]:
    from bot.nlu.parsing import parse_batch

    texts = [t.text for d in dialogues for t in d.user_turns]
    parsed = parse_batch(texts, model_file, timeout=3600.0, batch=PARSE_BATCH)
    parses = {text: (r.get("intent"), r.get("confidence")) for text, r in parsed.items()}
    embeddings = {}
    for text, r in parsed.items():
        if needs_embedding(text) and (vector := decode_embedding(r.get("embedding"))) is not None:
            embeddings[text] = vector
    return parses, embeddings


def by_type(outcomes: Sequence[Outcome], types: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per kind of dialogue (``test-types.json``: the main reason a supervisor steps in, or the kind of
    satisfied conversation): how many there are and how many the policy handed over at a labelled message
    (dissatisfied kinds: the recall of that kind) or at all (satisfied kinds: its false escalations)."""
    table: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        kind = types.get(outcome.dialogue)
        if kind is None:
            continue
        row = table.setdefault(kind, {"dialogues": 0, "escalated": 0})
        row["dialogues"] += 1
        if outcome.fired_at is None:
            continue
        if outcome.first_label is None or outcome.labels[outcome.fired_at] == "escalate":
            row["escalated"] += 1
    for row in table.values():
        row["share"] = round(row["escalated"] / row["dialogues"], 3)
    return dict(sorted(table.items()))


def _types(paths: Sequence[Path]) -> dict[str, str]:
    """The ``test-types.json`` files next to the datasets: dialogue id -> kind."""
    import json

    types: dict[str, str] = {}
    for folder in {p.resolve().parent for p in paths}:
        if (found := folder / "test-types.json").exists():
            types.update(json.loads(found.read_text(encoding="utf-8")))
    return types


def run(datasets: Sequence[Path] | None = None, nlu: str = "none", model_file: Path | None = None,
        rasa_model: Path | None = None, rate: float | None = None, chart: Path | None = DEFAULT_CHART,
        thresholds: EscalationThresholds | None = None) -> list[dict[str, Any]]:
    """Both policies over the dialogues (default: the test split); one result dict per policy."""
    if nlu not in ("rasa", "none"):
        raise ValueError(f"--nlu must be rasa or none, got {nlu!r}")
    started = time.perf_counter()
    paths = list(datasets or split_files("test"))
    dialogues = load_files(paths)
    model = EscalationModel.load(model_file) if model_file else EscalationModel.load()
    settings = policy_settings(get_settings().policy_file)
    if rate is not None:
        settings = EscalationSettings(rate, max(rate, settings.vip_false_escalation_rate), settings.vip_segments,
                                      settings.explicit_intents)
    timing: dict[str, float] = {}
    parses: Parses | None = None
    embeddings: dict[str, np.ndarray] = {}
    if nlu == "rasa":
        from bot.training.rasa_model import model_path

        step = time.perf_counter()
        parses, embeddings = rasa_parses(dialogues, rasa_model or model_path())
        timing["parse_s"] = round(time.perf_counter() - step, 1)
    missing = [d for d in dialogues if any(needs_embedding(t.text) and t.text not in embeddings
                                           for t in d.user_turns)]
    if missing:
        step = time.perf_counter()
        embeddings.update(embed_dialogues(missing, sentence_embedder()))
        timing["embed_s"] = round(time.perf_counter() - step, 1)
    step = time.perf_counter()
    scored = score_dialogues(dialogues, model, embeddings, parses, settings)
    outcomes = []
    for item in scored:
        threshold = settings.threshold(model, item.dialogue.segment)
        outcomes.append(replay_scored(item, threshold))
    timing["score_s"] = round(time.perf_counter() - step, 1)
    at = {**summarise(outcomes), "target_rate": settings.false_escalation_rate,
          "threshold": round(model.threshold(settings.false_escalation_rate), 4)}
    old_thresholds = thresholds or escalation_thresholds()
    curve = pr_curve(scored)
    name = ", ".join(p.name for p in paths)
    common = {"benchmark": "escalation", "dataset": name, "nlu": nlu}
    old_outcomes = [replay(d, old_thresholds, parses) for d in dialogues]
    old = summarise(old_outcomes)
    rows = [{**common, "policy": "model", **at, "message_cost": message_cost(scored, embeddings, parses, model,
                                                                              settings)},
            {**common, "policy": "sentiment_only", **old}]
    if types := _types(paths):
        rows[0]["by_type"] = by_type(outcomes, types)
        rows[1]["by_type"] = by_type(old_outcomes, types)
    if chart is not None:
        rows[0]["chart"] = str(draw_chart(curve, at, old, chart, f"escalation on {name} ({len(dialogues)} "
                                                                   f"dialogues, nlu {nlu})"))
    timing["total_s"] = round(time.perf_counter() - started, 1)
    rows[0]["timing"] = timing
    return rows
