"""The held-out NLU test set (tests/nlu_test.yml) that console trainings are evaluated and gated on.

It must stay apart from the training data (no test text in data/nlu, compared as the console's group keys
compare them), cover every intent that has training data with at least 25 hand-written messages, use only
intents and entities of the domain (catalog facets with catalog values), end its curated part with the
marker line below which the console export writes, and load with Rasa's own loader (Rasa venv subprocess).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEST_SET = ROOT / "tests" / "nlu_test.yml"
NLU_DIR = ROOT / "data" / "nlu"
DOMAIN = ROOT / "domain.yml"
RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"
MARKER = "# --- added by support leads in the console (generated below this line) ---"
MIN_PER_INTENT = 25  # one changed prediction then moves an intent's F1 by ~2-4 points, below the 5-point gate
# Entities whose values come from the catalog (data/nlu/lookups.yml).
CATALOG_ENTITIES = ("brand", "color", "category", "material", "gender")

# [text](entity) or [text]{"entity": ..., "value": ...}: Rasa's entity markup in training examples.
_MARKUP = re.compile(r"\[(?P<text>[^\]]+)\](?:\((?P<entity>[^)]+)\)|(?P<json>\{[^}]*\}))")


@dataclass(frozen=True)
class Example:
    intent: str
    text: str  # without markup, as Rasa trains and tests on it
    entities: tuple[tuple[str, str], ...]  # (entity, value)


def parse_markup(marked: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    entities: list[tuple[str, str]] = []

    def plain(match: re.Match[str]) -> str:
        text = match.group("text")
        if match.group("json"):
            spec = json.loads(match.group("json"))
            entities.append((spec["entity"], str(spec.get("value", text))))
        else:
            entities.append((match.group("entity"), text))
        return text

    return _MARKUP.sub(plain, marked), tuple(entities)


def read_examples(yaml_text: str) -> list[Example]:
    """The intent examples of a Rasa 3 NLU YAML document (lookups, regexes and synonyms are skipped)."""
    doc = yaml.safe_load(yaml_text) or {}
    examples: list[Example] = []
    for item in doc.get("nlu") or []:
        if "intent" not in item:
            continue
        raw = item.get("examples") or ""
        lines = ([entry["text"] for entry in raw] if isinstance(raw, list)
                 else [line.strip()[2:] for line in raw.splitlines() if line.strip().startswith("- ")])
        for line in lines:
            text, entities = parse_markup(line.strip())
            examples.append(Example(item["intent"], text, entities))
    return examples


def group_keys(text: str) -> set[str]:
    """Lower-case, accents stripped, digits as #, punctuation dropped (or made a space), whitespace collapsed."""
    text = unicodedata.normalize("NFKD", text)
    text = re.sub(r"\d", "#", "".join(c for c in text if not unicodedata.combining(c)).lower())
    return {" ".join(re.sub(r"[^\w\s#]", sep, text).split()) for sep in ("", " ")}


def curated_part() -> str:
    text = TEST_SET.read_text(encoding="utf-8")
    return text.split(MARKER + "\n", 1)[0]


def training_examples() -> list[Example]:
    return [ex for path in sorted(NLU_DIR.glob("*.yml")) for ex in read_examples(path.read_text(encoding="utf-8"))]


def domain() -> dict[str, Any]:
    return yaml.safe_load(DOMAIN.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def names(entries: list[Any]) -> set[str]:
    """Intent or entity names of a domain list (plain names or one-key mappings with options)."""
    return {entry if isinstance(entry, str) else next(iter(entry)) for entry in entries}


def catalog_values() -> dict[str, set[str]]:
    doc = yaml.safe_load((NLU_DIR / "lookups.yml").read_text(encoding="utf-8"))
    return {item["lookup"]: {line.strip()[2:].strip().lower() for line in item["examples"].splitlines()
                             if line.strip().startswith("- ")}
            for item in doc["nlu"] if "lookup" in item}


def test_marker_line_ends_the_curated_part() -> None:
    lines = TEST_SET.read_text(encoding="utf-8").splitlines()
    assert lines.count(MARKER) == 1, "the console's marker line must be in tests/nlu_test.yml exactly once"
    curated = yaml.safe_load(curated_part())
    assert str(curated["version"]) == "3.1"
    assert read_examples(curated_part()), "the hand-curated part above the marker is empty"


def test_every_intent_with_training_data_has_enough_test_messages() -> None:
    trained = Counter(ex.intent for ex in training_examples())
    tested = Counter(ex.intent for ex in read_examples(curated_part()))
    short = {intent: tested[intent] for intent in trained if tested[intent] < MIN_PER_INTENT}
    assert not short, f"intents with fewer than {MIN_PER_INTENT} hand-written test messages: {short}"


def test_test_intents_and_entities_exist_in_the_domain() -> None:
    dom = domain()
    examples = read_examples(TEST_SET.read_text(encoding="utf-8"))
    unknown_intents = {ex.intent for ex in examples} - names(dom["intents"])
    assert not unknown_intents, f"intents not in domain.yml: {sorted(unknown_intents)}"
    unknown_entities = {entity for ex in examples for entity, _ in ex.entities} - names(dom["entities"])
    assert not unknown_entities, f"entities not in domain.yml: {sorted(unknown_entities)}"


def test_no_test_message_is_in_the_training_data() -> None:
    trained: dict[str, Example] = {}
    for ex in training_examples():
        for key in group_keys(ex.text):
            trained.setdefault(key, ex)
    leaks = sorted({(ex.text, trained[key].text) for ex in read_examples(TEST_SET.read_text(encoding="utf-8"))
                    for key in group_keys(ex.text) if key in trained})
    assert not leaks, f"test messages that are also training examples (test, training): {leaks}"


def test_curated_messages_are_distinct() -> None:
    seen: dict[str, str] = {}
    repeated = []
    for ex in read_examples(curated_part()):
        keys = group_keys(ex.text)
        repeated += [(seen[key], ex.text) for key in keys if key in seen]
        seen.update(dict.fromkeys(keys, ex.text))
    assert not repeated, f"near-identical test messages: {sorted(set(repeated))}"


def test_catalog_entities_have_catalog_values() -> None:
    lookups = catalog_values()
    trained_values = {value.lower() for ex in training_examples() for entity, value in ex.entities
                      if entity in CATALOG_ENTITIES}
    wrong = [(ex.text, entity, value) for ex in read_examples(curated_part()) for entity, value in ex.entities
             if entity in CATALOG_ENTITIES and value.lower() not in lookups.get(entity, set()) | trained_values]
    assert not wrong, f"catalog entities with values that are not in data/nlu/lookups.yml: {wrong}"


_RASA_DUMP = """
import json, sys
from rasa.shared.nlu.training_data.loading import load_data
out = {}
for name in sys.argv[1:]:
    data = load_data(name)
    out[name] = [{"intent": m.get("intent"), "text": m.get("text"),
                  "entities": [[e["entity"], str(e["value"]), m.get("text")[e["start"]:e["end"]]]
                               for e in m.get("entities") or []]}
                 for m in data.intent_examples]
print("NLU-DUMP " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def rasa_loaded() -> dict[str, list[dict[str, Any]]]:
    assert RASA_PYTHON.exists(), f"the Rasa venv is missing ({RASA_PYTHON}): run `make` first"
    done = subprocess.run([str(RASA_PYTHON), "-c", _RASA_DUMP, str(TEST_SET), str(NLU_DIR)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = [line for line in done.stdout.splitlines() if line.startswith("NLU-DUMP ")]
    assert done.returncode == 0 and lines, done.stderr[-4000:]
    return json.loads(lines[-1][len("NLU-DUMP "):])  # type: ignore[no-any-return]


def test_rasa_loads_the_test_set_as_written(rasa_loaded: dict[str, list[dict[str, Any]]]) -> None:
    loaded = rasa_loaded[str(TEST_SET)]
    ours = read_examples(TEST_SET.read_text(encoding="utf-8"))
    assert [(m["intent"], m["text"]) for m in loaded] == [(ex.intent, ex.text) for ex in ours]
    assert [tuple((entity, value) for entity, value, _ in m["entities"]) for m in loaded] == \
        [ex.entities for ex in ours]
    # Rasa's offsets point at the marked words
    spans = [(span, ex.text) for m, ex in zip(loaded, ours, strict=True) for _, _, span in m["entities"]]
    assert all(span and span in text for span, text in spans)


def test_disjointness_sees_what_rasa_trains_on(rasa_loaded: dict[str, list[dict[str, Any]]]) -> None:
    """The parser behind the disjointness check reads data/nlu exactly as Rasa does."""
    loaded = Counter((m["intent"], m["text"]) for m in rasa_loaded[str(NLU_DIR)])
    assert loaded == Counter((ex.intent, ex.text) for ex in training_examples())


@pytest.mark.parametrize("name", ["nlu_informal.yml", "nlu_dev.yml", "offtopic.yml"])
def test_the_other_held_out_sets_are_not_in_the_training_data(name: str) -> None:
    """The informal, dev and off-topic sets (bench nlu, the gate) share no text with the training data, and
    use only the domain's intents."""
    trained: dict[str, Example] = {}
    for ex in training_examples():
        for key in group_keys(ex.text):
            trained.setdefault(key, ex)
    path = ROOT / "tests" / name
    if name == "offtopic.yml":
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        texts = [str(m) for split in ("dev", "test") for messages in data[split].values() for m in messages]
        assert len(texts) >= 400
    else:
        examples = read_examples(path.read_text(encoding="utf-8"))
        texts = [ex.text for ex in examples]
        assert {ex.intent for ex in examples} <= names(domain()["intents"])
    leaks = sorted({(text, trained[key].text) for text in texts for key in group_keys(text) if key in trained})
    assert not leaks, f"{name}: messages that are also training examples (held out, training): {leaks}"
