"""``/healthz``: whether Rasa, the action server and the database answer, and how fast."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from bot.config import Settings
from bot.conversation.rasa_client import RasaClient
from bot.db import ping

router = APIRouter()


@router.get("/healthz", tags=["health"],
            responses={503: {"description": "Degraded: Rasa, the action server or the database is down "
                                            "(`checks` says which)."}})
async def healthz(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    rasa: RasaClient = request.app.state.rasa
    checks: dict[str, dict[str, Any]] = {}

    async def timed(name: str, coro: Any) -> None:
        start = time.perf_counter()
        ok, detail = await coro
        checks[name] = {"ok": ok, "detail": detail, "ms": round((time.perf_counter() - start) * 1000, 1)}

    async def database() -> tuple[bool, str]:
        try:
            await asyncio.to_thread(ping, settings.database_url)
            return True, "ok"
        except Exception as exc:  # any driver error means "down"
            return False, type(exc).__name__

    await asyncio.gather(timed("rasa", rasa.check(f"{settings.rasa_url}/")),
                         timed("actions", rasa.check(f"{settings.actions_url}/health")),
                         timed("database", database()))
    healthy = all(c["ok"] for c in checks.values())
    return JSONResponse({"status": "ok" if healthy else "degraded", "checks": checks},
                        status_code=200 if healthy else 503)
