"""The API documentation: ``/openapi.json`` and Swagger UI at ``/docs``, served from this origin.

FastAPI's own ``/docs`` and ``/redoc`` pages load their scripts and styles from a CDN and start Swagger UI
with an inline script; the gateway's Content-Security-Policy (``bot.web.security``) allows neither, so they
rendered blank. Here ``/docs`` is a page without inline code whose assets all come from this origin: Swagger
UI's files from the ``swagger-ui-py`` package, and ``static/docs.js`` to start it. ``/redoc`` is off (its
page would load ReDoc from a CDN; the gateway ships no copy of it).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

from bot.web.static_files import asset

TAGS: list[dict[str, Any]] = [
    {"name": "chat", "description": "The shopper's chat as JSON over HTTP (the widget speaks the same over the "
                                    "`/ws/chat` websocket, which OpenAPI cannot describe)."},
    {"name": "shop", "description": "The demo shop's pages and product images."},
    {"name": "demo", "description": "Demo mode only (`SHOP_DEMO_MODE`): sign in as a demo customer. 404 when off."},
    {"name": "agent", "description": "The agent inbox API: needs an agent's session cookie (`POST /agent/login`); "
                                     "every POST also needs the session's `X-CSRF-Token` header."},
    {"name": "lead", "description": "The support leads' console API: models, NLU inbox, analytics. Needs a "
                                    "lead's session; every POST also needs the `X-CSRF-Token` header."},
    {"name": "health", "description": "Liveness of the gateway and what it depends on."},
]
# Swagger UI's own files that the page loads (nothing else of the package is served).
VENDOR_ASSETS = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "application/javascript"}
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}: API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/docs/static/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/static/docs.js"></script>
</body>
</html>
"""
MISSING = ("The API documentation page needs the swagger-ui-py package (in requirements/app.lock); "
           "the schema itself is at /openapi.json.")


@lru_cache(maxsize=1)
def swagger_ui_dir() -> Path | None:
    """Swagger UI's files as the ``swagger-ui-py`` package ships them (found without importing it), or None."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if all((folder / name).is_file() for name in VENDOR_ASSETS) else None


def router(title: str, openapi_url: str = "/openapi.json") -> APIRouter:
    """``GET /docs`` and its assets under ``/docs/static/``."""
    docs = APIRouter(include_in_schema=False)

    @docs.get("/docs")
    async def docs_page() -> HTMLResponse:
        if swagger_ui_dir() is None:
            raise HTTPException(404, {"error": "docs_unavailable", "message": MISSING})
        return HTMLResponse(PAGE.format(title=title, openapi_url=openapi_url),
                            headers={"Cache-Control": "no-cache"})

    @docs.get("/docs/static/{name}")
    async def docs_asset(name: str) -> FileResponse:
        if name == "docs.js":
            return asset(name, {"docs.js": "application/javascript"})
        folder = swagger_ui_dir()
        media = VENDOR_ASSETS.get(name)
        if media is None or folder is None:
            raise HTTPException(404, "Not Found")
        return FileResponse(folder / name, media_type=media, headers={"Cache-Control": "public, max-age=86400"})

    return docs
