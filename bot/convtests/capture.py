"""A conversation test from a real conversation, read from Rasa's tracker store.

One :class:`~bot.convtests.spec.ExpectedTurn` per shopper message, in order:

- ``user``: the text as Rasa stored it (a button's payload such as ``/add_to_cart{"sku": "X"}`` stays the
  payload, so it replays the same way), with personal data replaced by placeholders of the same shape
  (:func:`bot.privacy.redact.redact_example`: ``someone@example.com``, ``555-0100``, ...): a test never stores
  a shopper's email, and the placeholder is still read as an email, a phone number, ...;
- ``intent``: the intent Rasa gave it (``parse_data.intent.name``);
- ``actions``: the actions Rasa ran after it, up to the next shopper message, without ``action_listen``,
  ``action_session_start``, ``action_unlikely_intent`` and ``action_extract_slots`` (bookkeeping, not
  answers; the escalation and sentiment add-ons run no action of their own);
- ``reply``: HANDOFF when the turn ran ``action_escalate`` or paused the conversation; else PRODUCT_CARDS
  when a bot message carried a ``product_cards`` custom payload; else FORM_QUESTION when a form is active
  after the turn and asks for a slot (``requested_slot``); else TEXT.

The capture stops at the first handoff: what the shopper says to a person afterwards is not the bot's work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.convtests.spec import ConversationTest, ExpectedTurn, ReplyKind
from bot.privacy.redact import redact_example
from bot.rasa_events import RasaEvent, read_events

NOT_AN_ANSWER = frozenset({"action_listen", "action_session_start", "action_unlikely_intent", "action_extract_slots"})
HANDOFF_ACTIONS = frozenset({"action_escalate"})
PRODUCT_CARDS = "product_cards"
CAPTURED_TYPES = ("user", "action", "bot", "active_loop", "slot", "pause", "restart")


class NoUserMessages(LookupError):
    """The conversation is unknown, or has no shopper message to make a test of."""


@dataclass
class _Turn:
    user: str
    intent: str | None
    actions: list[str] = field(default_factory=list)
    cards: bool = False
    handoff: bool = False


def _user_text(event: RasaEvent) -> str:
    text = event.text.strip()
    return redact_example(text)[0] if text else text


class _Fold:
    """The state of :func:`turns_from_events` while it reads one conversation's events."""

    def __init__(self) -> None:
        self.turns: list[ExpectedTurn] = []
        self.current: _Turn | None = None
        self.loop: str | None = None
        self.requested: str | None = None

    def close(self) -> None:
        """The turn being read is complete: append it with the kind of reply it got."""
        current = self.current
        if current is None:
            return
        if current.handoff:
            reply = ReplyKind.HANDOFF
        elif current.cards:
            reply = ReplyKind.PRODUCT_CARDS
        elif self.loop and self.requested:
            reply = ReplyKind.FORM_QUESTION
        else:
            reply = ReplyKind.TEXT
        self.turns.append(ExpectedTurn(user=current.user, intent=current.intent, actions=tuple(current.actions),
                                       reply=reply))

    def user(self, event: RasaEvent) -> None:
        self.close()
        text = _user_text(event)
        if not text:
            self.current = None
            return
        intent = (event.parse_data.get("intent") or {}).get("name") or event.intent_name
        self.current = _Turn(user=text, intent=str(intent) if intent else None)

    def answer(self, current: _Turn, kind: str, event: RasaEvent) -> None:
        """An action, bot message or pause that answers the current turn."""
        if kind == "action":
            name = str(event.data.get("name") or event.action_name or "")
            if name and name not in NOT_AN_ANSWER:
                current.actions.append(name)
                current.handoff = current.handoff or name in HANDOFF_ACTIONS
        elif kind == "bot":
            custom = (event.data.get("data") or {}).get("custom")
            if isinstance(custom, dict) and custom.get("type") == PRODUCT_CARDS:
                current.cards = True
        elif kind == "pause":
            current.handoff = True


def turns_from_events(events: list[RasaEvent]) -> list[ExpectedTurn]:
    """The expected turns of one conversation's events (in stored order)."""
    fold = _Fold()
    for event in events:
        kind = event.type_name
        if kind == "user":
            fold.user(event)
        elif kind == "restart":
            fold.loop = fold.requested = None
        elif kind == "active_loop":
            fold.loop = event.data.get("name") or None
        elif kind == "slot" and event.data.get("name") == "requested_slot":
            value = event.data.get("value")
            fold.requested = str(value) if value else None
        elif fold.current is not None:
            fold.answer(fold.current, kind, event)
    fold.close()
    turns = fold.turns
    # Stop after the first handoff: the rest is the shopper talking to a person.
    for index, turn in enumerate(turns):
        if turn.reply is ReplyKind.HANDOFF:
            return turns[: index + 1]
    return turns


def from_conversation(tracker_url: str, conversation_id: str, name: str, *,
                      source: str | None = None) -> ConversationTest:
    """The conversation ``conversation_id`` (Rasa's sender id) as a test named ``name``.
    :class:`NoUserMessages` when it has no shopper message (or does not exist)."""
    events = list(read_events(tracker_url, sender_ids=[conversation_id], types=CAPTURED_TYPES))
    turns = turns_from_events(events)
    if not turns:
        raise NoUserMessages(f"conversation {conversation_id!r} has no shopper messages to save as a test")
    return ConversationTest(name=name.strip(), turns=tuple(turns), source=source or f"conversation:{conversation_id}")
