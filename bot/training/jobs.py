"""Training jobs: export the leads' labels, train a new versioned model, evaluate it, apply the gate.

A job is a ``model_versions`` row plus a process (``python -m bot model run-job N``) that the console or the
CLI starts. The row's unique ``running`` flag lets only one job exist at a time, across processes and
machines. The process writes its stage, progress and a heartbeat into the row; a row whose heartbeat stops
is marked failed (:func:`bot.training.registry.reap_stale`). Rasa trains with a lower CPU priority so that
the live assistant keeps answering.
"""

from __future__ import annotations

import io
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import PROJECT_ROOT
from bot.clock import utcnow
from bot.config import Settings, get_settings
from bot.db import rows_affected, session_scope
from bot.training import evaluation, gate, registry
from bot.training.rasa_model import fingerprint, rasa_env, rasa_executable
from bot.training.tables import EVALUATING, FAILED, QUEUED, READY, TRAINING, WAITING_FOR_TRAINER, ModelVersion
from bot.training.workspace import Workspace

log = logging.getLogger("bot.training")
HEARTBEAT_S = 10.0
# Share of the progress bar per step: training components with epochs get their own span.
SPANS = {"DIETClassifier": (0.05, 0.84)}  # DIET takes ~85% of the time
EVALUATION_SPAN = (0.85, 1.0)
EPOCHS = re.compile(r"Epochs:\s+(\d+)%")
COMPONENT = re.compile(r"(Starting to train|Restored) component '([A-Za-z0-9_.]+)'")
NEW_INTENT_REPLY = "utter_lead_intent_pending"


class TrainingBusy(Exception):
    def __init__(self, version: int) -> None:
        super().__init__(f"Version {version} is training right now; only one training runs at a time.")
        self.version = version


def start(session: Session, workspace: Workspace, *, user_id: int | None, author: str, note: str = "",
          from_scratch: bool = False, for_trainer: bool = False, now: datetime | None = None) -> ModelVersion:
    """Creates the job's row (queued); :func:`launch` starts its process, or with ``for_trainer`` a
    trainer service (:func:`work`) picks it up."""
    now = now or utcnow()
    registry.reap_stale(session, now)
    registry.ensure_baseline(session, workspace, now)
    busy = registry.running_version(session)
    if busy is not None:
        raise TrainingBusy(busy.version)
    row = ModelVersion(version=registry.next_version(session), state=QUEUED, running=True,
                       stage=WAITING_FOR_TRAINER if for_trainer else "waiting to start",
                       created_at=now, heartbeat_at=now, created_by=user_id, created_by_name=author,
                       note=note.strip()[:2000], from_scratch=from_scratch)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:  # another process started one between our check and insert
        busy = registry.running_version(session)
        raise TrainingBusy(busy.version if busy else 0) from exc
    session.flush()
    return row


def launch(version: int, workspace: Workspace) -> subprocess.Popen[bytes]:
    """Starts the job's process in its own session, so it outlives a restart of whoever started it."""
    folder = workspace.version_dir(version)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "job.log").open("ab") as sink:
        return subprocess.Popen([sys.executable, "-m", "bot", "model", "run-job", str(version)], cwd=PROJECT_ROOT,
                                stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def claim_next(session: Session, owner: str, now: datetime | None = None) -> int | None:
    """The oldest job waiting for a trainer, taken by ``owner`` (one conditional UPDATE: two trainers never
    take the same job); ``None`` when there is none."""
    now = now or utcnow()
    waiting = select(ModelVersion.version).where(ModelVersion.state == QUEUED, ModelVersion.running.is_(True),
                                                 ModelVersion.stage == WAITING_FOR_TRAINER)
    version = session.scalar(waiting.order_by(ModelVersion.version).limit(1))
    if version is None:
        return None
    taken = session.execute(update(ModelVersion).where(
        ModelVersion.version == version, ModelVersion.state == QUEUED, ModelVersion.stage == WAITING_FOR_TRAINER,
    ).values(stage=f"starting on trainer {owner}"[:200], heartbeat_at=now))
    return version if rows_affected(taken) == 1 else None


def work(workspace: Workspace, *, once: bool = False, poll_s: float = 2.0,
         stop: threading.Event | None = None, alive_file: Path | None = None) -> int:
    """The trainer service: runs queued jobs one after another, each in its own process as :func:`launch`
    starts them. With ``once`` it returns when nothing waits. Returns how many jobs it ran. ``alive_file`` is
    touched at least every 10 s while the loop is healthy (the container's health check reads its age)."""
    owner = f"{socket.gethostname()}:{os.getpid()}"
    stop = stop or threading.Event()
    ran = 0

    def beat() -> None:
        if alive_file is not None:
            alive_file.parent.mkdir(parents=True, exist_ok=True)
            alive_file.touch()

    log.info("trainer %s is waiting for training jobs", owner)
    while not stop.is_set():
        beat()
        with session_scope() as session:
            registry.reap_stale(session, utcnow())
            version = claim_next(session, owner)
        if version is None:
            if once:
                break
            stop.wait(poll_s)
            continue
        log.info("trainer %s runs version %s", owner, version)
        proc = launch(version, workspace)
        while True:
            try:
                code = proc.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                beat()
        log.info("version %s finished (exit %s)", version, code)
        ran += 1
    return ran


class _Progress:
    """Writes stage/progress/heartbeat of one row, at most once a second (plus every heartbeat)."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.lines: deque[str] = deque(maxlen=60)
        self._last = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self) -> _Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _write(self, **values: Any) -> None:
        with self._lock, session_scope() as session:
            row = registry.get_version(session, self.version)
            if row is None:
                return
            for key, value in values.items():
                setattr(row, key, value)
            row.heartbeat_at = utcnow()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._write()
            except Exception:
                log.exception("heartbeat of version %s failed", self.version)

    def update(self, stage: str | None = None, progress: float | None = None, force: bool = False,
               **extra: Any) -> None:
        now = time.monotonic()
        if not force and now - self._last < 1.0:
            return
        self._last = now
        values: dict[str, Any] = dict(extra)
        if stage is not None:
            values["stage"] = stage[:200]
        if progress is not None:
            values["progress"] = max(0.0, min(1.0, progress))
        values["log_tail"] = "\n".join(self.lines)
        self._write(**values)


def _overlay(workspace: Workspace, version: int, new_intents: list[str]) -> tuple[Path, list[Path]]:
    """Domain and rules for intents a lead created: the model knows them and answers them honestly
    (``utter_lead_intent_pending``) until someone writes the real answer into domain.yml and the rules."""
    if not new_intents:
        return workspace.domain, []
    folder = workspace.version_dir(version) / "overlay"
    (folder / "domain").mkdir(parents=True, exist_ok=True)
    (folder / "rules").mkdir(parents=True, exist_ok=True)
    (folder / "domain" / "domain.yml").write_bytes(workspace.domain.read_bytes())
    (folder / "domain" / "lead_intents.yml").write_text(yaml.safe_dump({
        "version": "3.1", "intents": list(new_intents),
        "responses": {NEW_INTENT_REPLY: [{"text": "Thanks for asking! I'm still learning to help with that. "
                                                  "You can ask me something else, or say \"talk to a person\"."}]},
    }, sort_keys=False))
    (folder / "rules" / "lead_intents.yml").write_text(yaml.safe_dump({
        "version": "3.1",
        "rules": [{"rule": f"answer the new intent {name}", "steps": [{"intent": name}, {"action": NEW_INTENT_REPLY}]}
                  for name in new_intents],
    }, sort_keys=False))
    return folder / "domain", [folder / "rules"]


def _train(workspace: Workspace, version: int, domain: Path, extra_data: list[Path], progress: _Progress,
           finetune: tuple[Path, float] | None = None) -> Path:
    """``rasa train`` into the version's folder; with ``finetune`` (archive, epoch fraction) it continues
    from that model (Rasa's incremental training), which is faster and changes fewer predictions."""
    archive = workspace.archive(version)
    cmd = [str(rasa_executable()), "train", "--fixed-model-name", archive.name.removesuffix(".tar.gz"),
           "--out", str(archive.parent), "--config", str(workspace.config), "--domain", str(domain),
           "--data", *(str(p) for p in [*workspace.data_dirs, *extra_data] if p.exists())]
    if finetune is not None:
        cmd += ["--finetune", str(finetune[0]), "--epoch-fraction", str(finetune[1])]
    span, stage = (0.0, 0.05), "preparing"
    archive.parent.mkdir(parents=True, exist_ok=True)
    with (workspace.version_dir(version) / "train.log").open("ab") as sink:
        proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=rasa_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, preexec_fn=lambda: os.nice(10))
        stdout = proc.stdout
        assert isinstance(stdout, io.BufferedReader)  # a pipe with the default buffering
        pending = b""
        for chunk in iter(lambda: stdout.read1(4096), b""):
            sink.write(chunk)
            pending += chunk
            *lines, pending = re.split(rb"[\r\n]", pending)
            for raw in lines:
                line = raw.decode(errors="replace").strip()
                if not line:
                    continue
                found = COMPONENT.search(line)
                if found:
                    name = found.group(2).rsplit(".", 1)[-1]
                    verb = "training" if found.group(1).startswith("Starting") else "reusing (cached)"
                    stage = f"{verb} {name}"
                    span = SPANS.get(name, (span[1], span[1]))
                    progress.lines.append(line[-300:])
                    progress.update(stage, span[0], force=True)
                    continue
                epochs = EPOCHS.search(line)
                if epochs:
                    share = int(epochs.group(1)) / 100
                    progress.update(stage, span[0] + (span[1] - span[0]) * share)
                elif "ERROR" in line or "Error" in line or "Your Rasa model is trained" in line:
                    progress.lines.append(line[-300:])
        code = proc.wait()
    if code != 0 or not archive.exists():
        raise RuntimeError(f"rasa train failed with exit code {code}: see {workspace.version_dir(version)}/train.log")
    return archive


def _train_version(workspace: Workspace, version: int, domain: Path, extra: list[Path], progress: _Progress,
                   base: tuple[int, Path] | None, fraction: float, from_scratch: bool) -> tuple[Path, str]:
    """Fine-tunes the active model when possible, else trains from scratch; returns (archive, how)."""
    if base is not None and not from_scratch and fraction < 1 and base[1].exists():
        try:
            archive = _train(workspace, version, domain, extra, progress, finetune=(base[1], fraction))
            return archive, f"fine-tuned from version {base[0]} ({fraction:g} of the epochs)"
        except RuntimeError:
            # Rasa refuses to fine-tune across a changed config or new labels (intents, entities, actions)
            progress.lines.append(f"fine-tuning version {base[0]} was not possible; training from scratch")
            progress.update("training from scratch", 0.05, force=True)
    return _train(workspace, version, domain, extra, progress), "trained from scratch"


def _evaluate(workspace: Workspace, row_version: int, archive: Path, test_fp: str
              ) -> tuple[evaluation.Scores, list[evaluation.Prediction], Path, dict[str, Any]]:
    """Scores on the test set (with Rasa's reports) and on the informal and off-topic sets (``held_out``)."""
    out = workspace.evaluation_dir(row_version, test_fp)
    cached = evaluation.cached_predictions(out)
    if cached is not None:
        scores, predictions = evaluation.score(cached), cached
    else:
        scores, predictions = evaluation.evaluate_model(archive, workspace.test_set, out)
    return scores, predictions, out, evaluation.score_held_out(archive, workspace.root, out)


def _conversation_tests(version: int, archive: Path, progress: _Progress) -> list[Any]:
    """Every saved conversation test played against the new archive in a scratch Rasa (bot.convtests.runner);
    the outcomes are recorded for the model's version and returned for the gate."""
    from bot.convtests import runner, store

    with session_scope() as session:
        tests = store.all_tests(session)
    if not tests:
        progress.lines.append("no saved conversation tests to play")
        return []
    progress.update("conversation tests", 0.96, force=True)
    started = time.monotonic()
    outcomes = runner.run_suite(tests, archive, progress=lambda done, total: progress.update(
        f"conversation tests ({done} of {total})", 0.96 + 0.03 * done / total))
    failed = sum(not o.passed for o in outcomes)
    progress.lines.append(f"played {len(outcomes)} saved conversation tests in {time.monotonic() - started:.0f}s: "
                          f"{len(outcomes) - failed} passed, {failed} failed")
    with session_scope() as session:
        store.record_outcomes(session, version, outcomes)
    return outcomes


def run_job(version: int, settings: Settings | None = None,
            export: Callable[[Session, Path], Any] | None = None) -> ModelVersion:
    """The job's work, in the job's process. Ends in state ``ready`` (with metrics and gate) or ``failed``."""
    settings = settings or get_settings()
    workspace = Workspace.from_settings(settings)
    limits = gate.GateLimits.from_settings(settings)
    if export is None:
        from bot.training.nlu_inbox import export_labels

        export = export_labels
    with session_scope() as session:
        row = registry.get_version(session, version)
        if row is None or not row.running:
            raise ValueError(f"version {version} is not a queued training job")
        row.pid, row.state, row.heartbeat_at = os.getpid(), TRAINING, utcnow()
        from_scratch = row.from_scratch
        active = registry.active_version(session)
        base = (active.version, Path(active.path)) if active is not None and active.path else None
    with _Progress(version) as progress:
        try:
            progress.update("exporting the leads' labels", 0.01, force=True)
            with session_scope() as session:
                exported = export(session, workspace.root)
            new_intents = list(getattr(exported, "new_intents", []))
            progress.lines.append(f"exported {exported.train_examples} training and {exported.test_examples} test "
                                  f"examples from the console" + (f"; new intents: {', '.join(new_intents)}"
                                                                  if new_intents else ""))
            data_fp = fingerprint(workspace.root)
            progress.update("training", 0.02, force=True, examples=int(exported.train_examples),
                            data_fingerprint=data_fp)
            domain, extra = _overlay(workspace, version, new_intents)
            archive, how = _train_version(workspace, version, domain, extra, progress, base,
                                          settings.finetune_epoch_fraction, from_scratch)
            progress.lines.append(how)
            progress.update("evaluating on the test set", EVALUATION_SPAN[0], force=True, path=str(archive),
                            state=EVALUATING)
            test_fp = evaluation.sets_fingerprint(workspace.held_out_sets)
            scores, predictions, out, held_out = _evaluate(workspace, version, archive, test_fp)
            metrics = {**scores.as_dict(), "held_out": held_out, "test_fingerprint": test_fp, "training": how,
                       "confusion_png": str(out / evaluation.CONFUSION_PNG)
                       if (out / evaluation.CONFUSION_PNG).exists() else None}
            baseline_version, baseline_metrics, changed = None, {}, []
            if base is not None and base[1].exists():
                progress.update(f"evaluating the active model (version {base[0]})", 0.93, force=True)
                base_scores, base_predictions, base_out, base_held_out = _evaluate(workspace, base[0], base[1],
                                                                                   test_fp)
                baseline_version, baseline_metrics = base[0], {**base_scores.as_dict(), "held_out": base_held_out,
                                                               "test_fingerprint": test_fp}
                changed = evaluation.changed_predictions(base_predictions, predictions)
                base_png = base_out / evaluation.CONFUSION_PNG
                with session_scope() as session:  # the baseline's own scores, when nobody evaluated it before
                    registry.record_baseline_metrics(
                        session, base[0], {**baseline_metrics, "confusion_png": str(base_png)
                                           if base_png.exists() else None}, version)
            conversations = (_conversation_tests(version, archive, progress) if settings.gate_conversation_tests
                             else None)
            verdict = gate.check(metrics, baseline_metrics or None, limits, changed, conversations)
            progress.lines.append(f"accuracy {scores.accuracy:.4f}, macro-F1 {scores.macro_f1:.4f}; gate "
                                  f"{verdict['verdict'].replace('_', ' ')}")
            progress.update("ready", 1.0, force=True, state=READY, running=None, finished_at=utcnow(),
                            metrics=metrics, test_fingerprint=test_fp, baseline_version=baseline_version,
                            baseline_metrics=baseline_metrics, changed=changed, gate=verdict)
        except Exception as exc:
            log.exception("training job %s failed", version)
            progress.lines.append(f"failed: {exc}")
            progress.update("failed", None, force=True, state=FAILED, running=None, finished_at=utcnow(),
                            error=str(exc)[:2000])
    with session_scope() as session:
        row = registry.get_version(session, version)
        assert row is not None
        return row


def wait(version: int, timeout: float = 3600.0, poll: float = 2.0,
         on_update: Callable[[ModelVersion], None] | None = None) -> ModelVersion:
    """Blocks until the job is no longer running (for the CLI and tests)."""
    deadline = time.monotonic() + timeout
    while True:
        with session_scope() as session:
            registry.reap_stale(session, utcnow())
            row = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
            if row is None:
                raise ValueError(f"no version {version}")
            if on_update is not None:
                on_update(row)
            if not row.running:
                return row
        if time.monotonic() > deadline:
            raise TimeoutError(f"version {version} still running after {timeout:.0f}s")
        time.sleep(poll)
