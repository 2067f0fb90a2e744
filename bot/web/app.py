"""The gateway's factory: :func:`create_app` wires settings, services and routers into a FastAPI app.

Served by uvicorn in factory mode (``uvicorn --factory bot.web.app:create_app``). The shopper's path (chat API and
widget websocket alike) is :class:`bot.conversation.pipeline.ShopperPipeline`; the agents' side is
:class:`bot.handoff.agent_inbox.AgentInbox`; the routes live in :mod:`bot.web.routes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bot import production
from bot.auth.throttle import LoginThrottle
from bot.config import Settings, get_settings
from bot.conversation.pipeline import ShopperPipeline
from bot.conversation.rasa_client import RasaClient
from bot.db import migrate
from bot.handoff.agent_inbox import AgentInbox
from bot.handoff.delivery import OutboxWorker
from bot.held_messages.replay import Replayer
from bot.privacy.redact import install_log_redaction
from bot.shop.identity import jwt_secret
from bot.web import docs, security
from bot.web.hub import Hub, RedisHub
from bot.web.routes import (
    agent_console,
    agent_socket,
    chat,
    chat_socket,
    console_login,
    conversation_tests,
    demo,
    health,
    lead_analytics,
    lead_console,
    nlu_inbox,
    shop,
    topics,
)
from bot.web.routes import (
    tickets as ticket_routes,
)

log = logging.getLogger("bot.web")


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
        app.state.inbox = AgentInbox(settings, app.state.hub, app.state.rasa)
        # Tickets go to the configured helpdesks from the outbox (written with each ticket by the action server).
        outbox = OutboxWorker(settings.database_url, settings.helpdesk_webhooks)
        app.state.inbox.on_ticket_opened = outbox.wake
        stop = asyncio.Event()
        delivering = asyncio.create_task(outbox.run_forever(stop), name="helpdesk-outbox")
        app.state.replayer = Replayer(settings.database_url, app.state.rasa, app.state.hub,
                                      on_replies=app.state.inbox.rasa_replied)
        replaying = (asyncio.create_task(app.state.replayer.run_forever(stop), name="held-replay")
                     if settings.replay_held else None)
        app.state.pipeline = ShopperPipeline(settings, app.state.rasa, app.state.inbox, app.state.chat_limiter,
                                             app.state.replayer.wake)
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
    app.include_router(console_login.router)
    app.include_router(agent_console.router)
    app.include_router(ticket_routes.router)
    app.include_router(agent_socket.router)
    app.include_router(lead_console.router)
    app.include_router(lead_analytics.router)
    app.include_router(nlu_inbox.router)
    app.include_router(topics.router)
    app.include_router(conversation_tests.router)
    app.include_router(docs.router(app.title, app.openapi_url or "/openapi.json"))
    # the shopper's side last: the schema lists the agent and lead APIs first
    for shopper in (chat, chat_socket, demo, health, shop):
        app.include_router(shopper.router)
    return app

