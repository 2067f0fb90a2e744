"""The gateway's static files (``bot/web/static``): pages, styles and scripts, served by name from an allow-list."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fastapi import HTTPException
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent / "static"


def asset(name: str, allowed: Mapping[str, str], headers: Mapping[str, str] | None = None) -> FileResponse:
    """``name`` from the static folder with its media type from ``allowed``; 404 for any other name.

    ``no-cache``: browsers revalidate, so a console or the widget never runs a stale script after an upgrade."""
    media = allowed.get(name)
    if media is None or not (STATIC / name).is_file():
        raise HTTPException(404, "Not Found")
    return FileResponse(STATIC / name, media_type=media, headers={"Cache-Control": "no-cache", **(headers or {})})
