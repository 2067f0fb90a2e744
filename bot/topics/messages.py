"""The shopper messages topics are made of, read from Rasa's tracker store (``bot.rasa_events``): typed
``user`` events (no button payloads, no empty texts), with the intent the model gave and its confidence."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from bot.analytics import metrics
from bot.rasa_events import read_events
from bot.topics.tables import SCOPE_ALL, SCOPE_FALLBACK, SCOPES

FALLBACK_INTENTS = ("nlu_fallback", "out_of_scope")


class ScopeError(ValueError):
    """An unknown scope."""


@dataclass(frozen=True)
class ShopperMessage:
    event_id: int
    conversation_id: str
    timestamp: float
    text: str
    intent: str
    confidence: float | None

    @property
    def day(self) -> date:
        return metrics.day_of(self.timestamp)


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise ScopeError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    return scope


def in_scope(message: ShopperMessage, scope: str, threshold: float) -> bool:
    """``fallback``: the model fell back, said out of scope, or was less confident than ``threshold``."""
    if scope == SCOPE_ALL:
        return True
    return (message.intent in FALLBACK_INTENTS or message.confidence is None
            or message.confidence < threshold) if scope == SCOPE_FALLBACK else False


def shopper_messages(tracker_url: str, scope: str, threshold: float, *, after_id: int = 0) -> Iterator[ShopperMessage]:
    check_scope(scope)
    for event in read_events(tracker_url, after_id=after_id, types=("user",)):
        if not metrics.is_typed(event):
            continue
        message = ShopperMessage(event_id=event.id, conversation_id=event.sender_id, timestamp=event.timestamp,
                                 text=" ".join(event.text.split()), intent=metrics.intent_of(event)[:100],
                                 confidence=metrics.top_confidence(event))
        if in_scope(message, scope, threshold):
            yield message
