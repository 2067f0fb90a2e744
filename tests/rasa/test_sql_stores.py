"""Rasa's tracker store as the stack configures it (rasa_addons/sql_stores.py): one transaction per saved turn
and a write-ahead log on SQLite, storing and broadcasting exactly what Rasa's own SQLTrackerStore does."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import ROOT

RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"


def test_store_keeps_and_broadcasts_what_rasas_own_store_does(tmp_path) -> None:  # type: ignore[no-untyped-def]
    if not RASA_PYTHON.exists():
        pytest.fail("the Rasa venv is missing: run `make setup`")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([str(RASA_PYTHON), "tests/rasa/sql_stores_rasa.py", str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    ours, reference = result["ours"], result["reference"]
    # 1 listen at creation, 5 turns of 5 events, 1 message on an unsaved copy, a new session (2) and a turn
    assert len(reference["events"]) == 34
    for key in ("events", "broker", "latest", "full"):
        assert ours[key] == reference[key], key
    published = [[sender, {k: v for k, v in event.items() if k != "sender_id"}] for sender, event in ours["broker"]]
    assert published == [row[:1] + row[-1:] for row in ours["events"]]  # each stored event published once
    assert [e["event"] for e in ours["latest"][:2]] == ["session_started", "action"]
    assert ours["journal"] == "wal"
    assert ours["stored_attr"] == len(ours["latest"])
    print(f"\ntracker store, per turn (retrieve + save): {result['ours_ms']:.2f} ms ours, "
          f"{result['reference_ms']:.2f} ms Rasa's SQLTrackerStore")
