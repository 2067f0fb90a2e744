"""The held-out sets that the NLU benchmark and the console's gate score a model on.

All live in the training root's ``tests/`` folder (the repository's unless ``SHOP_TRAINING_ROOT`` says
otherwise) and are never training data (``tests/rasa/test_nlu_test_set.py`` checks that no text is in both):
- ``nlu_test.yml``: our own test set, in-scope intents and out_of_scope (leads add to it in the console);
- ``nlu_informal.yml``: written apart, from the intent descriptions alone (``intent_descriptions.yml``), in
  shoppers' informal language;
- ``offtopic.yml``: everyday assistant requests a shop cannot answer, by topic, split ``dev`` / ``test``;
- ``nlu_dev.yml``: in-scope and out-of-scope messages used only to choose thresholds (with ``offtopic``'s
  ``dev`` split).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.training.evaluation import Prediction
from bot.training.nlu_yaml import read_examples

OUT_OF_SCOPE = "out_of_scope"
FALLBACK = "nlu_fallback"
REJECTED = (OUT_OF_SCOPE, FALLBACK)  # answers that are not a shop answer


class EvaluationSetError(ValueError):
    """A set is missing or malformed (the message names the file)."""


@dataclass(frozen=True)
class LabelledSet:
    name: str
    examples: tuple[tuple[str, str], ...]  # (intent, text)

    @property
    def texts(self) -> list[str]:
        return [text for _, text in self.examples]


def _tests_dir(root: Path) -> Path:
    return root / "tests"


def labelled(root: Path, name: str) -> LabelledSet:
    path = _tests_dir(root) / f"{name}.yml"
    if not path.exists():
        raise EvaluationSetError(f"evaluation set not found: {path}")
    try:
        examples = tuple(read_examples(path))
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise EvaluationSetError(f"{path}: not a Rasa NLU file: {exc}") from exc
    if not examples:
        raise EvaluationSetError(f"{path}: no examples")
    return LabelledSet(name, examples)


def off_topic(root: Path, split: str) -> LabelledSet:
    """The ``dev`` or ``test`` split of ``offtopic.yml`` as out_of_scope examples."""
    path = _tests_dir(root) / "offtopic.yml"
    if not path.exists():
        raise EvaluationSetError(f"evaluation set not found: {path}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    topics = data.get(split)
    if not isinstance(topics, dict) or not topics:
        raise EvaluationSetError(f"{path}: no '{split}' split (a mapping of topic -> messages)")
    examples = tuple((OUT_OF_SCOPE, str(m).strip()) for messages in topics.values() for m in messages or []
                     if str(m).strip())
    return LabelledSet(f"offtopic_{split}", examples)


# ------------------------------------------------------------------ scores from parses (bench nlu, the console's gate)

Parses = Mapping[str, Mapping[str, Any]]  # text -> Rasa's parse (bot.nlu.parsing.parse_batch)


def predictions(labelled_set: LabelledSet, parsed: Parses) -> list[Prediction]:
    return [Prediction(text=text, expected=intent, predicted=str(parsed[text]["intent"] or ""),
                       confidence=round(float(parsed[text]["confidence"] or 0.0), 4))
            for intent, text in labelled_set.examples]


def in_scope(*sets: LabelledSet) -> list[str]:
    """The texts of these sets whose intent is not out_of_scope."""
    return [text for labelled_set in sets for intent, text in labelled_set.examples if intent != OUT_OF_SCOPE]


def off_topic_recall(parsed: Parses, texts: list[str]) -> float:
    """Share of ``texts`` (off-topic messages) answered ``out_of_scope``."""
    return round(sum(parsed[t]["intent"] == OUT_OF_SCOPE for t in texts) / max(1, len(texts)), 4)


def false_rejection(parsed: Parses, texts: list[str]) -> float:
    """Share of ``texts`` (in-scope messages) answered ``out_of_scope`` or ``nlu_fallback``."""
    return round(sum(parsed[t]["intent"] in REJECTED for t in texts) / max(1, len(texts)), 4)
