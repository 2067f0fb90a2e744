"""Semantic retrieval over the policy file's answers, and the choice between NLU, retrieval and a question.

Each entry's ``questions`` are embedded with the sentence encoder the product search uses (all-MiniLM-L6-v2);
a message scores against an entry with its best cosine similarity to one of the questions, plus
``knowledge_fact_boost`` when it names one of the entry's facts (a country, a shipping or payment method,
a section such as "gift cards"), plus ``knowledge_intent_bonus`` for the entry the NLU intent names.

The knowledge base follows the policy file (:class:`bot.knowledge.shop_policy_file.PolicySource`): on every
call it checks the file, and after a change it embeds only the questions it has not embedded before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bot.config import Settings, get_settings
from bot.knowledge.asked import NOTHING_ASKED, Asked, Vocabulary
from bot.knowledge.shop_policy_file import Entry, PolicyAnswer, PolicySource, ShopPolicy, policy_source

Encoder = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class KnowledgeMatch:
    topic: str
    label: str
    score: float  # similarity plus boosts
    similarity: float  # best cosine similarity to one of the entry's questions
    question: str  # that question
    first_question: str  # the entry's first question: what a clarifying button sends
    names_fact: bool  # the message names one of the entry's facts


@dataclass(frozen=True)
class Choice:
    """What to say: an entry's ``answer``, a ``clarify``-ing question over ``matches``, or ``none`` of it."""

    kind: Literal["answer", "clarify", "none"]
    topic: str | None
    matches: tuple[KnowledgeMatch, ...]  # best first; the options of a clarifying question
    asked: Asked
    why: str  # "button", "intent", "retrieval", "weak" or "below threshold": for logs and tests


@dataclass(frozen=True)
class _Index:
    policy: ShopPolicy
    entries: tuple[Entry, ...]  # the entries with questions
    vectors: np.ndarray  # one row per question, grouped by entry
    starts: np.ndarray  # each entry's first row
    sections: tuple[Vocabulary[bool], ...]  # per entry: names of its fact sections ("gift cards", "pickup")


def clean(text: str) -> str:
    """The text the encoder can take: lone surrogates (possible in JSON from a client) become "?"."""
    return text.encode("utf-8", "replace").decode("utf-8")


def related(a: str, b: str) -> bool:
    """Whether two dotted fact names are the same fact or one holds the other."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def uses(entry: Entry, asked: Asked) -> bool:
    """Whether ``entry`` uses a fact that the message named."""
    return any(related(mine, named) for mine in entry.facts for named in asked.facts)


def _item_names(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _item_names(item)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                yield item["name"]
            yield from _item_names(item)


def _sections(policy: ShopPolicy, entry: Entry) -> Vocabulary[bool]:
    names: list[str] = []
    for dotted in entry.facts:
        value = policy.fact(dotted)
        if isinstance(value, dict | list):
            names.append(dotted.rsplit(".", 1)[-1].replace("_", " "))
            names.extend(_item_names(value))
    return Vocabulary((name, True) for name in names)


class KnowledgeBase:
    def __init__(self, source: PolicySource, encode: Encoder | None = None, settings: Settings | None = None) -> None:
        self._source = source
        self._encode_fn = encode
        self.settings = settings or get_settings()
        self._lock = threading.Lock()
        self._index: _Index | None = None
        self._vectors: dict[str, np.ndarray] = {}  # question -> embedding, kept across versions of the file
        # message -> embedding, the most recent ones (SHOP_SEARCH_QUERY_CACHE): shoppers ask the same questions
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self.embedded = 0  # texts embedded for questions so far (a reload embeds only new questions)

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self._encode_fn is None:
            from bot.search.embeddings import get_embedder

            self._encode_fn = get_embedder().encode
        return self._encode_fn(texts)

    def _message_vector(self, text: str) -> np.ndarray:
        size = self.settings.search_query_cache
        with self._lock:
            vector = self._recent.get(text)
            if vector is not None:
                self._recent.move_to_end(text)
                return vector
        vector = self._encode([text])[0]
        if size > 0:
            with self._lock:
                self._recent[text] = vector
                while len(self._recent) > size:
                    self._recent.popitem(last=False)
        return vector

    @property
    def policy(self) -> ShopPolicy:
        """The current version of the policy file."""
        return self._current().policy

    def _current(self) -> _Index:
        policy = self._source.current()
        index = self._index
        if index is not None and index.policy is policy:
            return index
        with self._lock:
            if self._index is None or self._index.policy is not policy:
                self._index = self._build(policy)
            return self._index

    def _build(self, policy: ShopPolicy) -> _Index:
        entries = tuple(e for e in policy.entries if e.questions)
        questions = [q for e in entries for q in e.questions]
        new = sorted({q for q in questions if q not in self._vectors})
        if new:
            for text, vector in zip(new, self._encode(new), strict=True):
                self._vectors[text] = vector
            self.embedded += len(new)
        self._vectors = {q: self._vectors[q] for q in questions}  # forget questions no entry asks any more
        vectors = np.stack([self._vectors[q] for q in questions]) if questions else np.zeros((0, 1), np.float32)
        starts = np.cumsum([0, *[len(e.questions) for e in entries[:-1]]]) if entries else np.zeros(0, np.int64)
        sections = tuple(_sections(policy, e) for e in entries)
        return _Index(policy, entries, vectors, starts.astype(np.int64), sections)

    def asked(self, text: str) -> Asked:
        """What the message names among the current facts."""
        return self.policy.extractor.extract(clean(text))

    def match(self, text: str, hint_topic: str | None = None, asked: Asked | None = None) -> list[KnowledgeMatch]:
        """Every entry with questions, best first, scored against ``text``.

        ``hint_topic`` (the NLU intent's entry) gets ``knowledge_intent_bonus``. ``asked`` is what the text
        names (extracted when not given)."""
        index = self._current()
        text = clean(text)
        if not text.strip() or not index.entries:
            return []
        asked = asked if asked is not None else index.policy.extractor.extract(text)
        similarities = index.vectors @ self._message_vector(text)
        ends = [*index.starts[1:], len(similarities)]
        settings = self.settings
        matches = []
        for entry, start, end, sections in zip(index.entries, index.starts, ends, index.sections, strict=True):
            best = int(start + np.argmax(similarities[start:end]))
            similarity = float(similarities[best])
            names = uses(entry, asked) or sections.find(text) is not None
            score = (similarity + (settings.knowledge_fact_boost if names else 0.0)
                     + (settings.knowledge_intent_bonus if entry.topic == hint_topic else 0.0))
            matches.append(KnowledgeMatch(entry.topic, entry.label, round(score, 4), round(similarity, 4),
                                          entry.questions[best - start], entry.questions[0], names))
        return sorted(matches, key=lambda m: -m.score)

    def choose(self, text: str, intent: str | None) -> Choice:
        """What to answer ``text`` with, given the NLU ``intent``.

        A policy intent (one that names an entry) keeps its own entry unless another scores at least
        ``knowledge_margin`` higher; an own entry that uses what the message named (the country, the
        method) and is not weak stays anyway. A chosen entry under ``knowledge_clarify_threshold`` that does
        not use what the message named becomes a clarifying question. Any other intent (out of
        scope, NLU fallback) gets an entry only from ``knowledge_answer_threshold`` up.
        """
        index = self._current()
        policy = index.policy
        text = clean(text)
        asked = policy.extractor.extract(text)
        own = policy.entry(intent) if intent else None
        if text.strip().startswith("/") or not text.strip():  # a button's intent payload: no words to match
            return Choice("answer" if own else "none", own.topic if own else None, (), asked, "button")
        matches = self.match(text, hint_topic=own.topic if own else None, asked=asked)
        settings = self.settings
        if own is not None:
            mine = next((m for m in matches if m.topic == own.topic), None)
            if mine is None:  # an entry without questions: the intent alone decides
                return Choice("answer", own.topic, tuple(matches[:1]), asked, "intent")
            top = matches[0]
            chosen, why = mine, "intent"
            keeps = uses(own, asked) and mine.score >= settings.knowledge_clarify_threshold
            if top.topic != own.topic and top.score >= mine.score + settings.knowledge_margin and not keeps:
                chosen, why = top, "retrieval"
            chosen_entry = policy.entry(chosen.topic)
            if chosen.score < settings.knowledge_clarify_threshold and not (chosen_entry and uses(chosen_entry, asked)):
                return Choice("clarify", None, tuple(matches[:settings.knowledge_clarify_options]), asked, "weak")
            return Choice("answer", chosen.topic, (chosen,), asked, why)
        if matches and matches[0].score >= settings.knowledge_answer_threshold:
            return Choice("answer", matches[0].topic, (matches[0],), asked, "retrieval")
        return Choice("none", None, tuple(matches[:settings.knowledge_clarify_options]), asked, "below threshold")

    def answer(self, topic: str, asked: Asked = NOTHING_ASKED) -> PolicyAnswer:
        """The current version's answer for ``topic``, with what the message named."""
        return self.policy.answer(topic, asked)


@lru_cache(maxsize=4)
def knowledge_base(path: Path) -> KnowledgeBase:
    return KnowledgeBase(policy_source(path))


def get_knowledge_base() -> KnowledgeBase:
    """The knowledge base over the configured policy file, shared by the whole process."""
    return knowledge_base(get_settings().policy_file)
