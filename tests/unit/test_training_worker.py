"""The trainer service (SHOP_TRAINING_RUNNER=worker): the console and `model train` queue a job, and
`python -m bot model worker` runs it in its own process. Each test has its own SQLite database; a full
training is in tests/browser/test_console_e2e.py, so the worker here runs a job whose Rasa is missing and must
report that."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from bot.clock import utcnow
from bot.db import get_engine, migrate
from bot.training import jobs, registry
from bot.training.tables import FAILED, QUEUED, WAITING_FOR_TRAINER
from bot.training.workspace import Workspace
from tests.conftest import ROOT, copy_training_inputs


@pytest.fixture
def fresh(tmp_path: Path) -> tuple[str, Workspace]:
    url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    migrate(url)
    return url, Workspace(root=copy_training_inputs(tmp_path / "root"), versions_dir=tmp_path / "models" / "rasa"
                          / "versions")


def test_a_queued_job_goes_to_exactly_one_trainer(fresh: tuple[str, Workspace]) -> None:
    url, workspace = fresh
    with Session(get_engine(url), expire_on_commit=False) as session:
        row = jobs.start(session, workspace, user_id=None, author="lead", for_trainer=True)
        session.commit()
        assert row.state == QUEUED and row.stage == WAITING_FOR_TRAINER
        assert jobs.claim_next(session, "trainer-a") == row.version
        session.commit()
        assert jobs.claim_next(session, "trainer-b") is None  # taken
        session.refresh(row)
        assert row.stage == "starting on trainer trainer-a" and row.running


def test_a_job_started_next_to_the_gateway_is_not_taken_by_a_trainer(fresh: tuple[str, Workspace]) -> None:
    url, workspace = fresh
    with Session(get_engine(url), expire_on_commit=False) as session:
        jobs.start(session, workspace, user_id=None, author="lead")
        session.commit()
        assert jobs.claim_next(session, "trainer-a") is None


def test_a_job_no_trainer_picks_up_fails_and_says_why(fresh: tuple[str, Workspace]) -> None:
    url, workspace = fresh
    with Session(get_engine(url), expire_on_commit=False) as session:
        row = jobs.start(session, workspace, user_id=None, author="lead", for_trainer=True,
                         now=utcnow() - timedelta(minutes=3))
        session.commit()
        assert registry.reap_stale(session, utcnow()) == 1
        session.commit()
        session.refresh(row)
        assert row.state == FAILED and row.running is None and "No trainer service picked the job up" in row.error


def test_the_trainer_service_runs_what_model_train_queued(fresh: tuple[str, Workspace], tmp_path: Path) -> None:
    url, workspace = fresh
    missing_rasa = tmp_path / "no-rasa-venv" / "bin" / "rasa"
    env = {**os.environ, "DATABASE_URL": url, "SHOP_TRAINING_ROOT": str(workspace.root),
           "SHOP_MODELS_DIR": str(tmp_path / "models"), "SHOP_TRAINING_RUNNER": "worker", "RASA_BIN": str(missing_rasa)}
    python = str(ROOT / ".venv" / "bin" / "python")
    queued = subprocess.run([python, "-m", "bot", "model", "train", "--no-wait"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert queued.returncode == 0, queued.stderr
    found = re.search(r"version (\d+) is queued for the trainer service", queued.stdout)
    assert found, queued.stdout  # (version 1 may be the repository's model, registered as the baseline)
    version = int(found.group(1))
    with Session(get_engine(url)) as session:
        row = registry.get_version(session, version)
        assert row is not None and row.state == QUEUED and row.stage == WAITING_FOR_TRAINER

    alive = tmp_path / "trainer.alive"
    worker = subprocess.run([python, "-m", "bot", "model", "worker", "--once", "--alive-file", str(alive)], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=300)
    assert worker.returncode == 0, worker.stderr
    assert alive.exists()  # what the container's health check reads
    assert "ran 1 training job(s)" in worker.stdout
    with Session(get_engine(url)) as session:
        row = registry.get_version(session, version)
        assert row is not None and row.state == FAILED and row.running is None
        assert str(missing_rasa) in (row.error or ""), row.error  # the job ran, in its own process, and said why
        assert row.pid is not None and row.pid != os.getpid()
        assert "exported 0 training and 0 test examples from the console" in (row.log_tail or ""), row.log_tail
    assert f"training job {version} failed" in (workspace.version_dir(version) / "job.log").read_text()
    again = subprocess.run([python, "-m", "bot", "model", "worker", "--once"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "ran 0 training job(s)" in again.stdout
