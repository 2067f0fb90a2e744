"""When the bot steps aside: the escalation model's decision on the latest shopper message, and why.

- An explicit request for a person (the ``contact_human_agent`` intent, or words like "a real person")
  escalates at once; so do one very negative message about an order (``MessageSignals.furious_about_order``),
  giving up right after a bot failure (``MessageSignals.gave_up_after_failure``)
  and a loop: the same request a third time after an answer that missed it
  (``MessageSignals.third_attempt_missed``).
- Otherwise the model (``bot.escalation.model``) scores the message's signals (``bot.escalation.signals``)
  and escalates when the score reaches the threshold for the shop's target false-escalation rate: the
  ``escalation`` section of the shop-policy file, ``false_escalation_rate`` (default 5%): the threshold
  with the best recall on the calibration dialogues (dev, and train out of fold) within that rate. For
  the segments in ``vip_segments`` the bar is lower: the most eager threshold within
  ``vip_false_escalation_rate`` (default 10%).
- The reason is the strongest group of signals (``REASONS``); the detail names every signal that pushed
  towards escalating, with the score and the threshold, for the agent.

Rasa's policy (``rasa_addons.escalation``, through :func:`decide_events`) and ``action_escalate`` (through
:func:`decide`) read the same tracker events, so the ticket's reason is the decision the policy took.
"""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bot.escalation.episode import escalated_since_handback, segment_from_events, since_handback
from bot.escalation.model import EscalationModel, default_model
from bot.escalation.signals import Exchange, MessageSignals, asks_for_person, signal_rows

logger = logging.getLogger(__name__)

REASONS = ("explicit_request", "gave_up", "repeated_request", "bot_not_understanding", "service_complaint",
           "negative_mood")
# which signals speak for which reason (the reason with the largest summed contribution wins)
REASON_SIGNALS: dict[str, tuple[str, ...]] = {
    "gave_up": ("give_up",),
    "repeated_request": ("rephrase", "repeats", "repeat_after_failure"),
    "bot_not_understanding": ("bot_failed", "bot_failures", "bot_repeated", "bot_repeats",
                              "correction_after_failure"),
    "service_complaint": ("complaint", "complaints", "correction", "corrections", "shrinking", "length_ratio",
                          "words", "human"),
    "negative_mood": ("sentiment", "negative", "mood", "anger", "criticism"),
}
SIGNAL_WORDS = {
    "sentiment": "negative message", "negative": "negative about the service", "mood": "mood dropping",
    "anger": "frustration words", "criticism": "product criticism", "rephrase": "rephrased an earlier request",
    "repeats": "repeated requests", "bot_failed": "bot just failed", "bot_failures": "bot failures",
    "bot_repeated": "bot repeated itself", "bot_repeats": "bot repeats", "complaint": "said the bot is not helping",
    "complaints": "complaints", "correction": "corrected the bot", "corrections": "corrections",
    "give_up": "giving up", "human": "asked for a person", "words": "message length",
    "length_ratio": "shorter replies", "shrinking": "replies shrinking",
    "repeat_after_failure": "repeated after a bot failure", "correction_after_failure": "corrected after a failure",
}


class EscalationSettingsError(ValueError):
    """The policy file's ``escalation`` section is wrong; the message names the key."""


@dataclass(frozen=True)
class EscalationSettings:
    false_escalation_rate: float = 0.05
    vip_false_escalation_rate: float = 0.10
    vip_segments: tuple[str, ...] = ("vip", "champions")
    explicit_intents: tuple[str, ...] = ("contact_human_agent",)

    def __post_init__(self) -> None:
        for name in ("false_escalation_rate", "vip_false_escalation_rate"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= value <= 0.5:
                raise EscalationSettingsError(f"escalation.{name} must be a number from 0 to 0.5, got {value!r}")

    def is_vip(self, segment: str | None) -> bool:
        return (segment or "").lower() in self.vip_segments

    def rate_for(self, segment: str | None) -> float:
        return self.vip_false_escalation_rate if self.is_vip(segment) else self.false_escalation_rate

    def threshold(self, model: EscalationModel, segment: str | None) -> float:
        """Regular shoppers: the model's best threshold within the shop's rate; VIPs: the most eager one
        within theirs (handed over as soon as their budget allows)."""
        vip = self.is_vip(segment)
        return model.threshold(self.rate_for(segment), eager=vip)

    @classmethod
    def from_section(cls, section: Any) -> EscalationSettings:
        if section is None:
            return cls()
        if not isinstance(section, Mapping):
            raise EscalationSettingsError("escalation must be a mapping")
        known = {"false_escalation_rate", "vip_false_escalation_rate", "vip_segments", "explicit_intents"}
        unknown = sorted(set(section) - known)
        if unknown:
            raise EscalationSettingsError(f"escalation: unknown key(s) {', '.join(map(str, unknown))}; "
                                          f"known: {', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        for key in ("false_escalation_rate", "vip_false_escalation_rate"):
            if key in section:
                values[key] = section[key]
        for key in ("vip_segments", "explicit_intents"):
            if key in section:
                items = section[key]
                if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
                    raise EscalationSettingsError(f"escalation.{key} must be a list of names")
                values[key] = tuple(i.strip().lower() if key == "vip_segments" else i.strip() for i in items)
        return cls(**values)


_SETTINGS: dict[Path, tuple[float, EscalationSettings]] = {}


def policy_settings(path: Path) -> EscalationSettings:
    """The ``escalation`` section of the shop-policy file ``path`` (``Settings.policy_file``,
    ``SHOP_POLICY_FILE``), re-read when the file changes. A file that does not load keeps the last good
    settings (the defaults at first), logged."""
    try:
        stamp = path.stat().st_mtime
    except OSError:
        return _SETTINGS.get(path, (0.0, EscalationSettings()))[1]
    cached = _SETTINGS.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        settings = EscalationSettings.from_section(data.get("escalation") if isinstance(data, Mapping) else None)
    except (OSError, yaml.YAMLError, EscalationSettingsError) as exc:
        logger.error(f"{path}: the escalation settings do not load ({exc}); keeping the previous ones")
        settings = cached[1] if cached else EscalationSettings()
    _SETTINGS[path] = (stamp, settings)
    return settings


@dataclass(frozen=True)
class Decision:
    reason: str  # one of REASONS
    detail: str  # for people: why, with the numbers
    score: float  # the model's score (1.0 for an explicit request)
    threshold: float
    signals: tuple[str, ...]  # the signals that pushed towards escalating, strongest first
    mood: float  # the running mood after the message
    turn_index: int  # index of the message among the exchanges given


def _reason(contributions: Sequence[tuple[str, float]]) -> str:
    totals = {reason: sum(c for s, c in contributions if s in names and c > 0)
              for reason, names in REASON_SIGNALS.items()}
    return max(totals, key=lambda reason: totals[reason])


def rule_of(exchange: Exchange, row: MessageSignals,
            settings: EscalationSettings) -> tuple[str, str, tuple[str, ...]] | None:
    """(reason, detail, signals) when a rule hands this message over whatever the model says, in this order:
    an explicit request for a person, one furious message about an order, giving up right after a bot
    failure, a third attempt at a request the bot missed. None: the model decides."""
    values = row.as_dict()
    if exchange.intent in settings.explicit_intents or asks_for_person(exchange.text):
        return "explicit_request", f"the shopper asked for a person ({exchange.intent or 'in words'})", ("human",)
    if row.furious_about_order:
        cue = "; ".join(f'"{hit}"' for hit in row.lexicon[:2])
        return ("service_complaint", f"one very negative message about an order (sentiment "
                                     f"{values['sentiment']:+.2f}, {cue})", ("furious", "anger"))
    if row.gave_up_after_failure:
        return "gave_up", "gave up right after the bot failed or repeated itself", ("give_up", "bot_failed")
    if row.third_attempt_missed:
        return ("repeated_request", f"asked the same thing {row.asked_before + 1} times and the bot's last answer "
                                    f"missed it (similarity {values['rephrase']:.2f})",
                ("rephrase", "repeats", "unanswered"))
    return None


def decide(exchanges: Sequence[Exchange], segment: str | None = None, model: EscalationModel | None = None,
           settings: EscalationSettings | None = None) -> Decision | None:
    """Whether a person should take over at the latest of ``exchanges`` (the shopper's messages of this bot
    episode), and why. None: the bot carries on."""
    if not exchanges:
        return None
    settings = settings or EscalationSettings()
    row = signal_rows(exchanges)[-1]
    values = row.as_dict()
    if (rule := rule_of(exchanges[-1], row, settings)) is not None:
        reason, why, signals = rule
        return Decision(reason, why, 1.0, 0.0, signals, values["mood"], len(exchanges) - 1)
    model = model or default_model()
    rate = settings.rate_for(segment)
    threshold = settings.threshold(model, segment)
    value = model.score(row.values)
    if value < threshold:
        return None
    contributions = model.contributions(row.values)
    pushing = [(s, c) for s, c in contributions if c > 0.25]
    fired = tuple(s for s, _ in pushing)
    words = ", ".join(SIGNAL_WORDS.get(s, s) for s in fired[:4]) or "several small signals"
    vip = f" ({segment} customer: {rate:.0%} bar, sooner)" if settings.is_vip(segment) else ""
    detail = f"{words}; score {value:.2f} >= {threshold:.2f}{vip}"
    return Decision(_reason(contributions), detail, round(value, 4), round(threshold, 4), fired, values["mood"],
                    len(exchanges) - 1)


# ------------------------------------------------------------------------------------ tracker events

EMBEDDING_KEY = "embedding"  # parse_data key: the message's sentence embedding, float16, base64


def encode_embedding(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f2").tobytes()).decode("ascii")


def decode_embedding(value: Any) -> np.ndarray | None:
    """The embedding a parse carries, unit length; None when absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        return None
    if not raw or len(raw) % 2:
        return None
    vector = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    norm = float(np.linalg.norm(vector))
    if not math.isfinite(norm) or norm == 0.0:
        return None
    return vector / norm  # type: ignore[no-any-return]


def _bot_words(event: Mapping[str, Any]) -> str:
    """A bot message as the signals read it: its text and the titles of the products it showed (a different
    set of products is a different answer, the same set again is not)."""
    text = (event.get("text") or "").strip()
    data = event.get("data") or {}
    custom = data.get("custom") if isinstance(data, Mapping) else None
    products = custom.get("products") if isinstance(custom, Mapping) else None
    if isinstance(products, list):
        titles = [str(p.get("title")) for p in products if isinstance(p, Mapping) and p.get("title")]
        text = f"{text} {'; '.join(titles)}".strip()
    return text


def exchanges_from_events(events: Iterable[Mapping[str, Any]]) -> list[Exchange]:
    """The shopper's messages since the latest hand-back, each with the bot's replies before it, from Rasa
    tracker events in their JSON form. Intent, sentiment and embedding come from each message's parse."""
    exchanges: list[Exchange] = []
    bot: list[str] = []
    for event in since_handback(events):
        kind = event.get("event")
        if kind == "bot":
            if (text := _bot_words(event)) and not (event.get("metadata") or {}).get("agent"):
                bot.append(text)
        elif kind == "user":
            parse = event.get("parse_data") or {}
            intent = parse.get("intent") or {}
            sentiment = (parse.get("sentiment") or {}).get("compound")
            confidence = intent.get("confidence")
            exchanges.append(Exchange(
                text=event.get("text") or "", bot_before=tuple(bot), intent=intent.get("name"),
                confidence=None if confidence is None else float(confidence),
                sentiment=None if sentiment is None else float(sentiment),
                embedding=decode_embedding(parse.get(EMBEDDING_KEY))))
            bot = []
    return exchanges


def decide_events(events: Iterable[Mapping[str, Any]], model: EscalationModel | None = None,
                  settings: EscalationSettings | None = None) -> Decision | None:
    """:func:`decide` over a tracker's events; None once this bot episode was escalated (never twice).
    ``settings``: the policy file's (:func:`policy_settings`); None, the defaults."""
    events = list(events)
    if escalated_since_handback(events):
        return None
    return decide(exchanges_from_events(events), segment_from_events(events), model, settings)
