"""Putting a model version live, and rolling back, with no downtime.

Rasa's HTTP API (``PUT /model``) loads the new archive next to the one serving and then swaps them;
conversations live in the tracker store, so one in progress continues with the new model. The registry
is updated only after Rasa confirmed the swap. A version whose gate failed needs a reason (an override);
going back to an earlier version is a rollback and needs a reason too.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy.orm import Session

from bot.clock import utcnow
from bot.db import session_scope
from bot.training import registry
from bot.training.tables import READY

log = logging.getLogger("bot.training.activation")
_swap = threading.Lock()  # one swap at a time from this process
LOAD_TIMEOUT_S = 600.0


@dataclass
class ActivationError(Exception):
    code: str
    message: str
    status: int = 409
    reasons: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Activated:
    version: int
    previous: int | None
    kind: str


def _plan(session: Session, version: int, reason: str) -> tuple[Path, str, int | None]:
    row = registry.get_version(session, version)
    if row is None:
        raise ActivationError("not_found", f"There is no model version {version}.", 404)
    if row.state != READY or not row.path:
        raise ActivationError("not_ready", f"Version {version} is {row.state}; only a trained, evaluated model can "
                                           "be activated.")
    archive = Path(row.path)
    if not archive.exists():
        raise ActivationError("missing", f"The archive of version {version} is gone ({archive}).", 410)
    active = registry.active_version(session)
    if active is not None and active.version == version:
        raise ActivationError("already_active", f"Version {version} is already active.")
    if active is not None and version < active.version:
        if not reason:
            raise ActivationError("reason_required", f"Rolling back to version {version} needs a reason.", 400)
        return archive, "rollback", active.version
    verdict = row.gate or {}
    if verdict and not verdict.get("passed", False):
        if not reason:
            raise ActivationError("gate_failed", f"Version {version} did not pass the evaluation gate. Give a reason "
                                                 "to override it.", 409, list(verdict.get("reasons", [])))
        return archive, "override", active.version if active else None
    return archive, "activate", active.version if active else None


def load_into_rasa(rasa_url: str, archive: Path, token: str = "", timeout: float = LOAD_TIMEOUT_S) -> None:
    params = {"token": token} if token else None
    try:
        response = httpx.put(f"{rasa_url.rstrip('/')}/model", json={"model_file": str(archive.resolve())},
                             params=params, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ActivationError("rasa_unreachable", f"Rasa did not answer ({exc}); nothing was changed.", 502) from exc
    if response.status_code >= 300:
        raise ActivationError("rasa_refused", f"Rasa could not load the model (HTTP {response.status_code}: "
                                              f"{response.text[:300]}); nothing was changed.", 502)


def serving(rasa_url: str, token: str = "") -> str | None:
    """The archive file name Rasa says it serves, or None when it cannot be asked."""
    try:
        response = httpx.get(f"{rasa_url.rstrip('/')}/status", params={"token": token} if token else None,
                             timeout=3.0)
        return Path(str(response.json().get("model_file") or "")).name or None
    except (httpx.HTTPError, ValueError):
        return None


def load_everywhere(rasa_urls: list[str], archive: Path, previous: Path | None, token: str = "") -> None:
    """Loads ``archive`` into every Rasa server; if one fails, the ones already switched go back to
    ``previous`` so all replicas keep serving the same model."""
    switched: list[str] = []
    for url in rasa_urls:
        try:
            load_into_rasa(url, archive, token)
        except ActivationError as exc:
            for done in switched:
                if previous is not None:
                    try:
                        load_into_rasa(done, previous, token)
                    except ActivationError:
                        log.error("Rasa %s could not be switched back to %s", done, previous)
            exc.message = f"{url}: {exc.message}" + (f" ({len(switched)} other server(s) were switched back)"
                                                      if switched else "")
            raise
        switched.append(url)


def activate(version: int, *, rasa_url: str | list[str], user_id: int | None, author: str, reason: str = "",
             token: str = "", database_url: str | None = None) -> Activated:
    """Loads ``version`` into Rasa (every replica named), then records it as active. Raises
    :class:`ActivationError`."""
    reason = reason.strip()[:2000]
    urls = [rasa_url] if isinstance(rasa_url, str) else list(rasa_url)
    with _swap:
        with session_scope(database_url) as session:
            archive, kind, previous = _plan(session, version, reason)
            live = registry.active_version(session)
            previous_archive = Path(live.path) if live is not None and live.path else None
        load_everywhere(urls, archive, previous_archive, token)
        with session_scope(database_url) as session:
            row = registry.get_version(session, version)
            assert row is not None
            registry.mark_active(session, row, kind=kind, author=author, user_id=user_id, reason=reason,
                                 now=utcnow())
    return Activated(version=version, previous=previous, kind=kind)
