"""FastAPI gateway: demo shop page, widget, chat over websocket and JSON, health."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, WebSocket, WebSocketDisconnect
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.orm import Session

from bot.catalog.models import Product
from bot.config import Settings, get_settings
from bot.db import get_engine, migrate, ping
from bot.search.service import ProductView
from bot.shop import cart
from bot.web import pages
from bot.web.media import product_svg
from bot.web.rasa_client import APOLOGY, RasaClient, RasaUnavailable

log = logging.getLogger("bot.web")
STATIC = Path(__file__).resolve().parent / "static"
CONVERSATION_ID = r"^[A-Za-z0-9_.:-]{8,128}$"
MAX_TEXT = 2000


class ChatRequest(BaseModel):
    conversation_id: str = Field(pattern=CONVERSATION_ID, description="Stable id of the shopper's conversation.")
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    metadata: dict[str, Any] | None = None


class ChatResponse(BaseModel):
    conversation_id: str
    replies: list[dict[str, Any]]
    degraded: bool = Field(default=False, description="True when the assistant could not answer and apologised.")


class WidgetMessage(BaseModel):
    type: str
    text: str = Field(default="", max_length=MAX_TEXT)
    payload: str | None = Field(default=None, max_length=MAX_TEXT)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(migrate, settings.database_url)
        app.state.rasa = RasaClient(settings.rasa_url, settings.rasa_timeout_s, settings.actions_url)
        yield
        await app.state.rasa.aclose()

    app = FastAPI(title="shop-assistant gateway", version="0.1.0", lifespan=lifespan)

    async def relay(conversation_id: str, text: str, metadata: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
        try:
            return await app.state.rasa.send(conversation_id, text, metadata), False
        except RasaUnavailable as exc:
            log.warning("conversation %s: %s", conversation_id, exc)
            return [{"text": APOLOGY}], True

    @app.get("/", response_class=FileResponse, include_in_schema=False)
    async def shop_page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/widget.js", include_in_schema=False)
    async def widget() -> FileResponse:
        return FileResponse(STATIC / "widget.js", media_type="application/javascript",
                            headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"})

    @app.post("/api/chat", response_model=ChatResponse)
    async def chat(request: ChatRequest) -> ChatResponse:
        metadata = {**(request.metadata or {}), "channel": (request.metadata or {}).get("channel", "api")}
        replies, degraded = await relay(request.conversation_id, request.text, metadata)
        return ChatResponse(conversation_id=request.conversation_id, replies=replies, degraded=degraded)

    @app.websocket("/ws/chat")
    async def chat_socket(
        websocket: WebSocket, conversation_id: Annotated[str, Query(pattern=CONVERSATION_ID)]
    ) -> None:
        await websocket.accept()
        try:
            while True:
                raw = await websocket.receive_text()
                try:
                    message = WidgetMessage.model_validate_json(raw)
                except ValidationError:
                    await websocket.send_json({"type": "error", "text": "That message could not be read."})
                    continue
                text = (message.payload or message.text).strip()
                if message.type != "message" or not text:
                    continue
                await websocket.send_json({"type": "typing", "on": True})
                replies, _ = await relay(conversation_id, text, {"channel": "widget"})
                await websocket.send_json({"type": "bot", "messages": replies})
                await websocket.send_json({"type": "typing", "on": False})
        except WebSocketDisconnect:
            return

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        rasa: RasaClient = app.state.rasa
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

    def _product(product_id: int) -> Product:
        with Session(get_engine(settings.database_url)) as session:
            product = session.get(Product, product_id)
            if product is None:
                raise HTTPException(404, "no such product")
            session.expunge(product)
            return product

    @app.get("/media/products/{product_id}.svg", include_in_schema=False)
    def product_image(product_id: Annotated[int, PathParam(ge=1)]) -> Response:
        p = _product(product_id)
        return Response(product_svg(p.title, p.category, p.color), media_type="image/svg+xml",
                        headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/products/{product_id}", response_class=HTMLResponse, include_in_schema=False)
    def product_page(product_id: Annotated[int, PathParam(ge=1)]) -> str:
        return pages.product_page(ProductView.of(_product(product_id)))

    @app.get("/checkout", response_class=HTMLResponse, include_in_schema=False)
    def checkout(cart_key: Annotated[str, Query(alias="cart", pattern=CONVERSATION_ID)]) -> str:
        with Session(get_engine(settings.database_url)) as session:
            return pages.checkout_page(cart.summary(session, cart_key))

    return app


app = create_app()
