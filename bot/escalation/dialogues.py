"""Labelled dialogues for the escalation model and its benchmarks (format: ``data/escalation/README.md``).

JSON lines ``{"id", "segment"?, "turns": [{"role": "user"|"bot", "text", "label": "escalate"|"ok"}]}``; a user
turn's label says whether a person should have taken over by that message. The splits of the project's own
dialogues live in ``data/escalation``: ``train-*.jsonl``, ``dev.jsonl`` and ``test-*.jsonl``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot import PROJECT_ROOT

DIALOGUES_DIR = PROJECT_ROOT / "data" / "escalation"
SPLITS = {"train": "train-*.jsonl", "dev": "dev.jsonl", "test": "test-*.jsonl"}
Parses = Mapping[str, tuple[str | None, float | None]]  # text -> (intent, confidence), from the NLU

LABELS = ("escalate", "ok")


class DatasetError(ValueError):
    """The dataset file is malformed; the message names the line."""


@dataclass(frozen=True)
class DialogueTurn:
    role: str
    text: str
    label: str | None = None


@dataclass(frozen=True)
class Dialogue:
    id: str
    turns: tuple[DialogueTurn, ...]
    segment: str | None = None

    @property
    def user_turns(self) -> list[DialogueTurn]:
        return [t for t in self.turns if t.role == "user"]

    @property
    def first_label(self) -> int | None:
        """Index (among user turns) of the first turn labelled "escalate"."""
        return next((i for i, t in enumerate(self.user_turns) if t.label == "escalate"), None)


def load_dialogues(path: Path) -> list[Dialogue]:
    dialogues: list[Dialogue] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{where}: not JSON ({exc.msg})") from exc
            if not isinstance(raw, dict) or not isinstance(raw.get("turns"), list) or "id" not in raw:
                raise DatasetError(f'{where}: expected {{"id", "turns": [...]}}')
            dialogue_id = str(raw["id"])
            if dialogue_id in seen:
                raise DatasetError(f"{where}: duplicate id {dialogue_id!r}")
            seen.add(dialogue_id)
            turns = []
            for i, turn in enumerate(raw["turns"]):
                if not isinstance(turn, dict) or turn.get("role") not in ("user", "bot") \
                        or not isinstance(turn.get("text"), str):
                    raise DatasetError(f'{where}: turn {i}: expected {{"role": "user"|"bot", "text": str}}')
                label = turn.get("label")
                if turn["role"] == "user" and label not in LABELS:
                    raise DatasetError(f"{where}: turn {i}: a user turn needs a label, one of {', '.join(LABELS)}")
                turns.append(DialogueTurn(turn["role"], turn["text"], label if turn["role"] == "user" else None))
            if not any(t.role == "user" for t in turns):
                raise DatasetError(f"{where}: dialogue {dialogue_id!r} has no user turn")
            segment = raw.get("segment")
            dialogues.append(Dialogue(dialogue_id, tuple(turns), str(segment) if segment else None))
    if not dialogues:
        raise DatasetError(f"{path}: no dialogues")
    return dialogues


def split_files(split: str, root: Path | None = None) -> list[Path]:
    """The files of one of ``SPLITS`` under ``root`` (default ``data/escalation``), sorted."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; one of {', '.join(SPLITS)}")
    files = sorted((root or DIALOGUES_DIR).glob(SPLITS[split]))
    if not files:
        raise DatasetError(f"no {split} dialogues ({SPLITS[split]}) in {root or DIALOGUES_DIR}")
    return files


def load_files(paths: list[Path]) -> list[Dialogue]:
    """The dialogues of several files, ids unique across them."""
    dialogues: list[Dialogue] = []
    seen: dict[str, Path] = {}
    for path in paths:
        for dialogue in load_dialogues(path):
            if dialogue.id in seen:
                raise DatasetError(f"{path}: id {dialogue.id!r} is also in {seen[dialogue.id]}")
            seen[dialogue.id] = path
            dialogues.append(dialogue)
    return dialogues


def load_split(split: str, root: Path | None = None) -> list[Dialogue]:
    return load_files(split_files(split, root))
