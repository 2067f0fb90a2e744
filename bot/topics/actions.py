"""What a lead does from a topic in the console: label selected members to an intent (or out of scope)
through the NLU inbox, so export and training pick the labels up, and add a knowledge entry to the policy
file.

Topic members and inbox rows both reference Rasa's ``events.id``: the inbox first reads new events
(:func:`bot.training.nlu_inbox.ingest`); a member the inbox skipped (sent while an agent held the conversation)
gets its inbox row here, built the way ingest builds one (personal data redacted). Labelled rows are put
in the inbox (``in_inbox``) so the lead finds them there with the other labels.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.knowledge.shop_policy_file import PolicyError, ShopPolicy
from bot.rasa_events import read_events
from bot.topics.tables import Topic, TopicMember
from bot.training import nlu_inbox
from bot.training.tables import NluMessage

TOPIC_KEY = re.compile(r"^[a-z][a-z0-9_]{1,47}$")


class TopicActionError(Exception):
    """A refused topic action, with the HTTP status and a code for the console."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def detail(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


def topic_members(session: Session, topic_id: int, member_ids: Sequence[int] | None = None) -> list[TopicMember]:
    """The topic's members (all, or the given ids, each of which must belong to the topic)."""
    if session.get(Topic, topic_id) is None:
        raise TopicActionError(404, "not_found", f"No topic with id {topic_id}.")
    query = select(TopicMember).where(TopicMember.topic_id == topic_id)
    if member_ids is not None:
        query = query.where(TopicMember.id.in_(set(member_ids)))
    rows = list(session.scalars(query.order_by(TopicMember.id)))
    if member_ids is not None:
        missing = sorted(set(member_ids) - {r.id for r in rows})
        if missing:
            raise TopicActionError(404, "not_found", f"Topic {topic_id} has no message with id "
                                                     f"{', '.join(map(str, missing))}.")
    if not rows:
        raise TopicActionError(400, "empty_selection", "Select at least one message.")
    return rows


def inbox_rows(session: Session, tracker_url: str, members: Sequence[TopicMember], *, threshold: float,
               sample_rate: float) -> list[NluMessage]:
    """The NLU inbox rows of ``members`` (read or created), each put in the inbox."""
    nlu_inbox.ingest(session, tracker_url, threshold=threshold, sample_rate=sample_rate)
    wanted = {m.event_id for m in members}
    rows = {r.event_id: r for r in session.scalars(select(NluMessage).where(NluMessage.event_id.in_(wanted)))}
    missing = wanted - set(rows)
    if missing:
        senders = sorted({m.conversation_id for m in members if m.event_id in missing})
        for event in read_events(tracker_url, types=("user",), sender_ids=senders):
            if event.id in missing and event.text.strip():
                row = nlu_inbox._new_row(event, event.text, threshold, sample_rate)
                session.add(row)
                rows[event.id] = row
        session.flush()
    gone = wanted - set(rows)
    if gone:
        raise TopicActionError(404, "not_in_tracker", f"{len(gone)} selected message(s) are no longer in Rasa's "
                                                      "tracker store (erased?); recluster the topics.")
    for row in rows.values():
        row.in_inbox = True
    session.flush()
    return [rows[m.event_id] for m in members]


def label_members(session: Session, root: Path, tracker_url: str, members: Sequence[TopicMember], *,
                  action: str, intent: str | None, new_intent: bool, user_id: int | None, author: str,
                  threshold: float, sample_rate: float) -> dict[str, Any]:
    """Labels the members through :func:`bot.training.nlu_inbox.label_messages` (same checks, same history)."""
    if action == "intent":  # refuse a bad intent before creating inbox rows
        name = (intent or "").strip()
        if name and name not in nlu_inbox.known_intents(root, session) and not new_intent:
            raise TopicActionError(400, "unknown_intent", f"There is no intent '{name}'. Pick one from the list, "
                                                          "or create it as a new intent.")
    rows = inbox_rows(session, tracker_url, members, threshold=threshold, sample_rate=sample_rate)
    try:
        changed = nlu_inbox.label_messages(session, root, user_id=user_id, author=author,
                                       message_ids=[r.id for r in rows], action=action, intent=intent,
                                       new_intent=new_intent)
    except nlu_inbox.InboxError as exc:
        raise TopicActionError(exc.status, exc.code, str(exc)) from exc
    return {"updated": changed, "inbox_message_ids": [r.id for r in rows]}


def member_labels(session: Session, members: Sequence[TopicMember]) -> dict[int, tuple[str, str | None]]:
    """Per member id the inbox status and label (members without an inbox row are left out)."""
    by_event = {m.event_id: m.id for m in members}
    out: dict[int, tuple[str, str | None]] = {}
    events = list(by_event)
    for i in range(0, len(events), 500):
        rows = session.execute(select(NluMessage.event_id, NluMessage.status, NluMessage.label_intent)
                               .where(NluMessage.event_id.in_(events[i:i + 500])))
        for event_id, status, label in rows:
            out[by_event[event_id]] = (status, label)
    return out


# --------------------------------------------------------------------------- knowledge entries


def _entry_block(key: str, entry: dict[str, Any]) -> str:
    body = yaml.safe_dump({key: entry}, sort_keys=False, allow_unicode=True, width=10_000, default_style=None)
    return "".join(f"  {line}\n" if line.strip() else "\n" for line in body.splitlines())


def add_knowledge_entry(path: Path, key: str, *, label: str, answer: str, questions: Sequence[str]) -> dict[str, Any]:
    """Adds ``key`` to the ``answers:`` section of the policy file and returns the entry.

    The entry's text goes in at the end of the section, so the file's comments and layout stay as they
    are; the result is loaded and checked with the policy loader before it replaces the file (atomically).
    A taken key, a bad key, or an entry that does not load is refused (422) and the file is left alone.
    """
    if not TOPIC_KEY.fullmatch(key):
        raise TopicActionError(422, "bad_topic_key", "A topic key has 2 to 48 characters: lower-case letters, "
                                                     "digits and _, starting with a letter.")
    answer = answer.strip()
    if not answer:
        raise TopicActionError(422, "missing_answer", "Write the answer.")
    current = ShopPolicy.load(path)
    if key in current.data["answers"]:
        raise TopicActionError(422, "duplicate_topic", f"The policy file already has an answer '{key}'.")
    entry: dict[str, Any] = {"label": label.strip() or key.replace("_", " ").capitalize()}
    cleaned = [q.strip() for q in questions if q.strip()]
    if cleaned:
        entry["questions"] = cleaned
    entry["text"] = answer + "\n"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if re.match(r"^answers:\s*(#.*)?$", line)), None)
    if start is None:
        raise TopicActionError(422, "no_answers_section", "The policy file has no top-level 'answers:' section.")
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"^[^\s#]", lines[i])), len(lines))
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    if end and not lines[end - 1].endswith("\n"):
        lines[end - 1] += "\n"
    text = "".join(lines[:end]) + "\n" + _entry_block(key, entry) + "".join(lines[end:])
    fd, tmp = tempfile.mkstemp(prefix=".policy-", suffix=".yml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        try:
            policy = ShopPolicy.load(Path(tmp))
            if policy.data["answers"].get(key) != entry:
                raise PolicyError("the entry did not load back as written")
            policy.answer(key)
            policy.check()
        except PolicyError as exc:
            raise TopicActionError(422, "invalid_entry", f"The entry does not load: {exc}") from exc
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {"topic_key": key, **entry}
