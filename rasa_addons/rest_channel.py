"""Rasa's REST channel behind the token of Rasa's HTTP API (credentials.yml selects it).

Rasa's ``--auth-token`` guards its HTTP API (transcripts, ``PUT /model``) but not the channels: anyone who
reaches the port could post to ``/webhooks/rest/webhook`` as any conversation, with any ``customer_id`` in the
metadata, which the actions believe. This channel is Rasa's REST channel (same name, same URLs, same
behaviour) that also wants the token, as ``Authorization: Bearer <SHOP_RASA_TOKEN>``; only the gateway has
it. The channel's health route (``GET /webhooks/rest/``) stays open. With ``SHOP_RASA_TOKEN`` empty (a Rasa
started by hand) it is Rasa's REST channel unchanged; production, ``make run`` and docker-compose always
set it. Runs on Rasa's Python 3.10.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from rasa_addons import settings

log = logging.getLogger(__name__)


def authorized(request: Request, token: str) -> bool:
    sent = request.headers.get("authorization", "")
    return hmac.compare_digest(sent.encode("utf-8", "replace"), f"Bearer {token}".encode())


class TokenRestInput(RestInput):
    """``/webhooks/rest/webhook`` that answers 401 without the gateway's bearer token."""

    def __init__(self, token: str = "") -> None:
        self.token = token

    @classmethod
    def name(cls) -> str:
        return "rest"  # the URLs and the events' input_channel of Rasa's REST channel

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        token = settings.rasa_token()
        if not token:
            log.warning("%s is empty: the REST webhook answers anyone who reaches this port", settings.RASA_TOKEN_ENV)
        return cls(token)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = super().blueprint(on_new_message)
        token = self.token
        if token:
            @webhook.middleware("request")
            async def require_token(request: Request) -> HTTPResponse | None:
                if request.method == "GET" or authorized(request, token):
                    return None  # GET: the channel's health route
                return response.json({"error": "unauthorized", "message": "this webhook needs the gateway's "
                                      "token (Authorization: Bearer)"}, status=401)
        return webhook
