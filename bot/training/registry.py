"""The model registry: which versions exist, which one is active, who did what and when."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.training import gate, rasa_model
from bot.training.tables import FAILED, QUEUED, READY, WAITING_FOR_TRAINER, ModelActivation, ModelVersion
from bot.training.workspace import Workspace

STALE_AFTER = timedelta(seconds=120)  # a job's heartbeat is written every 10 s


def iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def active_version(session: Session) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.active.is_(True)).limit(1))


def running_version(session: Session) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.running.is_(True)).limit(1))


def get_version(session: Session, version: int) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.version == version))


def next_version(session: Session) -> int:
    return int(session.scalar(select(func.max(ModelVersion.version))) or 0) + 1


def _link_or_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        dest.unlink()
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def register_trained(session: Session, workspace: Workspace, archive: Path, fingerprint: str, *, author: str,
                     note: str, now: datetime, activate: bool, version: int | None = None) -> ModelVersion:
    """Adds a model trained outside the console (``make model``) as ``version`` (default: the next one)."""
    version = version or next_version(session)
    dest = workspace.archive(version)
    _link_or_copy(archive, dest)
    row = ModelVersion(version=version, path=str(dest), state=READY, running=None, stage="ready", progress=1.0,
                       created_at=now, finished_at=now, created_by_name=author, note=note,
                       data_fingerprint=fingerprint)
    session.add(row)
    session.flush()
    if activate:
        mark_active(session, row, kind="baseline", author=author, user_id=None, reason=note, now=now)
    return row


def ensure_baseline(session: Session, workspace: Workspace, now: datetime) -> ModelVersion | None:
    """With an empty registry, the model ``make model`` trained becomes version 1, active."""
    if session.scalar(select(func.count(ModelVersion.id))):
        return None
    archive = rasa_model.model_path()
    if not archive.exists():
        return None
    stamp = rasa_model.model_dir() / "fingerprint.txt"
    fingerprint = stamp.read_text().strip() if stamp.exists() else ""
    try:
        with session.begin_nested():  # two requests may see the empty registry at once (the console polls)
            return register_trained(session, workspace, archive, fingerprint, author="make model",
                                    note="The model `make model` trained from the repository's data.", now=now,
                                    activate=True, version=1)  # only ever 1: a second one collides
    except IntegrityError:
        return None  # the other one registered it


ACTIVE_ARCHIVE = "active.tar.gz"


def publish_active(archive: Path) -> Path:
    """``models/rasa/active.tar.gz``: a copy of the active version's archive, replaced atomically, for Rasa
    servers that (re)start from a fixed path (docker-compose) to come up with the model the leads chose."""
    target = archive.parent.parent.parent / ACTIVE_ARCHIVE  # versions/vN/shop-vN.tar.gz -> rasa/active.tar.gz
    partial = target.with_suffix(".partial")
    shutil.copyfile(archive, partial)
    os.replace(partial, target)
    return target


def mark_active(session: Session, row: ModelVersion, *, kind: str, author: str, user_id: int | None, reason: str,
                now: datetime) -> None:
    previous = active_version(session)
    session.execute(update(ModelVersion).where(ModelVersion.active.is_(True)).values(active=False))
    row.active = True
    row.activated_at = now
    session.add(ModelActivation(version=row.version, previous_version=previous.version if previous else None,
                                kind=kind, reason=reason, user_id=user_id, author=author, at=now))
    session.flush()
    if row.path and Path(row.path).exists():
        publish_active(Path(row.path))


def reap_stale(session: Session, now: datetime) -> int:
    """Marks jobs whose process stopped writing its heartbeat as failed (it crashed or the host restarted)."""
    count = 0
    for row in session.scalars(select(ModelVersion).where(ModelVersion.running.is_(True))):
        seen = row.heartbeat_at or row.created_at
        if now - seen > STALE_AFTER:
            waiting = row.state == QUEUED and row.stage == WAITING_FOR_TRAINER
            row.state, row.running, row.finished_at = FAILED, None, now
            row.error = row.error or ("No trainer service picked the job up within two minutes: start one "
                                      "(`python -m bot model worker`; in docker-compose the `trainer` service)."
                                      if waiting else
                                      "The training process stopped unexpectedly (no heartbeat for two minutes).")
            count += 1
    session.flush()
    return count


def serving_model(session: Session) -> Path | None:
    """The archive Rasa should load: the active version's, when it still exists."""
    row = active_version(session)
    if row is not None and row.path and Path(row.path).exists():
        return Path(row.path)
    return None


def activations(session: Session, version: int) -> list[dict[str, Any]]:
    rows = session.scalars(select(ModelActivation).where(ModelActivation.version == version)
                           .order_by(ModelActivation.at.desc(), ModelActivation.id.desc()))
    return [{"kind": a.kind, "author": a.author, "at": iso(a.at), "reason": a.reason,
             "previous_version": a.previous_version} for a in rows]


def decision(row: ModelVersion) -> dict[str, Any]:
    """The gate's decision for a version, in its current shape (:func:`bot.training.gate.stored`); version 1
    without one (the model `make model` trained, registered before any training) is the first model."""
    found = gate.stored(row.gate)
    if not found and row.version == 1 and row.state == READY and row.baseline_version is None:
        return gate.first_model()
    return found


def record_baseline_metrics(session: Session, version: int, metrics: dict[str, Any], evaluated_for: int) -> bool:
    """Keeps the scores a training measured for its baseline as that version's own metrics, when the version
    has none of its own (version 1, or one `make model` registered: nobody evaluated them when they were made).
    A later evaluation as a baseline replaces an earlier one (the test set grows with the leads' labels)."""
    row = get_version(session, version)
    if row is None or not metrics or (row.metrics and "evaluated_as_baseline_of" not in row.metrics):
        return False
    if (row.metrics or {}).get("evaluated_as_baseline_of", 0) > evaluated_for:
        return False
    row.metrics = {**metrics, "evaluated_as_baseline_of": evaluated_for}
    row.test_fingerprint = str(metrics.get("test_fingerprint") or row.test_fingerprint or "")
    session.flush()
    return True


def backfill_metrics(session: Session) -> int:
    """Versions without metrics of their own get the newest evaluation a later training made of them as its
    baseline (for registries from before trainings recorded it)."""
    count = 0
    for row in session.scalars(select(ModelVersion).where(ModelVersion.state == READY)):
        if row.metrics:
            continue
        later = session.scalar(select(ModelVersion).where(ModelVersion.baseline_version == row.version)
                               .order_by(ModelVersion.version.desc()).limit(1))
        if later is not None and later.baseline_metrics:
            count += record_baseline_metrics(session, row.version, later.baseline_metrics, later.version)
    return count


def summary(row: ModelVersion) -> dict[str, Any]:
    metrics = {k: row.metrics[k] for k in ("accuracy", "macro_f1", "examples", "evaluated_as_baseline_of")
               if k in (row.metrics or {})}
    baseline = {k: row.baseline_metrics[k] for k in ("accuracy", "macro_f1", "examples")
                if k in (row.baseline_metrics or {})}
    verdict = {k: v for k, v in decision(row).items() if k != "intents"}  # the rows' decisions: in detail()
    return {
        "version": row.version, "state": row.state, "stage": row.stage, "progress": round(row.progress, 3),
        "created_at": iso(row.created_at), "finished_at": iso(row.finished_at), "created_by": row.created_by_name,
        "note": row.note, "examples": row.examples, "metrics": metrics, "baseline_version": row.baseline_version,
        "baseline_metrics": baseline, "gate": verdict, "active": row.active,
        "activated_at": iso(row.activated_at), "error": row.error, "path": row.path,
        "data_fingerprint": row.data_fingerprint, "test_fingerprint": row.test_fingerprint,
        "training": (row.metrics or {}).get("training", "from scratch" if row.from_scratch else ""),
    }


def detail(session: Session, row: ModelVersion) -> dict[str, Any]:
    """A version with its per-intent rows; each row carries the gate's own decision for that intent
    (``gate``: pass, within_noise or fail, and its text), so the page shows what the gate decided."""
    verdict = decision(row)
    decided = verdict.get("intents") or {}
    per_intent = []
    new = (row.metrics or {}).get("per_intent", {})
    old = (row.baseline_metrics or {}).get("per_intent", {})
    for intent in sorted(set(new) | set(old)):
        said = decided.get(intent) or {}
        per_intent.append({"intent": intent, "f1": new.get(intent, {}).get("f1"),
                           "baseline_f1": old.get(intent, {}).get("f1"),
                           "support": (new.get(intent) or old.get(intent) or {}).get("support", 0),
                           "gate": said.get("status"), "gate_text": said.get("text", "")})
    confusion = (row.metrics or {}).get("confusion_png")
    return {**summary(row), "gate": verdict, "per_intent": per_intent, "changed": row.changed or [],
            "log_tail": row.log_tail,
            "confusion_url": f"/admin/models/{row.version}/confusion.png" if confusion else None,
            "activations": activations(session, row.version)}
