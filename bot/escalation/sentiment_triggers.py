"""The old sentiment-only escalation triggers: mood and message thresholds, fallback streaks, VIPs.

``bot.escalation.decision`` (the escalation model) decides hand-overs now; these triggers are kept as the
baseline ``python -m bot bench escalation`` prints next to the model, and ``EscalationThresholds`` carries
the mood parameters (``SHOP_ESCALATION_MOOD`` ...) that ``action_escalate`` uses for the agent's mood
trajectory.

Pure Python like ``bot.sentiment``: no pydantic, SQLAlchemy, torch or Rasa (the Rasa venv imports it too).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.escalation.episode import escalated_since_handback, segment_from_events, since_handback
from bot.sentiment import MOODS, MoodSettings, Turn, mood_trajectory, score, turn_sentiment

REASONS = ("explicit_request", "negative_mood", "very_negative_message", "repeated_fallback", "vip_negative_mood")


@dataclass(frozen=True)
class Decision:
    reason: str  # one of REASONS
    detail: str  # for people: why, with the numbers
    mood: float  # the mood after the message that triggered it
    turn_index: int  # index of that message in the turns given to ``evaluate``


def _tuple(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class EscalationThresholds(MoodSettings):
    """When the bot hands a conversation to a person. Every field can be set from the environment as
    ``SHOP_ESCALATION_<FIELD>`` (lists comma-separated), e.g. ``SHOP_ESCALATION_MOOD_THRESHOLD=-0.4``:

    - ``MOOD_THRESHOLD`` (-0.24): escalate when the mood is at or below it after at least ``MIN_TURNS`` (2)
      shopper messages and the latest message is not positive.
    - ``VERY_NEGATIVE`` (-0.7): one message at or below it escalates at once when it is about an order or a
      complaint (an intent in ``TOPIC_INTENTS`` among the last ``TOPIC_WINDOW`` (3) messages, or order words).
    - ``FALLBACK_STREAK`` (3): that many misunderstood messages in a row (intent in ``FALLBACK_INTENTS``, or
      confidence below ``LOW_CONFIDENCE`` (0.4)).
    - ``VIP_SEGMENTS`` (vip,champions) escalate sooner: mood at or below ``VIP_MOOD_THRESHOLD`` (-0.15) after
      ``VIP_MIN_TURNS`` (1) message.
    - ``EXPLICIT_INTENTS`` (contact_human_agent): asking for a person.
    - ``MOOD`` (ewma | adaptive | leaky | mean | last): ``ewma`` weighs each message by ``MOOD_ALPHA`` (0.5);
      ``adaptive`` uses ``MOOD_ALPHA`` for a message worse than the mood, ``MOOD_ALPHA_RECOVER`` (0.3) for a
      better one and ``MOOD_ALPHA_NEUTRAL`` (0.15) for a neutral one (|compound| < ``NEUTRAL_BAND`` 0.05, no
      shop phrase); ``leaky`` adds each message to the mood times ``MOOD_DECAY`` (0.5).
    """

    mood_threshold: float = -0.24
    min_turns: int = 2
    very_negative: float = -0.7
    topic_intents: tuple[str, ...] = (
        "track_order", "cancel_order", "change_order", "change_shipping_address", "get_refund", "track_refund",
        "payment_issue", "complaint", "get_invoice", "check_invoice", "delivery_period", "place_order",
    )
    topic_window: int = 3
    fallback_streak: int = 3
    fallback_intents: tuple[str, ...] = ("nlu_fallback", "out_of_scope")
    low_confidence: float = 0.4
    vip_segments: tuple[str, ...] = ("vip", "champions")
    vip_mood_threshold: float = -0.15
    vip_min_turns: int = 1
    explicit_intents: tuple[str, ...] = ("contact_human_agent",)
    # the mood fields (mood, mood_alpha, mood_alpha_recover, mood_alpha_neutral, mood_decay, neutral_band) and
    # their defaults come from MoodSettings

    def __post_init__(self) -> None:
        def fail(name: str, why: str) -> None:
            raise ValueError(f"SHOP_ESCALATION_{name.upper()}: {why} (got {getattr(self, name)!r})")

        for name in ("mood_threshold", "very_negative", "vip_mood_threshold"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                fail(name, "must be between -1 and 1")
        for name in ("mood_alpha", "mood_alpha_recover", "mood_alpha_neutral", "mood_decay"):
            if not 0.0 < getattr(self, name) <= 1.0:
                fail(name, "must be greater than 0 and at most 1")
        for name in ("min_turns", "fallback_streak", "vip_min_turns", "topic_window"):
            if getattr(self, name) < 1:
                fail(name, "must be at least 1")
        if not 0.0 <= self.low_confidence <= 1.0:
            fail("low_confidence", "must be between 0 and 1")
        if not 0.0 <= self.neutral_band < 1.0:
            fail("neutral_band", "must be between 0 and 1")
        if self.mood not in MOODS:
            fail("mood", f"must be one of {', '.join(MOODS)}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> EscalationThresholds:
        """The defaults, overridden by the ``SHOP_ESCALATION_*`` variables of ``environ`` (the process's:
        ``bot.config.escalation_thresholds``); a bad value raises ValueError naming it."""
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            key = f"SHOP_ESCALATION_{field.name.upper()}"
            raw = environ.get(key)
            if raw is None or not raw.strip():
                continue
            default = field.default
            try:
                if isinstance(default, tuple):
                    values[field.name] = _tuple(raw)
                elif isinstance(default, bool) or not isinstance(default, int | float):
                    values[field.name] = raw.strip()
                else:
                    number = type(default)(raw.strip())
                    if isinstance(number, float) and not math.isfinite(number):
                        raise ValueError(raw)
                    values[field.name] = number
            except ValueError as exc:
                raise ValueError(f"{key}: expected {type(default).__name__}, got {raw!r}") from exc
        known = {f"SHOP_ESCALATION_{f.name.upper()}" for f in dataclasses.fields(cls)}
        unknown = sorted(k for k in environ if k.startswith("SHOP_ESCALATION_") and k not in known)
        if unknown:
            raise ValueError(f"unknown setting {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)



def is_fallback(turn: Turn, thresholds: EscalationThresholds | None = None) -> bool:
    """A misunderstood message: a fallback intent, or an intent below the low-confidence threshold."""
    t = thresholds or EscalationThresholds()
    if turn.intent is None:
        return False
    return turn.intent in t.fallback_intents or (turn.confidence is not None and turn.confidence < t.low_confidence)


def evaluate(turns: Sequence[Turn], segment: str | None = None,
             thresholds: EscalationThresholds | None = None) -> Decision | None:
    """Whether to escalate on the latest of ``turns`` (the shopper's messages since the conversation started
    or was last handed back to the bot), and why. None: keep going. Checked in the order of ``REASONS``
    except that a VIP's looser mood threshold comes after the general one."""
    t = thresholds or EscalationThresholds()
    if not turns:
        return None
    last = len(turns) - 1
    latest = turns[last]
    s = turn_sentiment(latest)
    mood = mood_trajectory(turns, t)[last]
    n = len(turns)

    def decide(reason: str, detail: str) -> Decision:
        return Decision(reason, detail, mood, last)

    if latest.intent in t.explicit_intents:
        return decide("explicit_request", f"the shopper asked for a person ({latest.intent})")
    if s <= t.very_negative:
        recent = {turn.intent for turn in turns[-t.topic_window:] if turn.intent is not None}
        topics = sorted(recent & set(t.topic_intents))
        if topics or score(latest.text).about_order:
            about = f"about {', '.join(topics)}" if topics else "about an order"
            return decide("very_negative_message", f"one very negative message {about}: sentiment {s:+.2f} "
                                                   f"<= {t.very_negative:+.2f}")
    not_positive = s < t.neutral_band
    if n >= t.min_turns and mood <= t.mood_threshold and not_positive:
        return decide("negative_mood", f"mood {mood:+.2f} <= {t.mood_threshold:+.2f} after {n} messages")
    if (segment or "").lower() in t.vip_segments and n >= t.vip_min_turns and mood <= t.vip_mood_threshold \
            and not_positive:
        return decide("vip_negative_mood", f"{segment} customer, mood {mood:+.2f} <= {t.vip_mood_threshold:+.2f}")
    streak = 0
    for turn in reversed(turns):
        if not is_fallback(turn, t):
            break
        streak += 1
    if streak >= t.fallback_streak:
        return decide("repeated_fallback", f"{streak} messages in a row not understood")
    return None



def turns_from_events(events: Iterable[Mapping[str, Any]]) -> list[Turn]:
    """Shopper turns since the latest hand-back, from Rasa tracker events in their JSON form (rasa-sdk's
    ``tracker.events``, or ``event.as_dict()`` in Rasa). Sentiment comes from ``parse_data["sentiment"]``
    (set by ``rasa_addons.sentiment``), scored here when a message lacks it."""
    turns = []
    for event in since_handback(events):
        if event.get("event") != "user":
            continue
        parse = event.get("parse_data") or {}
        intent = parse.get("intent") or {}
        sentiment = (parse.get("sentiment") or {}).get("compound")
        turns.append(Turn(
            text=event.get("text") or "",
            intent=intent.get("name"),
            confidence=None if intent.get("confidence") is None else float(intent["confidence"]),
            sentiment=None if sentiment is None else float(sentiment),
        ))
    return turns



def evaluate_events(events: Iterable[Mapping[str, Any]],
                    thresholds: EscalationThresholds | None = None) -> Decision | None:
    """``evaluate`` over a tracker's events (the old policy; the Rasa policy now calls
    ``bot.escalation.decision.decide_events``). None when nothing triggers or when this episode was already
    escalated."""
    events = list(events)
    if escalated_since_handback(events):
        return None
    return evaluate(turns_from_events(events), segment_from_events(events), thresholds)
