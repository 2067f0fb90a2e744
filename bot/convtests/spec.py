"""A saved conversation test: the shopper's messages in order and, for each, what the bot must do.

This is the shape every part shares: the store (rows in the database), the YAML export and import (Rasa's
test-story format where it can say it), capturing a test from a real conversation, and the runner that
plays a test against a candidate model and reports the first turn that diverged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ReplyKind(StrEnum):
    """What kind of answer a turn must get, beyond its intent and actions (optional per turn)."""

    PRODUCT_CARDS = "product_cards"  # at least one message carries product cards
    FORM_QUESTION = "form_question"  # a form is active after the turn and asks for a slot
    HANDOFF = "handoff"  # the turn hands the conversation to a person
    TEXT = "text"  # a plain text answer, none of the above


@dataclass(frozen=True)
class ExpectedTurn:
    """One shopper message and what the bot must do with it.

    ``intent``: the intent the model must give the message (None: not checked).
    ``actions``: the actions the bot must run after it, in order, ``action_listen`` left out (empty: not checked).
    ``reply``: the kind of reply (None: not checked).
    """

    user: str
    intent: str | None = None
    actions: tuple[str, ...] = ()
    reply: ReplyKind | None = None


@dataclass(frozen=True)
class ConversationTest:
    name: str
    turns: tuple[ExpectedTurn, ...]
    source: str = ""  # where it was saved from: "agent-inbox:<ticket>", "nlu-inbox:<conversation>", "yaml", ...

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("a conversation test needs a name")
        if not self.turns:
            raise ValueError(f"conversation test {self.name!r} has no turns")


@dataclass(frozen=True)
class TurnResult:
    """What the candidate did with one turn, and whether that matches."""

    index: int  # 0-based turn number
    user: str
    expected: ExpectedTurn
    intent: str | None
    actions: tuple[str, ...]
    reply: ReplyKind | None
    passed: bool
    differences: tuple[str, ...] = field(default=())  # human-readable: "intent: expected track_order, got greet"


@dataclass(frozen=True)
class TestOutcome:
    """A test played against one model: passed, or the first turn that diverged (and the turns up to it)."""

    __test__ = False  # not a pytest class

    name: str
    passed: bool
    turns: tuple[TurnResult, ...]
    diverged_at: int | None = None  # 0-based index of the first failing turn
    error: str = ""  # the run itself failed (Rasa unreachable, ...): counts as failed
