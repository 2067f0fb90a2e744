"""The chat API: ``POST /api/chat`` (one message, Rasa's replies) and the shopper's rating of a chat with an agent."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request
from starlette.requests import HTTPConnection

from bot.conversation.pipeline import RATING_THANKS, RatingRefused, ShopperPipeline
from bot.conversation.requests import MAX_TOKEN, ChatRequest, ChatResponse, RatingRequest
from bot.shop.identity import InvalidToken
from bot.web import security
from bot.web.params import IdPath

router = APIRouter()
RATING_STATUS = {"not_found": 404, "not_rateable": 409, "bad_rating": 422}


def pipeline_of(connection: HTTPConnection) -> ShopperPipeline:
    """The gateway's shopper pipeline (built when the app starts)."""
    return connection.app.state.pipeline  # type: ignore[no-any-return]


@router.post("/api/chat", response_model=ChatResponse, tags=["chat"],
             responses={401: {"description": "The token is invalid or expired (`detail.reason` says which)."},
                        429: {"description": "Too many messages (`Retry-After` says when to send again)."}})
async def chat(request: ChatRequest, http: Request,
               authorization: Annotated[str | None, Header(max_length=MAX_TOKEN + 7)] = None) -> ChatResponse:
    pipeline = pipeline_of(http)
    client_host = http.client.host if http.client else None
    if (limited := await pipeline.limited(request.conversation_id, client_host)) is not None:
        raise security.rate_limited(limited)
    token = request.token
    if token is None and authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    customer_id = None
    if token is not None:
        try:
            customer_id = await pipeline.identify(request.conversation_id, token)
        except InvalidToken as exc:
            raise HTTPException(401, {"error": "invalid_token", "reason": exc.reason,
                                      "message": f"The customer token was refused ({exc.reason}). Sign in "
                                                 "again, or send no token to chat as a guest."},
                                headers={"WWW-Authenticate": f'Bearer error="invalid_token", '
                                                             f'error_description="{exc.reason}"'}) from exc
    answer = await pipeline.message(request.conversation_id, request.text, metadata=request.metadata, channel="api",
                                    customer_id=customer_id, client_host=client_host)
    return ChatResponse(conversation_id=request.conversation_id, replies=answer.replies, degraded=answer.degraded)


@router.post("/api/tickets/{ticket_id}/rating", tags=["chat"],
             responses={404: {"description": "No such ticket in this conversation."},
                        409: {"description": "Not resolved yet, or already rated."}})
async def rate_ticket(ticket_id: IdPath, body: RatingRequest, http: Request) -> dict[str, Any]:
    """The shopper's 1 to 5 rating of a chat with an agent, once per ticket, from its own conversation."""
    try:
        await pipeline_of(http).rate(body.conversation_id, ticket_id, body.rating)
    except RatingRefused as exc:
        raise HTTPException(RATING_STATUS[exc.error], {"error": exc.error, "message": exc.message}) from exc
    return {"ticket_id": ticket_id, "rating": body.rating, "text": RATING_THANKS}
