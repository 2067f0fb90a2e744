"""The held-out sets that the NLU benchmark and the console's gate score a model on.

All live in the training root's ``tests/`` folder (the repository's unless ``SHOP_TRAINING_ROOT`` says
otherwise) and are never training data (``tests/test_nlu_test_set.py`` checks that no text is in both):
- ``nlu_test.yml``: our own test set, in-scope intents and out_of_scope (leads add to it in the console);
- ``nlu_informal.yml``: written apart, from the intent descriptions alone (``intent_descriptions.yml``), in
  shoppers' informal language;
- ``offtopic.yml``: everyday assistant requests a shop cannot answer, by topic, split ``dev`` / ``test``;
- ``nlu_dev.yml``: in-scope and out-of-scope messages used only to choose thresholds (with ``offtopic``'s
  ``dev`` split).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

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
