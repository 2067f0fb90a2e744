"""Rasa NLU training data in YAML, and the export of the leads' labels into it.

Rasa marks entities inside an example's text: ``[red](color)``, or ``[two]{"entity": "quantity", "value": "2"}``
when the value differs from the words. :func:`export_labels` turns the console's labels into
``data/nlu/lead_labels.yml`` (training) and into the generated section at the end of ``tests/nlu_test.yml``
(the held-out test set), keeping the two apart: a text whose :func:`group_key` is in the test set never
goes into training. Emails, phone numbers, card numbers and IBANs in a label's text are replaced by
placeholders of the same shape (:func:`bot.privacy.redact.redact_example`). Output is deterministic
(sorted, no timestamps), so an unchanged set of labels gives byte-identical files and a diff a lead can
review.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.privacy.redact import redact_example
from bot.training.tables import LABELLED, OUT_OF_SCOPE, TEST, NluMessage

MARKER = "# --- added by support leads in the console (generated below this line) ---"
LABELS_FILE = Path("data") / "nlu" / "lead_labels.yml"
TEST_FILE = Path("tests") / "nlu_test.yml"
OUT_OF_SCOPE_INTENT = "out_of_scope"
FALLBACK_INTENT = "nlu_fallback"
LABELS_HEADER = (
    "# Generated from the support leads' labels in the console (/admin) when a training starts.\n"
    "# Do not edit by hand: change the labels in the console instead; this file is rewritten each time.\n"
)
GROUP_KEY_LENGTH = 255

# Rasa's own pattern for entity markup (rasa/shared/nlu/training_data/entities_parser.py).
ENTITY_MARKUP = re.compile(
    r"\[(?P<entity_text>[^\]]+?)\](\((?P<entity>[^:)]+?)(?:\:(?P<value>[^)]+))?\)|\{(?P<entity_dict>[^}]+?)\}"
    r"|\[(?P<list_entity_dicts>.*?)\])"
)
_DIGITS = re.compile(r"[#\d]*\d[#\d]*")  # a number, with any "#" around it
_SPACES = re.compile(r"\s+")


def group_key(text: str) -> str:
    """The key near-duplicates share: lower-case, accents stripped, digits -> ``#``, no punctuation.

    A number becomes one ``#`` ("order 12", "order #12345" are the same question), apostrophes
    vanish ("don't" = "dont"), other punctuation and symbols become spaces, whitespace is collapsed.
    """
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    plain = _DIGITS.sub("#", plain)
    out = []
    for ch in plain:
        if ch in "'\u2019\u2018`":
            continue
        out.append(ch if ch.isalnum() or ch == "#" or ch.isspace() else " ")
    key = _SPACES.sub(" ", "".join(out)).strip()
    return (key or text.strip().casefold())[:GROUP_KEY_LENGTH]


# --------------------------------------------------------------------------- examples and markup


def strip_markup(example: str) -> tuple[str, list[dict[str, Any]]]:
    """``"a [red](color) coat"`` -> ``("a red coat", [{"start": 2, "end": 5, "entity": "color", "value": "red"}])``."""
    entities: list[dict[str, Any]] = []
    out: list[str] = []
    at = 0
    length = 0
    for match in ENTITY_MARKUP.finditer(example):
        before = example[at:match.start()]
        out.append(before)
        length += len(before)
        words = match.group("entity_text")
        entity, value = match.group("entity"), match.group("value") or words
        if match.group("entity_dict"):
            try:
                data = json.loads("{" + match.group("entity_dict") + "}")
            except ValueError:
                data = {}
            entity, value = data.get("entity"), data.get("value", words)
        if entity:
            entities.append({"start": length, "end": length + len(words), "entity": str(entity), "value": str(value)})
        out.append(words)
        length += len(words)
        at = match.end()
    out.append(example[at:])
    return "".join(out), entities


def _safe_char(ch: str) -> str:
    """Characters that would break a one-line YAML example or read as markup, replaced one for one."""
    if ch == "[":
        return "("
    if ch == "]":
        return ")"
    if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") and ch not in "\u200d\u200c":
        return " "
    return ch


def clean_example(text: str, entities: Sequence[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Text safe for a YAML example line and entities whose offsets still fit it.

    Replacements keep the length, so offsets stay valid; leading and trailing whitespace (which Rasa strips)
    is removed and the offsets moved with it. Entities that no longer fit, are empty or overlap an earlier
    one are dropped.
    """
    safe = "".join(_safe_char(ch) for ch in text)
    lead = len(safe) - len(safe.lstrip())
    stripped = safe.strip()
    kept: list[dict[str, Any]] = []
    for entity in sorted(entities, key=lambda e: (int(e["start"]), int(e["end"]))):
        start, end = int(entity["start"]) - lead, int(entity["end"]) - lead
        if start < 0 or end > len(stripped) or start >= end:
            continue
        words = stripped[start:end]
        # the span itself must not start or end with a space (Rasa's tokens would not line up)
        start += len(words) - len(words.lstrip())
        end -= len(words) - len(words.rstrip())
        if start >= end or (kept and start < kept[-1]["end"]):
            continue
        value = str(entity.get("value") or text[start + lead:end + lead])
        kept.append({"start": start, "end": end, "entity": str(entity["entity"]), "value": value})
    return stripped, kept


def render_example(text: str, entities: Sequence[dict[str, Any]] = ()) -> str:
    """One example line (without the leading ``- ``), entities as Rasa markup."""
    clean, kept = clean_example(text, entities)
    out: list[str] = []
    at = 0
    for entity in kept:
        words = clean[entity["start"]:entity["end"]]
        out.append(clean[at:entity["start"]])
        value = "".join(_safe_char(ch) for ch in entity["value"]).replace("{", "(").replace("}", ")").strip()
        if not value or value == words:
            out.append(f"[{words}]({entity['entity']})")
        else:
            out.append(f"[{words}]" + json.dumps({"entity": entity["entity"], "value": value}, ensure_ascii=False))
        at = entity["end"]
    out.append(clean[at:])
    return "".join(out)


def render_items(examples: Mapping[str, Iterable[str]], indent: str = "") -> str:
    """``- intent: x`` items with their examples as a literal block; intents and examples sorted, de-duplicated."""
    lines: list[str] = []
    for intent in sorted(examples):
        texts = sorted({e for e in examples[intent] if e.strip()})
        if not texts:
            continue
        lines.append(f"{indent}- intent: {intent}")
        lines.append(f"{indent}  examples: |")
        lines.extend(f"{indent}    - {text}" for text in texts)
    return "\n".join(lines) + ("\n" if lines else "")


def render_nlu_file(examples: Mapping[str, Iterable[str]], header: str = "") -> str:
    items = render_items(examples)
    return f'{header}version: "3.1"\n' + (f"nlu:\n{items}" if items else "nlu: []\n")


def _intent_items(data: Any) -> Iterable[tuple[str, list[str]]]:
    """(intent, example lines) of the ``nlu:`` section of a parsed Rasa YAML file."""
    if not isinstance(data, dict):
        return
    for item in data.get("nlu") or []:
        if not isinstance(item, dict) or not item.get("intent"):
            continue
        raw = item.get("examples")
        if isinstance(raw, str):
            lines = [line.strip()[1:].strip() for line in raw.splitlines() if line.strip().startswith("-")]
        elif isinstance(raw, list):
            lines = [str(e.get("text", "")).strip() if isinstance(e, dict) else str(e).strip() for e in raw]
        else:
            lines = []
        yield str(item["intent"]), [line for line in lines if line]


def read_examples(path: Path) -> list[tuple[str, str]]:
    """Every (intent, plain text) of a Rasa NLU YAML file; markup removed."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [(intent, strip_markup(line)[0]) for intent, lines in _intent_items(data) for line in lines]


# --------------------------------------------------------------------------- the domain


def _domain(root: Path) -> dict[str, Any]:
    path = root / "domain.yml"
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _names(items: Any) -> list[str]:
    names = []
    for item in items or []:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, dict):
            names.extend(str(k) for k in item)
    return names


def domain_intents(root: Path) -> list[str]:
    return sorted(set(_names(_domain(root).get("intents"))))


def entity_names(root: Path) -> list[str]:
    """The entity types of ``root/domain.yml``, sorted."""
    return sorted(set(_names(_domain(root).get("entities"))))


def known_intents(root: Path, session: Session | None = None) -> list[str]:
    """The intents of ``root/domain.yml`` plus, given a session, the ones leads created in the console."""
    names = set(domain_intents(root))
    if session is not None:
        names.update(i for i in session.scalars(select(NluMessage.label_intent).distinct()) if i)
    names.discard(FALLBACK_INTENT)
    return sorted(names)


# --------------------------------------------------------------------------- the export


@dataclass
class ExportResult:
    train_examples: int
    test_examples: int
    new_intents: list[str]
    train_path: Path
    test_path: Path
    # labels left out (or kept despite a clash), each {"text", "intent", "target", "reason", "exported"}
    conflicts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Label:
    text: str
    intent: str
    target: str
    entities: list[dict[str, Any]]
    key: str


def _write_atomic(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def split_test_file(content: str) -> tuple[str, str | None]:
    """(the hand-curated part up to and including the marker line, the generated part or None without marker)."""
    at = 0
    for line in content.splitlines(keepends=True):
        if line.rstrip("\r\n").rstrip() == MARKER:
            return content[:at + len(line)], content[at + len(line):]
        at += len(line)
    return content, None


def _curated_part(path: Path) -> str:
    """The part of the test file above (and with) the marker, byte for byte; the marker is added when missing."""
    if not path.exists():
        return f'version: "3.1"\nnlu:\n{MARKER}\n'
    content = path.read_bytes().decode("utf-8")
    curated, generated = split_test_file(content)
    if generated is None:
        if curated and not curated.endswith("\n"):
            curated += "\n"
        curated += MARKER + "\n"
    elif not curated.endswith("\n"):
        curated += "\n"
    return curated


def _item_indent(curated: str) -> str:
    found = re.findall(r"^( *)- intent:", curated, flags=re.MULTILINE)
    return found[-1] if found else ""


def _load_labels(session: Session) -> list[_Label]:
    rows = session.scalars(
        select(NluMessage).where(NluMessage.status.in_((LABELLED, OUT_OF_SCOPE)))
        .order_by(NluMessage.labelled_at, NluMessage.id))
    labels = []
    for row in rows:
        intent = OUT_OF_SCOPE_INTENT if row.status == OUT_OF_SCOPE else (row.label_intent or "")
        if not intent:
            continue
        entities = list(row.label_entities or []) if row.status == LABELLED else []
        # personal data never goes into training data, test sets or model archives (rows stored before the
        # inbox redacted them too)
        text, entities = redact_example(row.text, entities)
        labels.append(_Label(text, intent, row.label_target, entities, group_key(text)))
    return labels


def _conflict(label: _Label, reason: str, exported: bool = False) -> dict[str, Any]:
    return {"text": label.text, "intent": label.intent, "target": label.target, "reason": reason,
            "exported": exported}


def _choose_labels(labels: Sequence[_Label], conflicts: list[dict[str, Any]]) -> list[_Label]:
    """The most recent label of each text (a text labelled for the test set anywhere is a test example
    only); every label left out is added to ``conflicts`` with the reason."""
    test_keys_labelled = {label.key for label in labels if label.target == TEST}
    latest: dict[tuple[str, str], str] = {}  # (target, key) -> intent of the most recent label
    for label in labels:
        target = TEST if label.key in test_keys_labelled else label.target
        latest[(target, label.key)] = label.intent
    chosen: list[_Label] = []
    for label in labels:
        target = TEST if label.key in test_keys_labelled else label.target
        if target != label.target:
            conflicts.append(_conflict(label, "the same text is labelled for the test set"))
        elif latest[(target, label.key)] != label.intent:
            conflicts.append(_conflict(label, f"labelled '{latest[(target, label.key)]}' more recently"))
        else:
            chosen.append(label)
    return chosen


def _hand_written_training(root: Path, train_path: Path) -> dict[str, str]:
    """Group key -> intent of the hand-written training data under ``root`` (not the exported labels' file)."""
    training: dict[str, str] = {}
    nlu_dir = root / "data" / "nlu"
    hand_written = sorted(p for p in nlu_dir.rglob("*") if p.suffix in (".yml", ".yaml")) if nlu_dir.is_dir() else []
    for path in hand_written:
        if path.resolve() == train_path.resolve():
            continue
        for intent, text in read_examples(path):
            training.setdefault(group_key(text), intent)
    return training


def export_labels(session: Session, root: Path) -> ExportResult:
    """Writes the leads' labels as Rasa training and test data under ``root``; returns what it wrote.

    Per text (by group key) the most recent label wins; a text labelled for the test set anywhere is a
    test example only. Test labels whose text is already in the hand-written training data, and training
    labels whose text is in the test set, are left out and listed in ``conflicts``.
    """
    root = Path(root)
    train_path, test_path = root / LABELS_FILE, root / TEST_FILE
    conflicts: list[dict[str, Any]] = []
    chosen = _choose_labels(_load_labels(session), conflicts)

    curated = _curated_part(test_path)
    try:
        curated_data = yaml.safe_load(curated)
    except yaml.YAMLError as exc:
        raise ValueError(f"{test_path}: the hand-curated part above the marker is not valid YAML: {exc}") from exc
    curated_examples = [(intent, strip_markup(line)[0]) for intent, lines in _intent_items(curated_data)
                        for line in lines]
    curated_keys = {group_key(text): intent for intent, text in curated_examples}
    training = _hand_written_training(root, train_path)

    test_lines: dict[str, set[str]] = {}
    test_keys = set(curated_keys)
    for label in (lb for lb in chosen if lb.target == TEST):
        if label.key in training:
            conflicts.append(_conflict(label, f"already in the training data (as '{training[label.key]}')"))
            continue
        if label.key in curated_keys:
            if curated_keys[label.key] != label.intent:
                conflicts.append(_conflict(label, f"already in the curated test set as '{curated_keys[label.key]}'"))
            continue
        test_lines.setdefault(label.intent, set()).add(render_example(label.text, label.entities))
        test_keys.add(label.key)

    train_lines: dict[str, set[str]] = {}
    for label in (lb for lb in chosen if lb.target != TEST):
        if label.key in test_keys:
            conflicts.append(_conflict(label, "the text is in the test set"))
            continue
        if label.key in training and training[label.key] != label.intent:
            conflicts.append(_conflict(label, f"the training data has it as '{training[label.key]}'", exported=True))
        train_lines.setdefault(label.intent, set()).add(render_example(label.text, label.entities))

    _write_atomic(train_path, render_nlu_file(train_lines, LABELS_HEADER))
    _write_atomic(test_path, curated + render_items(test_lines, _item_indent(curated)))
    domain = set(domain_intents(root))
    new_intents = sorted((set(train_lines) | set(test_lines)) - domain)
    return ExportResult(train_examples=sum(len(v) for v in train_lines.values()),
                        test_examples=sum(len(v) for v in test_lines.values()), new_intents=new_intents,
                        train_path=train_path, test_path=test_path, conflicts=conflicts)
