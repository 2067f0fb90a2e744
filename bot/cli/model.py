"""``python -m bot model ...``: train, list, activate and roll back model versions."""

from __future__ import annotations

import getpass
import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn
from sqlalchemy import select

from bot.cli.output import fail, print_json
from bot.clock import utcnow
from bot.config import get_settings
from bot.db import migrate, session_scope
from bot.training import jobs, rasa_model, registry
from bot.training.activation import ActivationError, activate
from bot.training.tables import READY, ModelVersion
from bot.training.workspace import Workspace

model_app = typer.Typer(help="Rasa model: training, evaluation gate, versions, activation", no_args_is_help=True)


def _workspace() -> Workspace:
    return Workspace.from_settings(get_settings())


@model_app.command("ensure")
def model_ensure(force: bool = False) -> None:
    """Train the model when the repository's training data or config has no registered version yet.

    A version the console trained from the same data counts (and so does a lead's choice of the active version:
    a rollback is kept). A newly trained model is registered and activated.
    """
    migrate()
    workspace = _workspace()
    current = rasa_model.fingerprint(workspace.root)
    with session_scope() as session:
        registry.ensure_baseline(session, workspace, utcnow())
        known = session.scalar(select(ModelVersion).where(ModelVersion.data_fingerprint == current,
                                                          ModelVersion.state == READY).limit(1))
        active = registry.active_version(session)
    if known is not None and not force:
        serving = f"version {active.version} is active" if active else "no version is active"
        typer.echo(f"rasa model is up to date (version {known.version}); {serving}")
        return
    trained = rasa_model.train(force=force)
    with session_scope() as session:
        row = registry.ensure_baseline(session, workspace, utcnow())
        if row is None:
            row = registry.register_trained(session, workspace, rasa_model.model_path(), current, author="make model",
                                            note="Trained by `make model` after the repository's data changed.",
                                            now=utcnow(), activate=True)
        version = row.version
    typer.echo(f"rasa model {'trained' if trained else 'registered'}: version {version} is active "
               f"({rasa_model.model_path()})")


@model_app.command("train")
def model_train(
    note: Annotated[str, typer.Option(help="what changed, shown in the registry")] = "",
    activate: Annotated[bool, typer.Option(help="activate the new model when it passes the gate")] = False,
    wait: Annotated[bool, typer.Option(help="wait for the job and print its result")] = True,
    from_scratch: Annotated[bool, typer.Option(help="train anew instead of fine-tuning the active model")] = False,
) -> None:
    """Export the leads' labels, train a new versioned model in the background and evaluate it (gate)."""
    migrate()
    workspace = _workspace()
    for_trainer = get_settings().training_runner == "worker"
    try:
        with session_scope() as session:
            row = jobs.start(session, workspace, user_id=None, author=f"{getpass.getuser()} (command line)", note=note,
                             from_scratch=from_scratch, for_trainer=for_trainer)
            version = row.version
    except jobs.TrainingBusy as exc:
        fail(str(exc), 3)
    if for_trainer:
        typer.echo(f"version {version} is queued for the trainer service")
    else:
        jobs.launch(version, workspace)
        typer.echo(f"training version {version} (log: {workspace.version_dir(version)})")
    if not wait:
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  transient=True) as bar:
        task = bar.add_task(f"v{version}: starting", total=1.0)
        row = jobs.wait(version, on_update=lambda r: bar.update(task, completed=r.progress,
                                                                 description=f"v{version}: {r.stage}"))
    _print_result(row.version)
    if row.state != "ready":
        raise typer.Exit(1)
    if activate:
        if not row.gate.get("passed"):
            typer.echo("not activated: the gate blocked it (activate it with --reason to override)", err=True)
            raise typer.Exit(4)
        model_activate(row.version, reason="")


@model_app.command("worker")
def model_worker(
    once: Annotated[bool, typer.Option(help="run the jobs waiting now, then stop")] = False,
    poll: Annotated[float, typer.Option(min=0.2, help="seconds between looks for a queued job")] = 2.0,
    alive_file: Annotated[Path | None, typer.Option(help="touched every few seconds while healthy")] = None,
) -> None:
    """The trainer service: runs the trainings the console or `model train` queue (SHOP_TRAINING_RUNNER=worker).

    It needs the Rasa venv (RASA_BIN) and the training inputs (SHOP_TRAINING_ROOT); one job runs at a time.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s - %(message)s")
    migrate()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        ran = jobs.work(_workspace(), once=once, poll_s=poll, stop=stop, alive_file=alive_file)
    except KeyboardInterrupt:
        return
    typer.echo(f"ran {ran} training job(s)")


@model_app.command("run-job", hidden=True)
def model_run_job(version: int) -> None:
    """The training job's process (started by the console or `model train`)."""
    row = jobs.run_job(version)
    raise typer.Exit(0 if row.state == "ready" else 1)


def _print_result(version: int) -> None:
    with session_scope() as session:
        row = registry.get_version(session, version)
        assert row is not None
        summary = registry.summary(row)
    print_json({k: summary[k] for k in ("version", "state", "examples", "metrics", "baseline_version",
                                        "baseline_metrics", "gate", "error")})


@model_app.command("list")
def model_list() -> None:
    """Every version: state, who and when, test-set scores, gate, active."""
    migrate()
    with session_scope() as session:
        registry.ensure_baseline(session, _workspace(), utcnow())
        registry.backfill_metrics(session)
        rows = [registry.summary(r) for r in session.scalars(select(ModelVersion).order_by(ModelVersion.version))]
    if not rows:
        typer.echo("no model versions yet: make model")
        return
    typer.echo(f"{'ver':>4} {'state':<10} {'created':<21} {'by':<24} {'acc':>6} {'macroF1':>7} {'gate':<8} active")
    for r in rows:
        m = r["metrics"]
        gate = {"first_model": "first", "nothing_to_compare": "no base"}.get(r["gate"].get("verdict", ""),
                                                                           r["gate"].get("verdict", ""))
        typer.echo(f"{r['version']:>4} {r['state']:<10} {r['created_at'] or '':<21} {r['created_by'][:24]:<24} "
                   f"{m.get('accuracy', ''):>6} {m.get('macro_f1', ''):>7} {gate:<8} {'*' if r['active'] else ''}")


@model_app.command("activate")
def model_activate(
    version: int,
    reason: Annotated[str, typer.Option(help="required to override a blocked gate or to roll back")] = "",
) -> None:
    """Load a version into the running Rasa server (no restart) and record it as active."""
    settings = get_settings()
    try:
        done = activate(version, rasa_url=settings.rasa_servers, user_id=None,
                        author=f"{getpass.getuser()} (command line)", reason=reason, token=settings.rasa_api_token)
    except ActivationError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        for line in exc.reasons:
            typer.echo(f"  - {line}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"version {done.version} is active ({done.kind}; previous: {done.previous})")


@model_app.command("rollback")
def model_rollback(version: int, reason: Annotated[str, typer.Option(help="why (recorded)")]) -> None:
    """Go back to an earlier version (same as activate, reason required)."""
    model_activate(version, reason=reason)
