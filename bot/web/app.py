"""FastAPI gateway: demo shop page, widget, chat over websocket and JSON, health, agent inbox.

Live handoff: a shopper's message is always forwarded to Rasa (while the bot is paused Rasa only
records it); when the conversation has an open ticket the message is also stored on the ticket and
pushed to the agents. Rasa's ``handoff`` payloads put new tickets in the agents' live queue, and what
agents say reaches the widget through the hub (``conversation:{id}`` topic).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy.orm import Session

from bot import production
from bot.auth.throttle import LoginThrottle
from bot.catalog.models import Product
from bot.config import Settings, get_settings
from bot.db import get_engine, in_session, migrate, ping, session_scope
from bot.handoff import tickets
from bot.handoff.context import payload_words
from bot.handoff.delivery import OutboxWorker
from bot.handoff.models import CLAIMED
from bot.ids import MAX_ID
from bot.policy import get_policy
from bot.privacy.redact import install_log_redaction, mask_cards
from bot.relay import held as held_queue
from bot.search.service import ProductView
from bot.shop import cart, crm
from bot.shop.demo_orders import demo_customers
from bot.shop.identity import InvalidToken, issue_token, jwt_secret, verify_token
from bot.web import docs, pages, security
from bot.web.admin import router as admin_router
from bot.web.admin_analytics import router as analytics_router
from bot.web.admin_convtests import router as admin_convtests_router
from bot.web.admin_inbox import router as admin_inbox_router
from bot.web.admin_topics import router as admin_topics_router
from bot.web.agent import Inbox
from bot.web.agent import router as agent_router
from bot.web.hub import Hub, RedisHub, conversation_topic
from bot.web.media import product_svg
from bot.web.params import IdPath
from bot.web.rasa_client import APOLOGY, HELD, HELD_MORE, MESSAGE_ID, TAKING_LONGER, RasaClient, RasaUnavailable
from bot.web.replay import Replayer

log = logging.getLogger("bot.web")
STATIC = Path(__file__).resolve().parent / "static"
CONVERSATION_ID = r"^[A-Za-z0-9_.:-]{8,128}$"
MAX_TEXT = 2000
MAX_TOKEN = 4096
# Rasa fails on deeply nested metadata (a RecursionError, and the message was lost): the gateway refuses it.
MAX_METADATA_DEPTH = 8  # levels of objects and arrays, the metadata object itself included
MAX_METADATA_BYTES = 4096  # serialised as JSON (UTF-8)
MAX_FRAME_DEPTH = MAX_METADATA_DEPTH + 1  # a websocket frame nests no deeper than a chat request's metadata
# Metadata keys that say who the shopper is: only the gateway sets them, after verifying a token.
# ``segment`` too: it comes from the CRM profile of the verified customer (a forged "vip" would jump the queue).
IDENTITY_KEYS = frozenset({"customer_id", "customer", "customer_email", "customer_name", "client_key", "user_id",
                           "user", "email", "identity", "authenticated", "signed_in", "verified", "token",
                           "segment"})
SIGN_IN_FAILED = "Your sign-in could not be confirmed ({reason}), so you're chatting as a guest."
SEGMENT_TTL_S = 60.0
RATING_THANKS = "Thank you for rating this chat!"
SHOP_ASSETS = {"shop.css": "text/css", "shop.js": "application/javascript", "pages.css": "text/css",
               "checkout.js": "application/javascript"}


def unreadable_frame(exc: ValidationError) -> str:
    """The widget's answer to a frame it cannot take, naming the first field that is wrong (not its value)."""
    first = exc.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(part) for part in first["loc"])
    if first["type"] == "json_invalid" or not field:
        return "That message could not be read."
    return f"That message could not be read ({field}: {first['msg']})."


def clean_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """The client's metadata without anything that claims an identity."""
    return {k: v for k, v in (metadata or {}).items()
            if k.lower() not in IDENTITY_KEYS and not k.lower().startswith(("customer", "auth"))}


def identity_metadata(metadata: dict[str, Any], customer_id: int | None, client_host: str | None) -> dict[str, Any]:
    """``metadata`` plus what the gateway vouches for: the verified customer and the client's address."""
    extra: dict[str, Any] = {"customer_id": customer_id} if customer_id else {}
    if client_host:
        extra["client_key"] = f"ip:{client_host}"
    return {**metadata, **extra}


class ChatRequest(BaseModel):
    conversation_id: str = Field(pattern=CONVERSATION_ID, description="Stable id of the shopper's conversation.")
    text: str = Field(min_length=1, max_length=MAX_TEXT,
                      description="What the shopper typed (trimmed; blank text is refused).")
    metadata: dict[str, Any] | None = Field(
        default=None, description="Passed to Rasa; identity keys (customer_id, ...) are removed: use `token`. "
                                  f"At most {MAX_METADATA_DEPTH} levels deep and {MAX_METADATA_BYTES} bytes as JSON.")
    token: str | None = Field(default=None, max_length=MAX_TOKEN,
                              description="Signed customer token (or send it as `Authorization: Bearer`).")

    @field_validator("text")
    @classmethod
    def not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("the message is blank")
        return text.strip()

    @field_validator("metadata")
    @classmethod
    def bounded(cls, metadata: dict[str, Any] | None) -> dict[str, Any] | None:
        if metadata is None:
            return None
        if security.json_depth(metadata, MAX_METADATA_DEPTH) > MAX_METADATA_DEPTH:
            raise ValueError(f"metadata is nested too deeply (at most {MAX_METADATA_DEPTH} levels of objects "
                             "and arrays)")
        try:
            size = len(json.dumps(metadata, ensure_ascii=False, allow_nan=False).encode("utf-8", "surrogatepass"))
        except ValueError:
            raise ValueError("metadata holds NaN or Infinity, which are not JSON numbers") from None
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"metadata is too large ({size} bytes as JSON, at most {MAX_METADATA_BYTES})")
        return metadata


class ChatResponse(BaseModel):
    conversation_id: str
    replies: list[dict[str, Any]]
    degraded: bool = Field(default=False, description="True when the assistant could not answer and apologised.")


class WidgetMessage(BaseModel):
    type: str  # "hello" (sets the identity: token, or none for a guest) | "message" | "rating"
    text: str = Field(default="", max_length=MAX_TEXT)
    payload: str | None = Field(default=None, max_length=MAX_TEXT)
    token: str | None = Field(default=None, max_length=MAX_TOKEN)
    ticket_id: int | None = Field(default=None, ge=1, le=MAX_ID)  # "rating": the ticket the agent resolved
    rating: int | None = Field(default=None, ge=1, le=5)  # "rating": 1 (poor) to 5 (great)


class DemoSignIn(BaseModel):
    customer_id: int = Field(ge=1, le=MAX_ID, description="One of `GET /api/demo/customers`.")


class RatingRequest(BaseModel):
    conversation_id: str = Field(pattern=CONVERSATION_ID, description="The conversation the ticket belongs to.")
    rating: int = Field(ge=1, le=5, description="1 (poor) to 5 (great).")


class SegmentCache:
    """The CRM segment of signed-in customers, kept a minute (it changes with orders, not per message)."""

    def __init__(self, ttl_s: float = SEGMENT_TTL_S, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[int, tuple[float, str | None]] = {}

    def get(self, customer_id: int) -> tuple[bool, str | None]:
        found = self._entries.get(customer_id)
        if found is None or found[0] < time.monotonic():
            return False, None
        return True, found[1]

    def put(self, customer_id: int, segment: str | None) -> None:
        if len(self._entries) >= self.max_entries:
            now = time.monotonic()
            self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[customer_id] = (time.monotonic() + self.ttl_s, segment)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    install_log_redaction()  # emails, phones, cards and IBANs never reach the logs

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        production.check(settings, "the gateway")  # SHOP_ENV=production: no development secrets, no SQLite
        await asyncio.to_thread(migrate, settings.database_url)
        jwt_secret(settings)  # warns once when the development secret is in use
        if settings.demo_mode:
            log.warning("demo mode (SHOP_DEMO_MODE): anyone can sign in as a demo customer; turn it off in production")
        if isinstance(app.state.hub, RedisHub):
            await app.state.hub.start()
        app.state.rasa = RasaClient(settings.rasa_url, settings.rasa_timeout_s, settings.actions_url,
                                    token=settings.rasa_token)
        app.state.inbox = Inbox(settings, app.state.hub, app.state.rasa)
        # Tickets go to the configured helpdesks from the outbox (written with each ticket by the action server).
        outbox = OutboxWorker(settings.database_url, settings.helpdesk_webhooks)
        app.state.inbox.on_ticket_opened = outbox.wake
        stop = asyncio.Event()
        delivering = asyncio.create_task(outbox.run_forever(stop), name="helpdesk-outbox")
        app.state.replayer = Replayer(settings.database_url, app.state.rasa, app.state.hub,
                                      on_replies=app.state.inbox.rasa_replied)
        replaying = (asyncio.create_task(app.state.replayer.run_forever(stop), name="held-replay")
                     if settings.replay_held else None)
        yield
        stop.set()
        if replaying is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(replaying, timeout=5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(delivering, timeout=settings.helpdesk_timeout_s + 5)
        await outbox.aclose()
        await app.state.rasa.aclose()
        if isinstance(app.state.hub, RedisHub):
            await app.state.hub.aclose()

    # /docs is served from this origin (bot.web.docs): FastAPI's own pages load a CDN the CSP refuses
    app = FastAPI(title="shop-assistant gateway", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  swagger_ui_oauth2_redirect_url=None, openapi_tags=docs.TAGS)
    app.state.settings = settings
    app.state.hub = RedisHub(settings.redis_url) if settings.redis_url else Hub()
    app.state.login_throttle = LoginThrottle()
    security.install(app, settings)  # body limits, security headers, chat rate limits
    app.include_router(agent_router)
    app.include_router(admin_router)
    app.include_router(analytics_router)
    app.include_router(admin_inbox_router)
    app.include_router(admin_topics_router)
    app.include_router(admin_convtests_router)
    app.include_router(docs.router(app.title, app.openapi_url or "/openapi.json"))
    segments = SegmentCache()

    def read_segment(customer_id: int) -> str | None:
        try:
            with session_scope(settings.database_url) as session:
                return crm.profile(session, customer_id).segment
        except crm.UnknownCustomer:
            return None

    async def segment_of(customer_id: int) -> str | None:
        known, segment = segments.get(customer_id)
        if not known:
            try:
                segment = await asyncio.to_thread(read_segment, customer_id)
            except Exception:  # the chat goes on without the segment
                log.exception("customer %s: reading the CRM segment failed", customer_id)
                return None
            segments.put(customer_id, segment)
        return segment

    async def shopper_metadata(metadata: dict[str, Any], customer_id: int | None,
                               client_host: str | None) -> dict[str, Any]:
        """What the gateway vouches for: the verified customer, their CRM segment, the client's address."""
        metadata = identity_metadata(metadata, customer_id, client_host)
        if customer_id:
            segment = await segment_of(customer_id)
            if segment:
                metadata["segment"] = segment
        return metadata

    def hold_if_queued(session: Session, conversation_id: str, text: str, metadata: dict[str, Any],
                       always: bool) -> bool:
        """Hold the message behind this conversation's held ones (or ``always``); whether it was held."""
        if not always and not held_queue.has_held(session, conversation_id):
            return False
        held_queue.hold(session, conversation_id, text, metadata)
        return True

    async def ask_rasa(conversation_id: str, text: str, metadata: dict[str, Any],
                       held: dict[str, Any] | None) -> tuple[list[dict[str, Any]], bool]:
        """Send a shopper's message to Rasa (always: while the bot is paused it only records it).

        ``held`` is the open ticket the message was stored on (``Inbox.shopper_said``), if any. A message
        Rasa did not get, or may not have got (no answer in time), is kept and replayed in order once Rasa
        is back (``bot.web.replay``); its id in the metadata (``MESSAGE_ID``) lets the replay see in Rasa's
        tracker whether Rasa took it after all, so it is answered once. Returns ``(replies, degraded)``.
        """
        metadata = {**metadata, MESSAGE_ID: uuid.uuid4().hex}  # the gateway's own: a client's is replaced
        with_agent = held is not None and held["status"] == CLAIMED
        if await in_session(settings.database_url, hold_if_queued, conversation_id, text, metadata, False):
            app.state.replayer.wake()  # earlier messages still wait for Rasa: this one goes behind them
            return ([] if with_agent else [{"text": HELD_MORE}]), not with_agent
        try:
            replies = await app.state.rasa.send(conversation_id, text, metadata)
        except RasaUnavailable as exc:
            log.warning("conversation %s: %s", conversation_id, exc)
            if exc.keep:
                await in_session(settings.database_url, hold_if_queued, conversation_id, text, metadata, True)
                app.state.replayer.wake()
            if with_agent:
                return [], False  # a person has the conversation and got the message
            return [{"text": TAKING_LONGER if exc.unsure else HELD if not exc.reached else APOLOGY}], True
        await app.state.inbox.rasa_replied(conversation_id, replies)
        return replies, False

    async def rate(conversation_id: str, ticket_id: int, rating: int) -> None:
        try:
            await app.state.inbox.rate(conversation_id, ticket_id, rating)
        except tickets.TicketNotFound as exc:
            raise HTTPException(404, {"error": "not_found", "message": "There is no such ticket in this "
                                                                        "conversation."}) from exc
        except tickets.TicketError as exc:
            raise HTTPException(409, {"error": "not_rateable", "message": str(exc)}) from exc
        except ValueError as exc:
            raise HTTPException(422, {"error": "bad_rating", "message": str(exc)}) from exc

    @app.get("/", response_class=FileResponse, include_in_schema=False)
    async def shop_page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/widget.js", include_in_schema=False)
    async def widget() -> FileResponse:
        return FileResponse(STATIC / "widget.js", media_type="application/javascript",
                            headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"})

    @app.get("/widget.css", include_in_schema=False)
    async def widget_css() -> FileResponse:
        return FileResponse(STATIC / "widget.css", media_type="text/css",
                            headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"})

    @app.get("/static/{name}", include_in_schema=False)
    async def shop_asset(name: str) -> FileResponse:
        """The demo shop's own styles and scripts (a strict CSP allows nothing inline)."""
        media = SHOP_ASSETS.get(name)
        if media is None:
            raise HTTPException(404, "Not Found")
        return FileResponse(STATIC / name, media_type=media, headers={"Cache-Control": "no-cache"})

    def verified_customer(token: str) -> int:
        return verify_token(token, jwt_secret(settings), settings.jwt_issuer)

    def merge_guest_cart(conversation_id: str, customer_id: int) -> None:
        """A guest who identifies keeps what they put in the cart: it moves into the customer's cart."""
        try:
            with session_scope(settings.database_url) as session:
                if cart.has_items(session, conversation_id):
                    cart.merge(session, conversation_id, cart.customer_cart_key(customer_id))
        except Exception:  # the chat goes on; the guest cart stays where it was
            log.exception("conversation %s: merging the guest cart failed", conversation_id)

    @app.post("/api/chat", response_model=ChatResponse, tags=["chat"],
              responses={401: {"description": "The token is invalid or expired (`detail.reason` says which)."},
                         429: {"description": "Too many messages (`Retry-After` says when to send again)."}})
    async def chat(request: ChatRequest, http: Request,
                   authorization: Annotated[str | None, Header(max_length=MAX_TOKEN + 7)] = None) -> ChatResponse:
        limited = await app.state.chat_limiter.check(request.conversation_id, http.client.host if http.client else None)
        if limited is not None:
            raise security.rate_limited(limited)
        token = request.token
        if token is None and authorization and authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
        customer_id = None
        if token is not None:
            try:
                customer_id = verified_customer(token)
            except InvalidToken as exc:
                raise HTTPException(401, {"error": "invalid_token", "reason": exc.reason,
                                          "message": f"The customer token was refused ({exc.reason}). Sign in "
                                                     "again, or send no token to chat as a guest."},
                                    headers={"WWW-Authenticate": f'Bearer error="invalid_token", '
                                                                 f'error_description="{exc.reason}"'}) from exc
            await asyncio.to_thread(merge_guest_cart, request.conversation_id, customer_id)
        metadata = clean_metadata(request.metadata)
        metadata["channel"] = metadata.get("channel", "api")
        metadata = await shopper_metadata(metadata, customer_id, http.client.host if http.client else None)
        text = mask_cards(request.text)  # card numbers never reach Rasa or a store
        held = await app.state.inbox.shopper_said(request.conversation_id, text)
        replies, degraded = await ask_rasa(request.conversation_id, text, metadata, held)
        return ChatResponse(conversation_id=request.conversation_id, replies=replies, degraded=degraded)

    @app.post("/api/tickets/{ticket_id}/rating", tags=["chat"],
              responses={404: {"description": "No such ticket in this conversation."},
                         409: {"description": "Not resolved yet, or already rated."}})
    async def rate_ticket(ticket_id: IdPath, body: RatingRequest) -> dict[str, Any]:
        """The shopper's 1 to 5 rating of a chat with an agent, once per ticket, from its own conversation."""
        await rate(body.conversation_id, ticket_id, body.rating)
        return {"ticket_id": ticket_id, "rating": body.rating, "text": RATING_THANKS}

    @app.websocket("/ws/chat")
    async def chat_socket(
        websocket: WebSocket, conversation_id: Annotated[str, Query(pattern=CONVERSATION_ID)]
    ) -> None:
        if not security.origin_allowed(websocket, security.allowed_origins(settings), settings.public_url):
            # accepted only to say why: a refused handshake (HTTP 403) reaches the page as a bare 1006, which the
            # widget cannot tell from a network failure; close code 4403 it shows to the shopper
            await websocket.accept()
            await websocket.close(code=4403, reason="origin not allowed")
            return
        await websocket.accept()
        customer_id: int | None = None  # set by a "hello" (or a message) that carries a valid token
        client_host = websocket.client.host if websocket.client else None
        inbox: Inbox = app.state.inbox
        send_lock = asyncio.Lock()

        async def send(frame: dict[str, Any]) -> None:
            async with send_lock:
                await websocket.send_json(frame)

        async def from_agents() -> None:
            """What agents say to this conversation (and handback, rating requests), as it happens."""
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                async for event in pushes:
                    await send(event)
                if pushes.overflowed:
                    await websocket.close(code=1013, reason="too slow, reconnect")

        pushes = app.state.hub.subscribe(conversation_topic(conversation_id), maxsize=100)
        pushing = asyncio.create_task(from_agents())

        async def identify(token: str | None) -> None:
            nonlocal customer_id
            customer_id = None
            if not token:
                await send({"type": "identity", "signed_in": False})
                return
            try:
                customer_id = verified_customer(token)
            except InvalidToken as exc:
                await send({"type": "identity", "signed_in": False, "reason": exc.reason,
                            "text": SIGN_IN_FAILED.format(reason=exc.reason)})
                return
            await asyncio.to_thread(merge_guest_cart, conversation_id, customer_id)
            await send({"type": "identity", "signed_in": True})

        async def rate_from_widget(message: WidgetMessage) -> None:
            if message.ticket_id is None or message.rating is None:
                await send({"type": "error", "text": "A rating needs a ticket and a number from 1 to 5."})
                return
            try:
                await rate(conversation_id, message.ticket_id, message.rating)
            except HTTPException as exc:
                detail = exc.detail if isinstance(exc.detail, dict) else {}
                await send({"type": "rating_refused", "ticket_id": message.ticket_id,
                            "text": "That rating could not be saved: " + str(detail.get("message", exc.detail))})
                return
            await send({"type": "rating_saved", "ticket_id": message.ticket_id, "rating": message.rating,
                        "text": RATING_THANKS})

        try:
            while True:
                try:
                    raw = await security.receive_frame(websocket, settings.max_ws_frame_bytes)
                except security.BadFrame as exc:
                    await send({"type": "error", "text": str(exc)})
                    continue
                if (problem := security.frame_problem(raw, MAX_FRAME_DEPTH)) is not None:
                    await send({"type": "error", "text": problem})
                    continue
                try:
                    message = WidgetMessage.model_validate_json(raw)
                except ValidationError as exc:
                    await send({"type": "error", "text": unreadable_frame(exc)})
                    continue
                if message.type == "hello" or (message.type == "message" and message.token is not None):
                    await identify(message.token)
                    if message.type == "hello" and (state := await inbox.widget_state(conversation_id)):
                        await send(state)  # waiting for an agent, or talking to one (after a reload)
                if message.type == "rating":
                    await rate_from_widget(message)
                    continue
                text = mask_cards((message.payload or message.text).strip())  # before Rasa or a store
                if message.type != "message" or not text:
                    continue
                if (limited := await app.state.chat_limiter.check(conversation_id, client_host)) is not None:
                    await send(security.rate_limited_frame(limited))
                    continue
                # a button press reaches Rasa as its payload, the agent as the words the shopper clicked
                said = mask_cards(message.text.strip()) if message.payload and message.text.strip() else \
                    payload_words(text)
                held = await inbox.shopper_said(conversation_id, said)
                with_agent = held is not None and held["status"] == CLAIMED
                if not with_agent:
                    await send({"type": "typing", "on": True})
                metadata = await shopper_metadata({"channel": "widget"}, customer_id, client_host)
                replies, _ = await ask_rasa(conversation_id, text, metadata, held)
                if replies or not with_agent:
                    await send({"type": "bot", "messages": replies})
                if not with_agent:
                    await send({"type": "typing", "on": False})
        except WebSocketDisconnect:
            return
        finally:
            pushes.close()
            pushing.cancel()

    def demo_list() -> list[dict[str, Any]]:
        if not settings.demo_mode:
            raise HTTPException(404, "Not Found")
        with session_scope(settings.database_url) as session:
            return [{"id": c.id, "name": c.name, "email": c.email, "note": c.note, "order_number": c.order_number,
                     "status": c.status} for c in demo_customers(session) if c.id is not None]

    @app.get("/api/demo/customers", tags=["demo"], responses={404: {"description": "Demo mode is off."}})
    def demo_customer_list() -> dict[str, Any]:
        """Demo mode only: the customers the demo page can sign in as."""
        return {"customers": demo_list()}

    @app.post("/api/demo/token", tags=["demo"],
              responses={404: {"description": "Demo mode is off, or no such demo customer."}})
    def demo_token(body: DemoSignIn) -> dict[str, Any]:
        """Demo mode only: a signed token for one of the demo customers, as a shop would issue it."""
        customer = next((c for c in demo_list() if c["id"] == body.customer_id), None)
        if customer is None:
            raise HTTPException(404, "No such demo customer.")
        token = issue_token(customer["id"], settings.demo_token_ttl_s, jwt_secret(settings), settings.jwt_issuer)
        return {"token": token, "expires_in": settings.demo_token_ttl_s, "customer": customer}

    @app.get("/healthz", tags=["health"],
             responses={503: {"description": "Degraded: Rasa, the action server or the database is down "
                                             "(`checks` says which)."}})
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

    @app.get("/media/products/{product_id}.svg", tags=["shop"], response_class=Response,
             responses={200: {"content": {"image/svg+xml": {}}, "description": "The product's picture."},
                        404: {"description": "No such product."}})
    def product_image(product_id: IdPath) -> Response:
        p = _product(product_id)
        return Response(product_svg(p.title, p.category, p.color), media_type="image/svg+xml",
                        headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/products/{product_id}", response_class=HTMLResponse, tags=["shop"],
             responses={404: {"description": "No such product."}})
    def product_page(product_id: IdPath) -> str:
        return pages.product_page(ProductView.of(_product(product_id)))

    @app.get("/checkout", response_class=HTMLResponse, tags=["shop"],
             responses={404: {"description": "The cart reference is forged, expired or unknown."}})
    def checkout(reference: Annotated[str, Query(alias="cart", max_length=600)]) -> HTMLResponse:
        """The demo shop's checkout page, for a signed cart reference; 404 for anything forged or guessed."""
        key = cart.cart_key_from_reference(reference, jwt_secret(settings))
        if key is None:
            return HTMLResponse(pages.checkout_not_found(), status_code=404)
        with Session(get_engine(settings.database_url)) as session:
            summary = cart.summary(session, key)
        shipping = cart.shipping_quote(summary.total, get_policy(settings.policy_file).fact("shipping"))
        return HTMLResponse(pages.checkout_page(summary, shipping))

    return app


app = create_app()
