"""Per-message sentiment (VADER + a shop-domain lexicon) and the mood of a conversation.

``score`` feeds the escalation model's signals (``bot.escalation``), which decides hand-overs;
``mood_trajectory`` goes into the agent's context packet. The old sentiment-only escalation triggers that
use both are in ``bot.escalation.sentiment_triggers``.

Pure Python (stdlib + ``vaderSentiment``): the Rasa server (``rasa_addons``, Python 3.10) and the action
server (Python 3.11) both import it. Nothing here imports pydantic, SQLAlchemy or Rasa.

Mood: the running score across a conversation's shopper messages (``mood_trajectory``), by default an
exponentially weighted average with weight 0.5 (``mood = mood + 0.5 * (message - mood)``, from neutral 0).
Chosen with ``python -m bot bench escalation --moods`` on ``tests/escalation_dialogues.jsonl`` (71
labelled dialogues) over the last message, the running mean, EWMA at 0.3/0.5/0.7, an asymmetric EWMA
(``adaptive``) and a leaky sum (``leaky``), each at its best threshold: EWMA 0.5 had the best F1 with
the Rasa NLU (0.83; 0.81 when its threshold is picked on the other half of the dialogues) and without it
(0.78 / 0.77); the last message alone 0.79 / 0.75, EWMA 0.7 0.81 / 0.76, the mean 0.63 / 0.57. The
threshold -0.24 is one step past the F1 peak (-0.22): precision 0.89 instead of 0.87, false escalations
7.9% instead of 10.5% (Rasa NLU). ``SHOP_ESCALATION_MOOD`` selects another function.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

# ----------------------------------------------------------------------------------------------- lexicon

# Single words whose general-English VADER valence is wrong in a shop. Requests are not anger: "cancel"
# (-1.0 in VADER), "no" (-1.2, a form answer), "charged", "stop", "block" are neutral here; "problem",
# "lost" (a password), "complaint" are mild; politeness ("please", "help", "like" in "I'd like to return")
# should not make a request look happy. Frustration cues get the weight they carry in a support chat.
SHOP_WORDS: dict[str, float] = {
    "cancel": 0.0, "cancelled": 0.0, "canceled": 0.0, "cancellation": 0.0, "cancelling": 0.0,
    "no": 0.0, "charged": 0.0, "charge": 0.0, "stop": -0.3, "block": 0.0, "hard": 0.0, "fake": -1.0,
    "problem": -0.6, "problems": -0.6, "lost": -0.4, "complaint": -0.6, "complain": -0.8, "sorry": 0.0,
    "please": 0.4, "help": 0.5, "like": 0.5, "free": 0.8, "kidding": 0.0, "joke": -1.5, "yes": 0.3,
    # product states and form answers ("defective" as a return reason) are facts, not temper
    "defective": -0.9, "damaged": -0.9, "broken": -1.2, "broke": -1.2, "error": -0.8, "smashed": -1.8, "wrong": -1.2,
    # frustration (report these as lexicon hits)
    "useless": -2.6, "pointless": -2.2, "ridiculous": -2.3, "unacceptable": -2.8, "incompetent": -2.6,
    "hopeless": -2.4, "clueless": -2.0, "pathetic": -2.8, "ripoff": -2.6, "scam": -2.8, "rubbish": -2.0,
    "garbage": -2.2, "shambles": -2.4, "nightmare": -2.4, "ffs": -2.8, "wtf": -2.8, "fuming": -2.8,
    "furious": -3.0, "livid": -3.0,
}
_ANGER_WORDS = frozenset(w for w, v in SHOP_WORDS.items() if v <= -1.5)

_N = r"(?:n['’]?t|not)"  # "hasn't", "hasnt", "has not"
_ORDINAL = r"(?:second|third|fourth|fifth|sixth|2nd|3rd|4th|5th|6th|\d+th|umpteenth|hundredth|tenth|millionth)"
_CONTACT_VERB = (r"(?:ask|asked|asking|tell|told|telling|say|said|saying|writ(?:e|ing)|wrote|contact(?:ed|ing)?|"
                 r"call(?:ed|ing)?|explain(?:ed|ing)?|repeat(?:ed|ing)?|tr(?:y|ied|ying)|chat(?:ted|ting)?|"
                 r"messag(?:e|ed|ing)|reach(?:ed|ing)?|email(?:ed|ing)?)")

# Multi-word cues VADER cannot see (its lexicon is single words), with a valence on VADER's -4..+4 scale.
SHOP_PHRASES: tuple[tuple[re.Pattern[str], float], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), valence) for valence, pattern in (
        # "still hasn't arrived", "still no refund", "still not working" (not "still not sure which size")
        (-2.2, rf"\bstill (?:\w+{_N}|not|no|never)(?: \w+){{0,3}}? (?:arriv\w*|come|came|here|receiv\w*|got|"
               r"get|deliver\w*|ship\w*|refund\w*|answer\w*|repl\w*|respon\w*|heard|fixed|work\w*|sorted|"
               r"resolv\w*|updat\w*|track\w*|money|order|package|parcel|email|confirmation)\b"),
        (-1.8, r"\bstill (?:declin\w*|fail\w*|reject\w*|broken|the same|pending|not there|missing|wrong)\b"),
        (-1.2, r"\b(?:tracking|it|parcel|package|order|status)(?: \w+)? (?:has ?n['’]?t|has not|did ?n['’]?t|"
               r"did not) (?:moved|changed|updated|budged)\b"),
        (-1.6, r"\b(?:says|shows|marked|showing)(?: as| it(?:['’]s| is| was))? delivered,? but\b"),
        (-2.2, r"\b(?:paid|pay|paying)\b[^.!?]{0,40}\bfor nothing\b"),
        (-2.4, r"\bthanks for nothing\b"),
        (-1.4, r"\btried (?:\d+|two|three|four|five|six|several|many|so many|multiple) times\b"),
        (-1.6, r"\b(?:give|giving) up\b"),
        (-1.6, r"\b(?:that|this|it|which)(?: \w+)? (?:does ?n['’]?t|does not|did ?n['’]?t|did not|won['’]?t|"
               r"is ?n['’]?t|is not) help\w*\b"),
        (-1.8, r"\bstill nothing\b"),
        (-2.0, r"\bstill waiting\b"),
        (-1.8, r"\b(?:been|keep|kept) waiting (?:for )?(?:\w+ )?(?:days|weeks|a week|a month|months|ages|"
               r"forever|hours)\b"),
        (-0.9, r"\b(?:has|have|did|does|is|was)(?:n['’]?t| not) (?:yet )?(?:arrived|come|turned up|shown up|"
               r"been delivered|been shipped|received)(?: yet)?\b"),
        (-1.8, r"\bnever (?:arrived|came|turned up|showed up|received|got (?:it|them|my))\b"),
        # "third time I ask", "for the second time", "how many times", "I already told you"
        (-2.4, rf"\b(?:{_ORDINAL}|another|one more) time (?:that )?(?:i(?:'ve|'m| have| am)? )?(?:now )?"
               rf"{_CONTACT_VERB}\b"),
        (-2.2, rf"\bfor the {_ORDINAL} time\b"),
        (-2.6, r"\bhow many (?:more )?times\b"),
        (-1.6, rf"\b(?:already|twice|three times|many times|several times) (?:i )?{_CONTACT_VERB}\b"),
        (-1.6, rf"\b{_CONTACT_VERB} (?:you |this |that |it )*(?:already|twice|three times|before|many times|"
               r"several times|over and over)\b"),
        (-1.6, r"\b(?:wast(?:e|ed|ing)) (?:of )?(?:my |our |so much )?time\b"),
        (-2.0, r"\b(?:no ?one|nobody|no body)\b(?: \w+){0,3} (?:answer|answers|respond|responds|replies|"
               r"replied|helps|helped|cares|called|gets back|got back|read|reads|told|tells|knows)\b"),
        (-0.8, r"\b(?:no|zero|without any) (?:answer|reply|response|update|updates|news|tracking|refund|info)\b"),
        (-1.8, r"\byou (?:don['’]?t|didn['’]?t|never|can['’]?t|cannot|won['’]?t|aren['’]?t) (?:even )?"
               r"(?:understand|listen|listening|get it|read|help|helping|care)\b"),
        (-1.8, r"\byou(?:['’]re| are) (?:not|n['’]?t) (?:even )?(?:listening|helping|reading|understanding)\b"),
        (-1.2, r"\b(?:this|it|that)(?: \w+)? (?:is ?n['’]?t|is not|does ?n['’]?t|does not) work(?:ing)?\b"),
        (-1.5, r"\b(?:that['’]?s|this is|it['’]?s) not what i (?:asked|said|meant|wanted|want|ordered|need)\b"),
        (-0.8, r"\bnot what i (?:asked|said|meant|wanted|ordered)\b"),
        (-2.8, r"\b(?:going|go|goes|went|keep going) (?:round|around) in circles\b|\bin a loop\b|"
               r"\bsame (?:answer|thing|message|reply|question) (?:again|over and over)\b"),
        (-3.2, r"\bnever (?:order|buy|shop|use|using|ordering|buying|shopping|coming)\w* (?:\w+ ){0,3}"
               r"(?:again|here)\b|\blast time i (?:order|buy|shop|use)\w*\b"),
        (-2.0, r"\b(?:charged|billed|paid) (?:me )?(?:twice|two times|double|three times)\b|"
               r"\bdouble[- ]charged\b"),
        (-3.2, r"\b(?:chargeback|charge ?back|dispute (?:the|this|my) (?:charge|payment)|legal action|"
               r"my lawyer|trading standards|consumer protection|better business bureau|"
               r"report (?:you|this|your)\b)"),
        (-1.8, r"\b(?:days|weeks|a week|a month|months) (?:late|overdue)\b|"
               r"\b(?:so|very|really|extremely) late\b"),
        (-1.2, r"\b(?:i want|give me|i demand|i need) (?:my|the) money(?: back)?\b|\bmy money back\b|"
               r"\bi demand a (?:full )?refund\b"),
        (-2.4, r"\b(?:what a|such a|total|complete|absolute|utter) (?:joke|scam|mess|disaster|nightmare|"
               r"shambles|farce|rip ?off)\b"),
        (-2.0, r"\bare you (?:even )?(?:serious|kidding|joking)\b|"
               r"\byou(?:['’]re| are|['’]ve got to be) (?:kidding|joking)\b"),
        (-2.8, r"\b(?:fed up|had enough|sick (?:and tired )?of)\b"),
        (-2.4, r"\b(?:rip ?off|rip(?:ped)? me off)\b"),
        (-1.6, r"\bwhy (?:is|does|do|did|can['’]?t|won['’]?t|isn['’]?t) (?:\w+ ){0,6}(?:so hard|"
               r"so difficult|impossible|so long)\b"),
        (-1.6, r"\b(?:can['’]?t|cannot|can not) (?:even )?(?:believe|get (?:a|any) (?:straight |simple )?"
               r"answer)\b"),
        (-1.6, r"\b(?:lost|losing) (?:my |the |our )?(?:package|parcel|order|shipment|delivery)\b"),
        # a polite "no thanks": VADER reads "no" as negating "thanks"; this evens it out
        (+1.4, r"^\W*no,? (?:thanks|thank you|thx)\b"),
    )
)
ORDER_WORDS = re.compile(
    r"\b(?:orders?|package|parcel|deliver\w*|shipment|shipping|shipped|refund\w*|tracking|courier|arriv\w*|"
    r"charged|invoice|return\w*|[A-Z]{2}-\d{4,})\b", re.IGNORECASE)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SIGN_OFF = re.compile(r"^(?:oh |just |well |how |really )?(?:great|perfect|brilliant|wonderful|fantastic|lovely|"
                       r"awesome|nice|super|thanks a lot|thank you very much|nice one|good job|well done)\W*$",
                       re.IGNORECASE)
_SHOUTING_VALENCE = -1.5  # a message of three or more words in capitals


def _shouting(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return len(text.split()) >= 3 and len(letters) >= 8 and sum(c.isupper() for c in letters) >= 0.8 * len(letters)


class _ShopAnalyzer(SentimentIntensityAnalyzer):  # type: ignore[misc]
    """VADER with the shop words in its lexicon and the shop phrases added to a sentence's valences, so VADER's
    normalisation and punctuation emphasis ("!!!") apply to them too. Stateless per call."""

    def __init__(self) -> None:
        super().__init__()
        self.lexicon.update(SHOP_WORDS)

    def score_valence(self, sentiments: list[float], text: str) -> dict[str, float]:
        extra = [valence for pattern, valence in SHOP_PHRASES if pattern.search(text)]
        return super().score_valence(list(sentiments) + extra, text)  # type: ignore[no-any-return]


@lru_cache(maxsize=1)
def _analyzer() -> _ShopAnalyzer:
    return _ShopAnalyzer()


_ALPHA = 15.0  # VADER's normalisation constant: compound = x / sqrt(x² + 15)


def _raw(compound: float) -> float:
    """Inverse of VADER's normalisation: the summed valence behind a compound score."""
    c = max(-0.9999, min(0.9999, compound))
    return c * math.sqrt(_ALPHA / (1.0 - c * c))


def _compound_of(text: str) -> float:
    """VADER sentence by sentence (its negation would otherwise reach across sentences: "I have nothing.
    absolutely furious" scores positive), summed on VADER's raw scale. A short positive sign-off after a
    negative message ("so nobody knows where my desk is. great.") is sarcasm and counts against it."""
    sentences = [part for part in _SENTENCE_END.split(text) if part.strip()]
    raws = [_raw(_analyzer().polarity_scores(sentence)["compound"]) for sentence in sentences]
    if len(sentences) > 1 and _SIGN_OFF.match(sentences[-1].strip()) and raws[-1] > 0 and sum(raws[:-1]) < 0:
        raws[-1] = -raws[-1]
    total = sum(raws) + (_SHOUTING_VALENCE if _shouting(text) else 0.0)
    return total / math.sqrt(total * total + _ALPHA)


@dataclass(frozen=True)
class Sentiment:
    compound: float  # -1 (angry) .. +1 (happy), VADER's compound with the shop lexicon
    lexicon: tuple[str, ...] = ()  # the shop phrases and frustration words found in the message
    about_order: bool = False  # mentions an order (order words, an order number) or has a shop complaint cue


def score(text: str) -> Sentiment:
    """VADER compound of one shopper message, with the shop-domain lexicon. Button payloads ("/intent{...}")
    are not the shopper's words: neutral."""
    text = (text or "").strip()
    if not text or text.startswith("/"):
        return Sentiment(0.0)
    compound = _compound_of(text)
    hits: list[str] = []
    for pattern, valence in SHOP_PHRASES:
        if (found := pattern.search(text)) and valence < 0:
            phrase = found.group(0).lower()
            if not any(phrase in hit for hit in hits):
                hits.append(phrase)
    hits += [w for w in re.findall(r"[a-z]+", text.lower()) if w in _ANGER_WORDS]
    if _shouting(text):
        hits.append("all caps")
    about_order = bool(hits) or bool(ORDER_WORDS.search(text))
    return Sentiment(round(compound, 4), tuple(dict.fromkeys(hits)), about_order)


# ----------------------------------------------------------------------------------------------- mood

MOODS = ("ewma", "adaptive", "leaky", "mean", "last")


@dataclass(frozen=True)
class Turn:
    """One shopper message. ``sentiment`` None: scored from ``text`` when needed."""

    text: str
    intent: str | None = None
    confidence: float | None = None
    sentiment: float | None = None


class MoodParameters(Protocol):
    """How :func:`mood_trajectory` runs (see ``EscalationThresholds`` for what each one means)."""

    @property
    def mood(self) -> str: ...
    @property
    def mood_alpha(self) -> float: ...
    @property
    def mood_alpha_recover(self) -> float: ...
    @property
    def mood_alpha_neutral(self) -> float: ...
    @property
    def mood_decay(self) -> float: ...
    @property
    def neutral_band(self) -> float: ...


@dataclass(frozen=True)
class MoodSettings:
    """The default mood parameters (``EscalationThresholds`` extends them with the trigger thresholds)."""

    mood: str = "ewma"
    mood_alpha: float = 0.5
    mood_alpha_recover: float = 0.3
    mood_alpha_neutral: float = 0.15
    mood_decay: float = 0.5
    neutral_band: float = 0.05


def turn_sentiment(turn: Turn) -> float:
    """The turn's compound sentiment: the one it carries, else scored from its text."""
    return score(turn.text).compound if turn.sentiment is None else float(turn.sentiment)


def _is_neutral(turn: Turn, compound: float, thresholds: MoodParameters) -> bool:
    return abs(compound) < thresholds.neutral_band and not score(turn.text).lexicon


def mood_trajectory(turns: Sequence[Turn], thresholds: MoodParameters | None = None) -> list[float]:
    """The conversation's mood after each shopper message (starting from neutral, 0), with the parameters of
    ``thresholds`` (``bot.escalation.sentiment_triggers.EscalationThresholds`` has them; default:
    :class:`MoodSettings`)."""
    t = thresholds or MoodSettings()
    moods: list[float] = []
    mood = 0.0
    for i, turn in enumerate(turns):
        s = turn_sentiment(turn)
        if t.mood == "last":
            mood = s
        elif t.mood == "mean":
            mood += (s - mood) / (i + 1)
        elif t.mood == "ewma":
            mood += t.mood_alpha * (s - mood)
        elif t.mood == "leaky":  # frustration accumulates: two mildly negative messages weigh more than one
            mood = max(-1.0, min(1.0, t.mood_decay * mood + s))
        else:
            alpha = (t.mood_alpha_neutral if _is_neutral(turn, s, t)
                     else t.mood_alpha if s < mood else t.mood_alpha_recover)
            mood += alpha * (s - mood)
        moods.append(round(mood, 4))
    return moods

