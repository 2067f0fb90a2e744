"""The current bot episode in Rasa tracker events (their JSON form: rasa-sdk's ``tracker.events``, or
``event.as_dict()`` in Rasa): what happened since an agent last handed the conversation back.

Pure Python: the Rasa policy (Python 3.10) and the action server both read it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

ESCALATE_ACTION = "action_escalate"


def since_handback(events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The events after the latest ``resume`` (agent handed back) or ``restart``: the current bot episode."""
    events = list(events)
    for i in range(len(events) - 1, -1, -1):
        if events[i].get("event") in ("resume", "restart"):
            return events[i + 1:]
    return events



def segment_from_events(events: Iterable[Mapping[str, Any]]) -> str | None:
    """The CRM segment the gateway put in the metadata of the shopper's messages (signed-in shoppers): the
    latest message that carries one, in the current bot episode."""
    for event in reversed(since_handback(events)):
        if event.get("event") == "user" and (segment := (event.get("metadata") or {}).get("segment")):
            return str(segment)
    return None


def escalated_since_handback(events: Iterable[Mapping[str, Any]], action: str = ESCALATE_ACTION) -> bool:
    """True once ``action_escalate`` ran in the current bot episode: the policy never escalates twice."""
    return any(e.get("event") == "action" and e.get("name") == action for e in since_handback(events))
