"""The labelled set the topics benchmark and tests score clustering on: our own held-out test messages
(``tests/nlu_test.yml``, ``tests/nlu_informal.yml``, their intents as labels) and the off-topic set
(``tests/offtopic.yml``, every split and topic as the one label ``off_topic``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.training.nlu_yaml import read_examples

OFF_TOPIC = "off_topic"
NLU_FILES = ("nlu_test.yml", "nlu_informal.yml")
OFF_TOPIC_FILE = "offtopic.yml"


class LabelledSetError(ValueError):
    """A file of the set is missing or malformed (the message names it)."""


@dataclass(frozen=True)
class LabelledMessages:
    texts: tuple[str, ...]
    labels: tuple[str, ...]


def default_tests_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "tests"


def load(tests_dir: Path | None = None) -> LabelledMessages:
    """Unique texts (the first label wins when a text appears twice) with their labels."""
    folder = tests_dir or default_tests_dir()
    pairs: list[tuple[str, str]] = []
    for name in NLU_FILES:
        path = folder / name
        if not path.is_file():
            raise LabelledSetError(f"{path} is missing")
        pairs.extend((text, intent) for intent, text in read_examples(path))
    path = folder / OFF_TOPIC_FILE
    if not path.is_file():
        raise LabelledSetError(f"{path} is missing")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise LabelledSetError(f"{path}: expected splits (dev, test) of topics")
    for split in data.values():
        for messages in (split or {}).values():
            pairs.extend((str(text), OFF_TOPIC) for text in messages or [])
    seen: dict[str, str] = {}
    for text, label in pairs:
        text = " ".join(text.split())
        if text and text not in seen:
            seen[text] = label
    return LabelledMessages(texts=tuple(seen), labels=tuple(seen.values()))
