"""The NLU inbox: shopper messages read from Rasa's stored events, grouped, filtered and labelled by leads.

:func:`ingest` reads the ``user`` events after a stored cursor and keeps one ``nlu_messages`` row per typed
shopper message (button payloads, empty texts and messages sent while an agent held the conversation are
skipped; emails, phone numbers, card numbers and IBANs replaced by placeholders of the same shape, see
:func:`bot.privacy.redact.redact_example`), with the reasons a lead should look at it:

- ``fallback``: Rasa predicted ``nlu_fallback``, or the bot's next action was ``action_default_fallback``;
- ``low_confidence``: the best real intent scored below ``inbox_confidence_threshold``;
- ``escalated``: the bot's next action was ``action_escalate`` (a handoff to a person);
- ``sampled``: a fixed share of the confident ones, chosen by a hash of the event id (deterministic).

"Next action" is the first action of the conversation after the message other than ``action_listen``
and ``action_unlikely_intent``, before the shopper's next message; it may be stored after the cursor
moved on, so each batch first looks back at what its conversations did before it. Labels live on the row,
and every change adds a row to ``nlu_label_history`` (who, when, what).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from sqlalchemy import and_, desc, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.clock import utcnow
from bot.db import rows_affected
from bot.privacy.redact import redact_example
from bot.rasa_events import EVENTS, RasaEvent, has_events, read_events, tracker_engine
from bot.training.nlu_yaml import (
    FALLBACK_INTENT,
    OUT_OF_SCOPE_INTENT,
    ExportResult,
    domain_intents,
    entity_names,
    export_labels,
    group_key,
    known_intents,
)
from bot.training.tables import (
    IGNORED,
    LABELLED,
    OPEN,
    OUT_OF_SCOPE,
    STATUSES,
    TEST,
    TRAIN,
    IngestState,
    ModelVersion,
    NluLabelEvent,
    NluMessage,
)

__all__ = [
    "REASONS", "ExportResult", "InboxError", "InboxQuery", "entity_names", "export_labels", "group_key", "ingest",
    "known_intents", "label_messages", "labels_summary", "list_groups", "message_detail", "pending_labels",
]

REASONS = ("fallback", "low_confidence", "escalated", "sampled")
ACTIONS = ("intent", "out_of_scope", "ignore", "reopen")
INTENT_NAME = re.compile(r"^[a-z][a-z0-9_]{1,47}$")
NOT_A_REPLY = frozenset({"action_listen", "action_unlikely_intent", "action_extract_slots"})
ESCALATE, DEFAULT_FALLBACK = "action_escalate", "action_default_fallback"
EVENT_TYPES = ("user", "action", "pause", "resume", "restart")
CHUNK = 5000
MAX_PAGE_SIZE = 200
CONTEXT_EVENTS = 3
_INGEST_LOCK = threading.Lock()


class InboxError(Exception):
    """A request the inbox refuses: HTTP status, a stable code and a sentence for the lead."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def detail(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


def iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


# --------------------------------------------------------------------------- ingest


def top_prediction(parse_data: dict[str, Any]) -> tuple[str, float]:
    """The best intent other than ``nlu_fallback`` and its confidence (``("", 0.0)`` when there is none)."""
    candidates = list(parse_data.get("intent_ranking") or [])
    intent = parse_data.get("intent")
    if isinstance(intent, dict):
        candidates.append(intent)
    best: tuple[str, float] = ("", 0.0)
    for candidate in candidates:
        if not isinstance(candidate, dict):
            continue
        name, confidence = str(candidate.get("name") or ""), candidate.get("confidence")
        if not name or name == FALLBACK_INTENT or not isinstance(confidence, int | float):
            continue
        if not best[0] or float(confidence) > best[1]:
            best = (name, float(confidence))
    return best


def sampled(event_id: int, rate: float) -> bool:
    """Deterministic sample: the event id's sha256 read as a fraction of its range is below ``rate``."""
    digest = hashlib.sha256(str(event_id).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def _predicted_entities(parse_data: dict[str, Any], text: str) -> list[dict[str, Any]]:
    out = []
    for entity in parse_data.get("entities") or []:
        try:
            start, end = int(entity["start"]), int(entity["end"])
        except (KeyError, TypeError, ValueError):
            continue
        if 0 <= start < end <= len(text) and entity.get("entity"):
            out.append({"start": start, "end": end, "entity": str(entity["entity"]),
                        "value": str(entity.get("value", text[start:end]))})
    return out


def _source(tracker_url: str) -> str:
    return hashlib.sha256(tracker_url.encode()).hexdigest()


class _Raced(Exception):
    """Another ingest moved the cursor first."""


@dataclass
class _Conversation:
    paused: bool = False
    waiting: NluMessage | None = None  # the message whose next action has not been seen yet


def _chunks(events: Iterator[RasaEvent], size: int) -> Iterator[list[RasaEvent]]:
    batch: list[RasaEvent] = []
    for event in events:
        batch.append(event)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _before(session: Session, tracker_url: str, cursor: int, senders: Sequence[str]) -> dict[str, _Conversation]:
    """Where each conversation stood at the cursor: paused, and a message still waiting for its next action."""
    states: dict[str, _Conversation] = {}
    if cursor <= 0:
        return states
    last: dict[tuple[str, str], int] = {}
    engine = tracker_engine(tracker_url)
    for i in range(0, len(senders), 500):
        part = list(senders[i:i + 500])
        query = (select(EVENTS.c.sender_id, EVENTS.c.type_name, func.max(EVENTS.c.id))
                 .where(EVENTS.c.id <= cursor, EVENTS.c.sender_id.in_(part),
                        or_(EVENTS.c.type_name.in_(("user", "pause", "resume", "restart")),
                            and_(EVENTS.c.type_name == "action", EVENTS.c.action_name.notin_(NOT_A_REPLY))))
                 .group_by(EVENTS.c.sender_id, EVENTS.c.type_name))
        with engine.connect() as conn:
            for sender, kind, top in conn.execute(query):
                last[(sender, kind)] = int(top)
    waiting_ids: dict[int, str] = {}
    for sender in senders:
        def at(kind: str, sender: str = sender) -> int:
            return last.get((sender, kind), 0)
        state = _Conversation(paused=at("pause") > max(at("resume"), at("restart")))
        user = at("user")
        if user and at("action") < user and at("restart") < user:
            waiting_ids[user] = sender
        states[sender] = state
    if waiting_ids:
        for row in session.scalars(select(NluMessage).where(NluMessage.event_id.in_(list(waiting_ids)))):
            states[waiting_ids[row.event_id]].waiting = row
    return states


def _new_row(event: RasaEvent, text: str, threshold: float, sample_rate: float) -> NluMessage:
    """The inbox row of a shopper's message: its personal data (emails, phone numbers, card numbers, IBANs)
    replaced by placeholders of the same shape, the predicted entities moved to fit."""
    parse_data = event.parse_data
    text, entities = redact_example(text, _predicted_entities(parse_data, text))
    intent, confidence = top_prediction(parse_data)
    predicted = parse_data.get("intent") if isinstance(parse_data.get("intent"), dict) else {}
    fallback = (predicted or {}).get("name") == FALLBACK_INTENT
    low = not intent or confidence < threshold
    sample = not low and not fallback and sampled(event.id, sample_rate)
    return NluMessage(
        event_id=event.id, sender_id=event.sender_id[:255], text=text, group_key=group_key(text),
        timestamp=datetime.fromtimestamp(event.timestamp, UTC).replace(tzinfo=None), intent=intent[:100],
        confidence=round(confidence, 6), entities=entities, low_confidence=low,
        fallback=fallback, escalated=False, sampled=sample, in_inbox=low or fallback or sample, status=OPEN,
        label_intent=None, label_entities=[], label_target=TRAIN)


def _ingest_chunk(session: Session, tracker_url: str, cursor: int, events: list[RasaEvent], threshold: float,
                  sample_rate: float) -> int:
    states = _before(session, tracker_url, cursor, sorted({e.sender_id for e in events}))
    added = 0
    for event in events:
        state = states.setdefault(event.sender_id, _Conversation())
        if event.type_name == "user":
            state.waiting = None
            text = event.text
            if state.paused or not text.strip() or text.lstrip().startswith("/"):
                continue
            row = _new_row(event, text, threshold, sample_rate)
            session.add(row)
            state.waiting = row
            added += 1
        elif event.type_name == "action":
            name = event.action_name or str(event.data.get("name") or "")
            if name in NOT_A_REPLY:
                continue
            if state.waiting is not None:
                if name == ESCALATE:
                    state.waiting.escalated = True
                elif name == DEFAULT_FALLBACK:
                    state.waiting.fallback = True
                state.waiting.in_inbox = bool(state.waiting.in_inbox or state.waiting.escalated
                                              or state.waiting.fallback)
            state.waiting = None
        elif event.type_name == "pause":
            state.paused = True
        elif event.type_name in ("resume", "restart"):
            state.paused = False
            if event.type_name == "restart":
                state.waiting = None
    new_cursor = events[-1].id
    source = _source(tracker_url)
    if cursor == 0 and session.get(IngestState, source) is None:
        session.add(IngestState(source=source, last_event_id=new_cursor, updated_at=utcnow()))
    else:
        moved = session.execute(update(IngestState)
                                .where(IngestState.source == source, IngestState.last_event_id == cursor)
                                .values(last_event_id=new_cursor, updated_at=utcnow()))
        if rows_affected(moved) != 1:
            raise _Raced
    session.commit()
    return added


def cursor_of(session: Session, tracker_url: str) -> int:
    state = session.get(IngestState, _source(tracker_url))
    return state.last_event_id if state else 0


def ingest(session: Session, tracker_url: str, *, threshold: float, sample_rate: float, chunk: int = CHUNK) -> int:
    """Reads Rasa's events after the stored cursor into ``nlu_messages``; returns how many messages it added.

    Commits after each chunk of events (the rows and the cursor together). Safe to run twice at once: the
    cursor only moves from the value a run read, and ``event_id`` is unique, so a run that lost the race
    rolls back and continues from where the other one stopped.
    """
    if not has_events(tracker_url):
        return 0
    added = 0
    with _INGEST_LOCK:
        for _attempt in range(5):
            try:
                while True:
                    session.expire_all()
                    cursor = cursor_of(session, tracker_url)
                    batch = next(_chunks(read_events(tracker_url, after_id=cursor, types=EVENT_TYPES), chunk), None)
                    if not batch:
                        return added
                    added += _ingest_chunk(session, tracker_url, cursor, batch, threshold, sample_rate)
            except (IntegrityError, _Raced):
                session.rollback()
    return added


# --------------------------------------------------------------------------- the grouped list


@dataclass
class InboxQuery:
    q: str = ""
    intent: str = ""
    reason: str = ""
    status: str = OPEN
    min_conf: float | None = None
    max_conf: float | None = None
    since: date | None = None
    until: date | None = None
    page: int = 1
    page_size: int = 50

    @classmethod
    def parse(cls, params: dict[str, str | None]) -> InboxQuery:
        """From query-string values; a bad one raises :class:`InboxError` (400) naming it."""
        def text(name: str) -> str:
            return (params.get(name) or "").strip()

        def number(name: str, kind: type, low: float, high: float) -> Any:
            raw = text(name)
            if not raw:
                return None
            try:
                value = kind(raw)
            except ValueError:
                raise InboxError(400, "bad_filter", f"{name} must be a number, got '{raw}'.") from None
            if not low <= value <= high:
                raise InboxError(400, "bad_filter", f"{name} must be between {low:g} and {high:g}.")
            return value

        def day(name: str) -> date | None:
            raw = text(name)
            if not raw:
                return None
            try:
                return date.fromisoformat(raw)
            except ValueError:
                raise InboxError(400, "bad_filter", f"{name} must be a date like 2024-05-31, got '{raw}'.") from None

        reason, status = text("reason"), text("status") or OPEN
        if reason and reason not in REASONS:
            raise InboxError(400, "bad_filter", f"reason must be one of {', '.join(REASONS)}.")
        if status != "all" and status not in STATUSES:
            raise InboxError(400, "bad_filter", f"status must be one of {', '.join(STATUSES)} or all.")
        query = cls(q=text("q")[:200], intent=text("intent")[:100], reason=reason, status=status,
                    min_conf=number("min_conf", float, 0, 1), max_conf=number("max_conf", float, 0, 1),
                    since=day("since"), until=day("until"), page=number("page", int, 1, 1_000_000) or 1,
                    page_size=number("page_size", int, 1, MAX_PAGE_SIZE) or 50)
        if query.since and query.until and query.since > query.until:
            raise InboxError(400, "bad_filter", "since must not be after until.")
        return query

    def conditions(self) -> list[Any]:
        where: list[Any] = [NluMessage.in_inbox.is_(True)]
        if self.q:
            where.append(func.lower(NluMessage.text).contains(self.q.lower(), autoescape=True))
        if self.intent:
            where.append(or_(NluMessage.intent == self.intent, NluMessage.label_intent == self.intent))
        if self.reason:
            where.append(getattr(NluMessage, self.reason).is_(True))
        if self.status != "all":
            where.append(NluMessage.status == self.status)
        if self.min_conf is not None:
            where.append(NluMessage.confidence >= self.min_conf)
        if self.max_conf is not None:
            where.append(NluMessage.confidence <= self.max_conf)
        if self.since:
            where.append(NluMessage.timestamp >= datetime.combine(self.since, datetime.min.time()))
        if self.until:
            where.append(NluMessage.timestamp < datetime.combine(self.until + timedelta(days=1), datetime.min.time()))
        return where


def reasons_of(row: Any) -> list[str]:
    return [reason for reason in REASONS if getattr(row, reason)]


# the columns a group is summarised from (whole rows would also load the JSON columns)
_GROUP_COLUMNS = (NluMessage.id, NluMessage.group_key, NluMessage.text, NluMessage.timestamp, NluMessage.intent,
                  NluMessage.confidence, NluMessage.fallback, NluMessage.low_confidence, NluMessage.escalated,
                  NluMessage.sampled, NluMessage.status, NluMessage.label_intent, NluMessage.label_target,
                  NluMessage.labelled_at)


def _group(key: str, rows: list[Any]) -> dict[str, Any]:
    """``rows`` (of ``_GROUP_COLUMNS``) newest first."""
    texts: list[str] = []
    for row in rows:
        if row.text not in texts:
            texts.append(row.text)
            if len(texts) == 5:
                break
    intents = Counter(row.intent for row in rows if row.intent)
    top = sorted(intents.items(), key=lambda kv: (-kv[1], kv[0]))
    reasons = {reason for reason in REASONS if any(getattr(row, reason) for row in rows)}
    labelled = [row for row in rows if row.status in (LABELLED, OUT_OF_SCOPE) and row.labelled_at]
    last_label = max(labelled, key=lambda row: (row.labelled_at, row.id)) if labelled else None
    return {
        "group_key": key, "text": rows[0].text, "count": len(rows), "message_ids": [row.id for row in rows],
        "texts": texts, "intent": top[0][0] if top else "",
        "confidence": round(min(row.confidence for row in rows), 3),
        "reasons": [reason for reason in REASONS if reason in reasons],
        "first_at": iso(min(row.timestamp for row in rows)), "last_at": iso(rows[0].timestamp),
        "status": OPEN if any(row.status == OPEN for row in rows) else rows[0].status,
        "label_intent": (OUT_OF_SCOPE_INTENT if last_label.status == OUT_OF_SCOPE else last_label.label_intent)
        if last_label else None,
        "label_target": last_label.label_target if last_label else None,
    }


def list_groups(session: Session, query: InboxQuery, root: Path) -> dict[str, Any]:
    """One page of groups of near-duplicate messages: most frequent first, then most recent."""
    where = query.conditions()
    total = int(session.scalar(select(func.count(func.distinct(NluMessage.group_key))).where(*where)) or 0)
    count, last = func.count(NluMessage.id).label("n"), func.max(NluMessage.timestamp).label("last")
    page = session.execute(
        select(NluMessage.group_key, count, last).where(*where).group_by(NluMessage.group_key)
        .order_by(desc(count), desc(last), NluMessage.group_key)
        .limit(query.page_size).offset((query.page - 1) * query.page_size)).all()
    keys = [row.group_key for row in page]
    members: dict[str, list[Any]] = {key: [] for key in keys}
    if keys:
        for row in session.execute(select(*_GROUP_COLUMNS).where(*where, NluMessage.group_key.in_(keys))
                                   .order_by(NluMessage.timestamp.desc(), NluMessage.id.desc())):
            members[row.group_key].append(row)
    return {"total_groups": total, "page": query.page, "page_size": query.page_size,
            "groups": [_group(key, members[key]) for key in keys if members[key]],
            "intents": known_intents(root, session), "entities": entity_names(root)}


# --------------------------------------------------------------------------- one message


def _context(tracker_url: str, row: NluMessage) -> dict[str, list[dict[str, str]]]:
    """The shopper's and the bot's texts just before and after the message in its conversation."""
    def lines(rows: Iterable[Any]) -> list[dict[str, str]]:
        out = []
        for found in rows:
            try:
                data = json.loads(found.data or "{}")
            except ValueError:
                continue
            text = str((data or {}).get("text") or "").strip()
            if text:
                out.append({"who": "shopper" if found.type_name == "user" else "bot", "text": text})
        return out

    if not has_events(tracker_url):
        return {"before": [], "after": []}
    base = select(EVENTS.c.id, EVENTS.c.type_name, EVENTS.c.data).where(
        EVENTS.c.sender_id == row.sender_id, EVENTS.c.type_name.in_(("user", "bot")))
    with tracker_engine(tracker_url).connect() as conn:
        before = lines(conn.execute(base.where(EVENTS.c.id < row.event_id).order_by(EVENTS.c.id.desc()).limit(20)))
        after = lines(conn.execute(base.where(EVENTS.c.id > row.event_id).order_by(EVENTS.c.id).limit(20)))
    return {"before": list(reversed(before[:CONTEXT_EVENTS])), "after": after[:CONTEXT_EVENTS]}


def _history(session: Session, message_id: int) -> list[NluLabelEvent]:
    return list(session.scalars(select(NluLabelEvent).where(NluLabelEvent.message_id == message_id)
                                .order_by(NluLabelEvent.at.desc(), NluLabelEvent.id.desc())))


def message_view(row: NluMessage, labelled_by: str | None = None) -> dict[str, Any]:
    return {"id": row.id, "event_id": row.event_id, "text": row.text, "sender_id": row.sender_id,
            "group_key": row.group_key, "timestamp": iso(row.timestamp), "intent": row.intent,
            "confidence": round(row.confidence, 3), "entities": row.entities or [], "reasons": reasons_of(row),
            "status": row.status, "label_intent": row.label_intent, "label_entities": row.label_entities or [],
            "label_target": row.label_target, "labelled_by": labelled_by, "labelled_at": iso(row.labelled_at)}


def message_detail(session: Session, message_id: int, tracker_url: str) -> dict[str, Any]:
    """The message, its label history (newest first) and the conversation around it."""
    row = session.get(NluMessage, message_id)
    if row is None:
        raise InboxError(404, "not_found", f"There is no message {message_id} in the inbox.")
    history = _history(session, row.id)
    try:
        context = _context(tracker_url, row)
    except Exception:  # the tracker store is down: the label work goes on without the context
        context = {"before": [], "after": []}
    return {"message": message_view(row, history[0].author if history else None),
            "history": [{"status": h.status, "intent": h.intent, "entities": h.entities or [], "target": h.target,
                         "author": h.author, "at": iso(h.at)} for h in history],
            "context": context}


# --------------------------------------------------------------------------- labelling


def _check_entities(text: str, entities: Sequence[dict[str, Any]], allowed: set[str]) -> list[dict[str, Any]]:
    checked: list[dict[str, Any]] = []
    for entity in entities:
        start, end, name = entity.get("start"), entity.get("end"), str(entity.get("entity") or "")
        if not isinstance(start, int) or not isinstance(end, int) or not 0 <= start < end <= len(text):
            raise InboxError(400, "bad_offsets", f"Entity offsets {start}..{end} do not fit the message "
                                                 f"(it has {len(text)} characters).")
        words = text[start:end]
        if not words.strip():
            raise InboxError(400, "bad_offsets", f"Entity offsets {start}..{end} cover only spaces.")
        start += len(words) - len(words.lstrip())
        end -= len(words) - len(words.rstrip())
        if name not in allowed:
            raise InboxError(400, "unknown_entity", f"'{name}' is not an entity of the domain "
                                                    f"(known: {', '.join(sorted(allowed))}).")
        value = entity.get("value")
        value = str(value).strip() if value is not None and str(value).strip() else text[start:end]
        checked.append({"start": start, "end": end, "entity": name, "value": value[:500]})
    checked.sort(key=lambda e: (e["start"], e["end"]))
    for first, second in pairwise(checked):
        if second["start"] < first["end"]:
            raise InboxError(400, "overlapping_entities",
                             f"The entities '{text[first['start']:first['end']]}' and "
                             f"'{text[second['start']:second['end']]}' overlap; mark each word once.")
    return checked


@dataclass
class _Change:
    status: str
    intent: str | None
    entities: list[dict[str, Any]] = field(default_factory=list)
    target: str = TRAIN


def _selection(session: Session, message_ids: Sequence[int], group_keys: Sequence[str]) -> list[NluMessage]:
    rows: dict[int, NluMessage] = {}
    if message_ids:
        wanted = set(message_ids)
        found = {row.id: row for row in session.scalars(select(NluMessage).where(NluMessage.id.in_(wanted)))}
        missing = sorted(wanted - set(found))
        if missing:
            raise InboxError(404, "not_found", f"No message with id {', '.join(map(str, missing))}.")
        rows.update(found)
    if group_keys:
        keys = set(group_keys)
        seen: set[str] = set()
        for row in session.scalars(select(NluMessage).where(NluMessage.group_key.in_(keys),
                                                            NluMessage.in_inbox.is_(True))):
            rows[row.id] = row
            seen.add(row.group_key)
        if keys - seen:
            raise InboxError(404, "not_found", f"No inbox group '{sorted(keys - seen)[0]}'.")
    return sorted(rows.values(), key=lambda row: row.id)


def _checked_intent(session: Session, root: Path, intent: str | None, new_intent: bool) -> str:
    """The intent to label with, stripped; InboxError when it is missing, Rasa's fallback, or unknown
    (a new intent needs ``new_intent`` and a valid name)."""
    intent = (intent or "").strip()
    if not intent:
        raise InboxError(400, "missing_intent", "Pick the intent to label the messages with.")
    if intent == FALLBACK_INTENT:
        raise InboxError(400, "bad_intent_name", f"'{FALLBACK_INTENT}' is Rasa's own; pick a real intent.")
    if intent not in known_intents(root, session):
        if not new_intent:
            raise InboxError(400, "unknown_intent", f"There is no intent '{intent}'. Pick one from the list, "
                                                    "or create it as a new intent.")
        if not INTENT_NAME.fullmatch(intent):
            raise InboxError(400, "bad_intent_name", "A new intent's name has 2 to 48 characters: lower-case "
                                                     "letters, digits and _, starting with a letter.")
    return intent


def _unlabelled_change(action: str, target: str) -> _Change:
    """What ``out_of_scope``, ``ignore`` or ``reopen`` sets on a message."""
    if action == "out_of_scope":
        return _Change(OUT_OF_SCOPE, None, [], target)
    if action == "ignore":
        return _Change(IGNORED, None, [], TRAIN)
    return _Change(OPEN, None, [], TRAIN)


def label_messages(session: Session, root: Path, *, user_id: int | None, author: str,
                   message_ids: Sequence[int] = (), group_keys: Sequence[str] = (), action: str,
                   intent: str | None = None, new_intent: bool = False,
                   entities: Sequence[dict[str, Any]] | None = None, target: str = TRAIN,
                   now: datetime | None = None) -> int:
    """Labels messages (by id, or every inbox message of the given groups); returns how many changed.

    ``action``: ``intent`` (needs ``intent``; a name that is neither in the domain nor created before needs
    ``new_intent``), ``out_of_scope``, ``ignore`` or ``reopen``. ``entities`` (offsets into the text) go with
    exactly one message; without them a message keeps its earlier entity labels, else the predicted ones.
    A message whose label does not change gets no history row.
    """
    if action not in ACTIONS:
        raise InboxError(400, "bad_action", f"action must be one of {', '.join(ACTIONS)}.")
    if target not in (TRAIN, TEST):
        raise InboxError(400, "bad_target", "target must be train or test.")
    if not message_ids and not group_keys:
        raise InboxError(400, "empty_selection", "Select at least one message or group.")
    if action == "intent":
        intent = _checked_intent(session, root, intent, new_intent)
    if entities and action != "intent":
        raise InboxError(400, "entities_need_intent", "Entities can only be marked together with an intent.")
    rows = _selection(session, message_ids, group_keys)
    if not rows:
        raise InboxError(400, "empty_selection", "Select at least one message or group.")
    if entities and len(rows) != 1:
        raise InboxError(400, "entities_need_one_message", "Entities can be marked on one message at a time.")
    allowed = set(entity_names(root))
    marked = _check_entities(rows[0].text, entities, allowed) if entities else None
    now = now or utcnow()
    changed = 0
    for row in rows:
        if action == "intent":
            if entities is not None:
                ents = marked or []
            elif row.status == LABELLED and row.label_entities:
                ents = list(row.label_entities)
            else:
                ents = [e for e in row.entities or [] if e.get("entity") in allowed]
            change = _Change(LABELLED, intent, ents, target)
        else:
            change = _unlabelled_change(action, target)
        if (row.status, row.label_intent, list(row.label_entities or []), row.label_target) == (
                change.status, change.intent, change.entities, change.target):
            continue
        row.status, row.label_intent, row.label_entities, row.label_target = (
            change.status, change.intent, change.entities, change.target)
        row.labelled_by, row.labelled_at = user_id, now
        session.add(NluLabelEvent(message_id=row.id, status=change.status, intent=change.intent,
                                  entities=change.entities, target=change.target, user_id=user_id,
                                  author=author[:120], at=now))
        changed += 1
    session.flush()
    return changed


# --------------------------------------------------------------------------- what the next training gets


def pending_labels(session: Session, since: datetime | None) -> int:
    """Messages labelled (or marked out of scope) at or after ``since`` (all of them for None)."""
    query = select(func.count(NluMessage.id)).where(NluMessage.status.in_((LABELLED, OUT_OF_SCOPE)))
    if since is not None:
        query = query.where(NluMessage.labelled_at >= since)
    return int(session.scalar(query) or 0)


def last_training_started(session: Session) -> datetime | None:
    return session.scalar(select(func.max(ModelVersion.created_at)))


def labels_summary(session: Session, root: Path) -> dict[str, Any]:
    """Labels waiting for the next training, per intent and target, and the intents leads created."""
    by_intent: dict[str, dict[str, int]] = {}
    rows = session.execute(select(NluMessage.status, NluMessage.label_intent, NluMessage.label_target,
                                  func.count(NluMessage.id))
                           .where(NluMessage.status.in_((LABELLED, OUT_OF_SCOPE)))
                           .group_by(NluMessage.status, NluMessage.label_intent, NluMessage.label_target))
    for status, intent, target, n in rows:
        name = OUT_OF_SCOPE_INTENT if status == OUT_OF_SCOPE else intent
        if not name:
            continue
        counts = by_intent.setdefault(name, {TRAIN: 0, TEST: 0})
        counts[TEST if target == TEST else TRAIN] += int(n)
    domain = set(domain_intents(root))
    return {"pending": pending_labels(session, last_training_started(session)),
            "by_intent": dict(sorted(by_intent.items())),
            "new_intents": sorted(name for name in by_intent if name not in domain)}
