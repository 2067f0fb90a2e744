"""Several requests in one message: "i need a warm jacket under 80, and do you ship to canada?".

The message is cut into clauses at sentence ends and at the words people join requests with ("and",
"also", "plus", "btw", ...). A clause the knowledge base answers on its own with confidence (the same
``knowledge_answer_threshold`` that answers a message NLU could not place) is a side question; the rest of
the message, with its own wording and joins, is the main request. A message whose every clause is a side
question is left whole: it is one policy question, not a search with a question attached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.knowledge.base import Choice, KnowledgeBase

# A separator is kept with the clause after it, so the main request can be put back together as written.
_SEPARATOR = re.compile(r"(?:(?<=[?!.;])\s+|\s*,\s*(?:and\s+|also\s+|plus\s+|but\s+)?|\s+(?:and also|and|also|plus|"
                        r"btw|by the way|oh and|one more thing|another thing)\b[\s,:]*)", re.IGNORECASE)
_MIN_WORDS = 3  # "and red" is a product detail, not a question


@dataclass(frozen=True)
class SideQuestion:
    text: str
    choice: Choice


@dataclass(frozen=True)
class Requests:
    main: str  # the message without its side questions (the whole message when there are none)
    side: tuple[SideQuestion, ...]


def clauses(text: str) -> list[tuple[str, str]]:
    """(separator before it, clause) pairs, in order; the first separator is empty."""
    parts: list[tuple[str, str]] = []
    start, separator = 0, ""
    for match in _SEPARATOR.finditer(text):
        if match.start() > start:
            parts.append((separator, text[start:match.start()]))
            separator, start = match.group(0), match.end()
    if start < len(text):
        parts.append((separator, text[start:]))
    return [(sep, clause) for sep, clause in parts if clause.strip()]


def split_requests(knowledge: KnowledgeBase, text: str) -> Requests:
    parts = clauses(text)
    if len(parts) < 2:
        return Requests(text, ())
    side: list[SideQuestion] = []
    kept: list[tuple[str, str]] = []
    for separator, clause in parts:
        choice = knowledge.choose(clause, None) if len(clause.split()) >= _MIN_WORDS else None
        if choice is not None and choice.kind == "answer" and choice.topic is not None:
            side.append(SideQuestion(clause.strip(), choice))
        else:
            kept.append((separator, clause))
    if not side or not kept:
        return Requests(text, ())
    main = kept[0][1] + "".join(sep + clause for sep, clause in kept[1:])
    return Requests(main.strip(" ,;"), tuple(side))
