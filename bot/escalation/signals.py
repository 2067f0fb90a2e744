"""Per-message signals of a dissatisfied shopper, for the escalation model (``bot.escalation.model``).

Dissatisfied shoppers rarely swear. They repeat or rephrase the same request, say "that's not what I asked",
get the same bot answer or a fallback twice, give shorter and shorter replies, or give up. Each shopper
message gets a row of numbers (``SIGNALS``) from the message, the shopper's earlier messages in this bot
episode and what the bot said in between:

- ``sentiment``, ``negative``, ``mood``, ``anger``: VADER with the shop lexicon (``bot.sentiment``). Negative
  words about a product, price or style ("these look cheap", "hate the colour") are shopping, not
  frustration: such a message counts as neutral for ``negative`` and ``mood``, and sets ``criticism``.
- ``rephrase``: the highest cosine similarity of this message's sentence embedding (the one the NLU computes)
  to an earlier message of the shopper; ``repeats``: how many of the shopper's messages so far were such a
  repeat (similarity at least ``REPEAT_SIMILARITY``). Short answers ("yes", "M", an order number) are left
  out: repeating them is normal.
- ``bot_failed``, ``bot_failures``: the bot's reply just before was a failure (did not understand, out of
  scope, "that doesn't look like an order number", nothing found), and how many so far;
  ``bot_repeated``, ``bot_repeats``: the bot's answer is the same as one of its last ``REPLY_WINDOW``.
- ``complaint``, ``complaints``: "that's not what I asked", "I already told you", "you're not listening",
  "that doesn't help"; ``correction``, ``corrections``: "no, I said...", "I meant..."; ``give_up``: "forget
  it", "never mind", "I'll just call".
- ``words``, ``length_ratio``, ``shrinking``: message length, against the shopper's earlier messages, and
  whether it shrank twice in a row.
- ``human``: an explicit request for a person (the policy escalates on it at once; it is a signal too).
- Interactions and steps that a linear model cannot form itself: a repeat right after a bot failure, a
  correction after one; ``loop``: the shopper has asked the same thing three times (two repeats);
  ``stuck``: the bot has failed or repeated itself twice; ``furious``: this message is very negative about
  the service (sentiment at or below ``FURIOUS`` with a frustration cue of the lexicon).
- ``unanswered``: the shopper asks their previous request again (similarity at least ``REPEAT_SIMILARITY``)
  and the bot's answer in between hardly mentioned what they asked for (``answer_overlap``): the similarity
  times the share of the request's content words the answer left out. A related follow-up after a fitting
  answer ("do you gift wrap?" - "Yes, for $3." - "can I add a gift message?") stays low.

Pure Python and NumPy, importable by the Rasa server (Python 3.10) and the action server.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from bot.sentiment import ORDER_WORDS, score

REPEAT_SIMILARITY = 0.75  # cosine of two sentence embeddings at or above which a message repeats another
REPLY_WINDOW = 3  # "the same answer again": the same as one of the bot's last three answers (a form question
# asked again for a second order, much later in a long conversation, is not a loop)
MOOD_ALPHA = 0.5  # weight of the newest message in the running mood
FURIOUS_ABOUT_ORDER = -0.7  # one message this negative, with a frustration cue and order words: hand over at once
FURIOUS = -0.6  # a message at or below this sentiment, with a frustration cue, about the service: "furious"
CONTENT_WORDS = 3  # messages shorter than this (in words) are answers, not requests: never a "repeat"

# The direction each signal may push the model (+1: towards escalating, -1: away, 0: either way). Training
# drops a signal whose fitted weight points the wrong way (collinear signals otherwise trade weights, and a
# calm message could end up counting as frustration).
DIRECTIONS: dict[str, int] = {
    "sentiment": -1, "negative": 1, "mood": -1, "anger": 1, "criticism": -1,
    "rephrase": 1, "repeats": 1,
    "bot_failed": 1, "bot_failures": 1, "bot_repeated": 1, "bot_repeats": 1,
    "complaint": 1, "complaints": 1, "correction": 1, "corrections": 1, "give_up": 1, "human": 1,
    "words": 0, "length_ratio": -1, "shrinking": 1,
    "repeat_after_failure": 1, "correction_after_failure": 1, "loop": 1, "stuck": 1, "furious": 1,
    "unanswered": 1,
}

SIGNALS: tuple[str, ...] = (
    "sentiment", "negative", "mood", "anger", "criticism",
    "rephrase", "repeats",
    "bot_failed", "bot_failures", "bot_repeated", "bot_repeats",
    "complaint", "complaints", "correction", "corrections", "give_up", "human",
    "words", "length_ratio", "shrinking",
    "repeat_after_failure", "correction_after_failure", "loop", "stuck", "furious", "unanswered",
)


def _pattern(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{a})" for a in alternatives), re.IGNORECASE)


_NEG = r"(?:['’]s not| is not| isn['’]?t| was not| wasn['’]?t| ain['’]?t|s not)"  # "that's not", "it isn't"
_TARGET = (r"(?:a |an |the |some |your )?(?:real |live |actual |human )?(?:human|person|agent|representative|rep|"
           r"operator|someone|somebody|staff|manager|supervisor|customer service|support team|support)\b")

# What the bot says when it fails: did not understand, cannot help, rejected an input, found nothing.
BOT_FAILURE = _pattern(
    r"\b(?:did|do|could|can)(?:n['’]?t| not) (?:quite |really )?(?:get|understand|catch|follow|find)\b",
    r"\bnot (?:quite )?sure (?:i|what you)\b", r"\b(?:could|can|would) you (?:please )?(?:rephrase|reword|say)\b",
    r"\brephrase\b", r"\bi['’]?m (?:sorry|afraid),? (?:but )?i (?:can['’]?t|cannot|couldn['’]?t|don['’]?t|didn['’]?t|"
    r"wasn['’]?t|am not)\b", r"\b(?:outside|beyond) what i can\b",
    r"\bi can(?:['’]?t|not) help with\b", r"\bi (?:can only|only) help\b", r"\bno (?:results?|matches|products?)\b",
    r"\b(?:i['’]?m|i am) (?:not able|unable) to\b", r"\bunable to\b",
    r"\b(?:does|did)(?:n['’]?t| not) (?:look|seem) (?:like |to be )?(?:a |an )?(?:valid|right|correct)\b",
    r"\b(?:does|did)(?:n['’]?t| not) (?:look|seem) (?:like|to be) (?:a |an )?(?:real )?(?:order|e-?mail|phone|"
    r"post ?code|zip|number|date|address|code|card|name|tracking)\b",
    r"\b(?:is ?n['’]?t|is not|not) (?:a )?valid\b", r"\binvalid\b", r"\bplease try again\b", r"\btry again\b",
    r"\bcould(?:n['’]?t| not) (?:find|locate|match|process|verify)\b",
    r"\bi don['’]?t (?:have|know)\b", r"\bsomething went wrong\b", r"\bdon['’]?t recogni[sz]e\b",
    r"\bdid you mean\b", r"\bis it about one of these\b",
)

# Dissatisfaction with the service, in words that carry no negative valence.
COMPLAINT = _pattern(
    rf"\b(?:that|this|it){_NEG} what i (?:asked|said|meant|wanted|want|need|ordered)",
    r"\bnot what i (?:asked|said|meant|wanted|want|need|ordered)\b",
    r"\bi (?:already|just) (?:told|said|gave|asked|typed|wrote|answered|sent|explained)\b",
    r"\bi(?:['’]ve| have)? (?:already )?(?:told|said|asked|explained|written)(?: (?:you|u|this|that|it))? "
    r"(?:\w+ )?(?:times|twice|already|before|earlier)\b",
    r"\b(?:told|asked|said) (?:you|that|this)? ?(?:already|before|twice|earlier)\b",
    r"\b(?:you|u|ya)(?:['’]re| are| r|re) (?:not|n['’]?t) (?:even )?(?:listening|reading|understanding|helping|"
    r"getting it)\b",
    r"\b(?:you|u) aren['’]?t (?:even )?(?:listening|reading|understanding|helping|getting it)\b",
    r"\b(?:you|u|ya|the bot|this bot|this thing|it) (?:do|does|did|can|could)?(?:n['’]?t|not) (?:even )?"
    r"(?:understand|listen|read|get it|help|answer)\b",
    r"\b(?:does|did|is|was)(?:n['’]?t| not) (?:really )?(?:help(?:ful|ing)?|answer(?:ing)? my|what i)\b",
    r"\b(?:you|u) (?:didn['’]?t|did not|never|haven['’]?t) (?:answer|reply|respond|tell)\b",
    r"\banswer (?:my|the) question\b", r"\b(?:same|that) (?:answer|thing|message|reply|question) again\b",
    r"\bgoing (?:a)?round in circles\b", r"\bin a loop\b", r"\bhow many times\b",
    r"\bfor the (?:second|third|fourth|2nd|3rd|4th|last) time\b", r"\b(?:second|third|fourth|3rd) time\b",
    r"\bstill (?:not|no|nothing|waiting|hasn['’]?t|haven['’]?t|didn['’]?t|the same|wrong)\b",
    r"\bwhy (?:can['’]?t|won['’]?t|don['’]?t|doesn['’]?t|isn['’]?t) (?:you|it|this)\b",
    r"\b(?:useless|pointless|hopeless|ridiculous|waste of (?:my )?time|not helpful|unhelpful)\b",
    r"\bthis (?:bot|chat|assistant|thing) (?:is ?n['’]?t|is not|can['’]?t|cannot|does ?n['’]?t|does not|"
    r"is (?:useless|pointless|a joke|broken|stupid|rubbish|terrible|hopeless|crap))\b",
    r"\b(?:you|u) (?:keep|kept) (?:saying|asking|showing|sending|giving)\b",
    r"\bi (?:keep|kept) (?:saying|asking|telling|typing)\b",
    r"\bread (?:my|what i)\b", r"\bare you (?:even )?(?:a bot|real|listening|serious|kidding)\b",
    r"\bwhat\?+\s*$", r"^\W*(?:\?+|\.{3,}|hello\?+|hellooo*\W*)\W*$",
)

# Correcting the bot: one is normal, several in a row are not. "No, that's all" / "no thanks" are not.
_DECLINE = (r"(?![\s,.!]*(?:thanks|thank you|thx|ty\b|problem|worries|that['’]?s (?:all|it|everything|fine|ok)|"
            r"i['’]?m (?:good|fine|ok|okay|all set|sorted)|im (?:good|fine|ok)|all good|not (?:right )?now|"
            r"need|more|that['’]?ll be all|i don['’]?t|it['’]?s fine|just|i think|sorry))")
CORRECTION = _pattern(
    rf"^\W*(?:no|nope|nah|wrong|not that|not this|incorrect)\b{_DECLINE}",
    r"\bi (?:said|meant|asked for|specified|mentioned)\b",
    r"\b(?:wrong|incorrect) (?:one|order|item|date|day|time|size|colou?r|product|answer|address|number)\b",
    r"\bthat['’]?s (?:wrong|not right|not correct|incorrect)\b",
    r"\bnot the right (?:one|size|colou?r|item|order|address|product|thing|answer)\b",
)

GIVE_UP = _pattern(
    r"(?<!don['’]t )(?<!dont )(?<!not )\bforget (?:it|about it|this)\b(?!['’]s)", r"\bnever ?mind\b", r"\bnvm\b",
    r"^\W*whatever\W*$", r"\bwhatever,", r"\bi give up\b", r"\bgiving up\b",
    r"\b(?:i['’]?ll|i will|gonna|going to) (?:just )?(?:call|phone|ring|email)(?: (?:you|u|customer service|"
    r"support|the (?:shop|store|company|helpline|bank|hotline)|them))?(?: (?:instead|then|myself))?\W*$",
    r"\b(?:i['’]?ll|i will|gonna|going to) (?:just )?(?:go (?:elsewhere|somewhere else)|shop (?:elsewhere|"
    r"somewhere else)|buy (?:it )?(?:elsewhere|somewhere else|on amazon)|get it (?:elsewhere|on amazon)|"
    r"try (?:elsewhere|somewhere else|another (?:shop|store|site))|do it myself|figure it out myself)\b",
    r"^\W*(?:(?:ok|okay|fine|right|well|ugh|meh)\W+)?(?:i['’]?m|im) (?:done|out)(?: (?:with (?:this|you|it)|of here))?"
    r"\W*$", r"\bdon['’]?t bother\b",
    r"\bno point\b", r"\bnot worth it\b", r"\bforget i asked\b", r"^\W*(?:bye|ok bye|fine,? bye)\W*$",
    r"\bcancel (?:the )?(?:whole )?chat\b",
)

HUMAN = _pattern(
    rf"\b(?:speak|talk|chat)(?:ing)? (?:to|with) {_TARGET}",
    rf"\b(?:connect|transfer|put|pass|send|get)(?: me)?(?: through)? (?:to|with) {_TARGET}",
    r"\b(?:get|give|find) me (?:a |an |some )?(?:real |live |actual |human )?(?:human|person|agent|"
    r"representative|rep|operator|someone|somebody|manager|supervisor)\b",
    r"\b(?:real|live|actual) (?:person|human|agent|people)\b", r"\bhuman (?:being|please|agent)\b",
    r"^\W*(?:agent|human|operator|representative|person)\W*(?:please|pls|plz)?\W*$",
    r"\b(?:is there|can i get) (?:a |an )?(?:human|person|anybody|anyone)\b(?! (?:else|who bought))",
    r"\bcall me back\b", r"\bcallback\b",
)

# Negative words aimed at a product, its price or its style: they steer the search.
_PRODUCT = (r"(?:it|these|those|this|that|they|them|one|ones|colou?rs?|shade|style|design|look|material|fabric|"
            r"jacket|coat|shoes?|boots?|sneakers?|dress|shirt|top|jeans|pants|trousers|bag|hoodie|sweater|"
            r"headphones|earbuds|phone|laptop|speaker|watch|lamp|sofa|chair|table|price|prices|brand|pattern|"
            r"print|fit|cut|heel|sole|strap|case|cover|model|version|item|product|stuff|thing|things|options?|"
            r"results?|selection|pics?|photos?)")
CRITICISM = _pattern(
    r"\b(?:looks?|looking|seems?|feels?) (?:a bit |kinda |kind of |really |so |too |very |pretty )?(?:cheap|tacky|"
    r"ugly|flimsy|boring|old[- ]fashioned|dated|plain|weird|awful|terrible|bad|hideous|meh|basic|gross|nasty)\b",
    rf"\b(?:hate|dislike|don['’]?t like|do not like|not a fan of|can['’]?t stand) (?:the |that |this |those |these )?"
    rf"(?:\w+ )?{_PRODUCT}\b",
    rf"\b{_PRODUCT} (?:is|are|look|looks|seem|seems)?\s*(?:way |too |a bit |kinda |so |really |very )?(?:ugly|"
    r"hideous|cheap|tacky|flimsy|boring|pricey|expensive|overpriced|dear|bright|dull|plain|small|big|heavy|short|"
    r"long|loud|awful|terrible|bad|meh|gross)\b",
    r"\b(?:too|way too|so|really|bit|very) (?:expensive|pricey|dear|much|costly|ugly|cheap[- ]looking|"
    r"flashy|high|steep|bright|boring|plain|big|small|heavy)\b", r"\boverpriced\b",
    r"\bnot my (?:style|taste|thing|colou?r)\b",
    r"\b(?:something|anything|show me|got any|any) (?:nicer|better|cheaper|else|prettier|classier|warmer|"
    r"lighter|smaller|bigger|different)\b", r"\b(?:ugly|hideous|tacky|cheap[- ]looking|flimsy|overpriced)\b",
    r"\b(?:bad|terrible|awful|poor|mixed) reviews\b", r"\bin (?:blue|black|red|green|white|grey|gray|navy|"
    r"another colou?r|a different colou?r|other colou?rs?)\b",
)
_SERVICE = re.compile(
    r"\b(?:you|u|bot|chat|service|support|order|orders|refund|delivery|parcel|package|courier|tracking|"
    r"account|payment|charged|answer|help)\b", re.IGNORECASE)


def _words(text: str) -> int:
    return len(text.split())


def is_payload(text: str) -> bool:
    """A button's payload ("/intent{...}"): the shopper clicked, they did not type."""
    return text.lstrip().startswith("/")


def is_product_criticism(text: str) -> bool:
    """Negative words about a product, price or style, without words about the service."""
    return bool(CRITICISM.search(text)) and not _SERVICE.search(text) and not COMPLAINT.search(text)


@lru_cache(maxsize=8192)
def is_bot_failure(text: str) -> bool:
    return bool(BOT_FAILURE.search(text or ""))


def asks_for_person(text: str) -> bool:
    return bool(HUMAN.search(text or "")) and not is_payload(text or "")


# Pleasantries a bot says again and again in a conversation that goes well: never "the same answer again".
CLOSER = _pattern(
    r"\banything else\b", r"\b(?:can|may) i help (?:you )?with (?:anything|something) else\b",
    r"\bwhat else can i\b", r"\byou['’]?re (?:very )?welcome\b", r"\b(?:glad|happy) (?:i could|to) help\b",
    r"\bhave a (?:nice|great|good|lovely) (?:day|evening|one|weekend|trip)\b", r"\b(?:good)?bye\b",
    r"\bthank(?:s| you) for (?:shopping|contacting|choosing|using|chatting)\b", r"\benjoy\b",
)


_STOP_WORDS = (
    "a an the and or but if to of in on at for from by with about as into is are was were be been am do does did "
    "can could would will shall should may might must i me my mine you your yours we our us it its this that these "
    "those there here what which who whom whose when where why how please pls thanks thank hi hello hey ok okay yes "
    "no not just so too very really also any some all get got have has had want wanna need like know tell give "
    "show let make see look one ones")
_STOP = frozenset(_STOP_WORDS.split())


def _content(text: str) -> set[str]:
    """A message's content words, cut to five letters ("wrapping" and "wrap" meet as "wrapp"/"wrap")."""
    return {w[:5] for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP and len(w) > 1}


def answer_overlap(request: str, answer: str) -> float:
    """How much of a request's content the bot's answer mentions (0..1): a low share after a repeated request
    means the bot answered something else. Words match on their first four letters."""
    wanted = {w[:4] for w in _content(request)}
    if not wanted:
        return 1.0
    said = {w[:4] for w in _content(answer)}
    return len(wanted & said) / len(wanted)


def _tokens(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9']+", text.lower()))


@lru_cache(maxsize=8192)
def _reply_words(text: str) -> frozenset[str] | None:
    """A bot answer's words for comparing answers; None for a pleasantry or an answer under 4 words."""
    if CLOSER.search(text):
        return None
    words = _tokens(text)
    return words if len(words) >= 4 else None


def same_reply(a: str, b: str) -> bool:
    """Two bot replies that say the same thing: at least 4 words and 80% of their words shared, and not a
    pleasantry ("anything else I can help with?")."""
    ta, tb = _reply_words(a), _reply_words(b)
    if ta is None or tb is None:
        return False
    return len(ta & tb) / len(ta | tb) >= 0.8


@dataclass(frozen=True)
class Exchange:
    """One shopper message, with what the bot said since the shopper's previous message.

    ``sentiment``: VADER compound if already known (Rasa's parse data); scored from ``text`` when None.
    ``embedding``: the message's unit-length sentence embedding, or None (no repeat detection)."""

    text: str
    bot_before: tuple[str, ...] = ()
    intent: str | None = None
    confidence: float | None = None
    sentiment: float | None = None
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class MessageSignals:
    """The signals of one shopper message, in ``SIGNALS`` order, plus what people read about them."""

    values: tuple[float, ...]
    lexicon: tuple[str, ...]  # the sentiment lexicon's hits
    asked_before: int = 0  # earlier messages of the shopper this one repeats (similarity >= REPEAT_SIMILARITY)
    missed: bool = False  # the bot's answer just before failed, or hardly mentions what this request asks
    furious_about_order: bool = False  # see FURIOUS_ABOUT_ORDER

    @property
    def gave_up_after_failure(self) -> bool:
        """The shopper gives up ("forget it", "never mind") right after the bot failed or repeated itself: they
        are leaving unhappy, whatever the model says (the policy escalates on it at once)."""
        values = self.as_dict()
        return bool(values["give_up"]) and bool(values["bot_failed"] or values["bot_repeated"])

    @property
    def third_attempt_missed(self) -> bool:
        """The shopper asks the same thing a third time and the bot's last answer missed it: a loop that a
        person should break, whatever the model says (the policy escalates on it at once)."""
        return self.asked_before >= 2 and self.missed

    def as_dict(self) -> dict[str, float]:
        return dict(zip(SIGNALS, self.values, strict=True))


@dataclass(frozen=True)
class _Words:
    """What the signals read from one message's words alone (cached: the policy rereads the episode)."""

    compound: float
    lexicon: tuple[str, ...]
    criticism: bool
    complaint: bool
    correction: bool
    give_up: bool
    person: bool
    words: int
    about_order: bool = False  # order words: an order, parcel, delivery, refund, an order number


@lru_cache(maxsize=8192)
def _words_of(text: str) -> _Words:
    scored = score(text)
    return _Words(scored.compound, scored.lexicon, is_product_criticism(text), bool(COMPLAINT.search(text)),
                  bool(CORRECTION.search(text)), bool(GIVE_UP.search(text)), asks_for_person(text), _words(text),
                  bool(ORDER_WORDS.search(text)))


_NOTHING = _Words(0.0, (), False, False, False, False, False, 0)  # a button's payload: the shopper typed nothing


def signal_rows(exchanges: Sequence[Exchange]) -> list[MessageSignals]:
    """The signals of every shopper message of one bot episode, in order (each row sees only the messages
    before it, so row ``i`` is what the policy computes when message ``i`` arrives)."""
    rows: list[MessageSignals] = []
    embeddings: list[np.ndarray] = []  # earlier content messages' embeddings
    bot_said: list[str] = []
    lengths: list[int] = []
    last_request: tuple[str, np.ndarray] | None = None  # the shopper's previous message, when it was a request
    mood = 0.0
    repeats = bot_failures = bot_repeats = complaints = corrections = 0
    for exchange in exchanges:
        text = (exchange.text or "").strip()
        payload = is_payload(text)
        bot_failed = float(any(is_bot_failure(reply) for reply in exchange.bot_before))
        turn = " ".join(exchange.bot_before)  # the bot's whole answer: its texts, and the products it showed
        bot_repeated = float(bool(turn) and any(same_reply(turn, earlier) for earlier in bot_said[-REPLY_WINDOW:]))
        if turn:
            bot_said.append(turn)
        bot_failures += int(bot_failed)
        bot_repeats += int(bot_repeated)
        said = _NOTHING if payload else _words_of(text)
        sentiment = said.compound if exchange.sentiment is None or payload else float(exchange.sentiment)
        lexicon = said.lexicon
        criticism = float(said.criticism)
        service = 0.0 if criticism else sentiment
        mood += MOOD_ALPHA * (service - mood)
        rephrase = unanswered = 0.0
        asked_before = 0
        words = said.words
        content = not payload and words >= CONTENT_WORDS and exchange.embedding is not None
        if content:
            vector = np.asarray(exchange.embedding, dtype=np.float32)
            if embeddings:
                similarities = np.stack(embeddings) @ vector
                rephrase = max(0.0, float(np.max(similarities)))
                asked_before = int(np.sum(similarities >= REPEAT_SIMILARITY))
            if last_request is not None:  # asked the previous request again, and the bot's answer missed it
                again = max(0.0, float(last_request[1] @ vector))
                unanswered = again * (1.0 - answer_overlap(last_request[0], turn)) if again >= REPEAT_SIMILARITY \
                    else 0.0
            embeddings.append(vector)
        repeated = rephrase >= REPEAT_SIMILARITY
        repeats += int(repeated)
        complaint = float(said.complaint)
        correction = float(said.correction)
        complaints += int(complaint)
        corrections += int(correction)
        previous = [n for n in lengths if n > 0]
        ratio = min(3.0, words / (sum(previous) / len(previous))) if previous and words else 1.0
        shrinking = float(len(lengths) >= 2 and 0 < words < lengths[-1] < lengths[-2])
        if not payload:
            lengths.append(words)
        if content:
            last_request = (text, vector)
        elif not payload:
            last_request = None
        failed_before = max(bot_failed, bot_repeated)
        missed = bool(bot_failed) or (content and answer_overlap(text, turn) < 0.5)
        values = (
            sentiment, max(0.0, -service), mood, float(min(3, len(lexicon))), criticism,
            rephrase, float(min(4, repeats)),
            bot_failed, float(min(5, bot_failures)), bot_repeated, float(min(5, bot_repeats)),
            complaint, float(min(4, complaints)), correction, float(min(4, corrections)),
            float(said.give_up), float(said.person),
            math.log1p(words), ratio, shrinking,
            float(repeated) * failed_before, correction * failed_before,
            float(repeats >= 2), float(bot_failures + bot_repeats >= 2),
            float(service <= FURIOUS and bool(lexicon)), unanswered,
        )
        furious_about_order = (not criticism and said.about_order and bool(lexicon)
                               and service <= FURIOUS_ABOUT_ORDER)
        rows.append(MessageSignals(tuple(round(v, 4) for v in values), lexicon, asked_before, missed,
                                   furious_about_order))
    return rows
