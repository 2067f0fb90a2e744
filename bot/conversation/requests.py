"""What a shopper's client sends and gets back: the chat API's request and answer, the widget's frames, and
the metadata rules (no client may claim an identity; bounded depth and size)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field, field_validator

from bot.ids import MAX_ID
from bot.web.security import json_depth

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
        if json_depth(metadata, MAX_METADATA_DEPTH) > MAX_METADATA_DEPTH:
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


class RatingRequest(BaseModel):
    conversation_id: str = Field(pattern=CONVERSATION_ID, description="The conversation the ticket belongs to.")
    rating: int = Field(ge=1, le=5, description="1 (poor) to 5 (great).")


class WidgetMessage(BaseModel):
    type: str  # "hello" (sets the identity: token, or none for a guest) | "message" | "rating"
    text: str = Field(default="", max_length=MAX_TEXT)
    payload: str | None = Field(default=None, max_length=MAX_TEXT)
    token: str | None = Field(default=None, max_length=MAX_TOKEN)
    ticket_id: int | None = Field(default=None, ge=1, le=MAX_ID)  # "rating": the ticket the agent resolved
    rating: int | None = Field(default=None, ge=1, le=5)  # "rating": 1 (poor) to 5 (great)
