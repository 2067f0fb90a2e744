"""Saved conversation tests in the database, and their last result per model version.

A test's ``turns`` column holds one JSON object per turn: ``{"user": text, "intent": name|null,
"actions": [names], "reply": "product_cards"|"form_question"|"handoff"|"text"|null}``.
A result's ``detail`` holds the turn results (:class:`~bot.convtests.spec.TurnResult` as JSON), which the
console shows as a diff of the turn that changed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.clock import utcnow
from bot.convtests.spec import ConversationTest, ExpectedTurn, ReplyKind, TestOutcome, TurnResult
from bot.convtests.tables import MAX_NAME, ConversationTestResult, ConversationTestRow


class DuplicateTestName(ValueError):
    """A test with this name is saved already."""


class UnknownTest(LookupError):
    """No test with this name."""


def turn_to_json(turn: ExpectedTurn) -> dict[str, Any]:
    return {"user": turn.user, "intent": turn.intent, "actions": list(turn.actions),
            "reply": turn.reply.value if turn.reply is not None else None}


def turn_from_json(data: dict[str, Any]) -> ExpectedTurn:
    reply = data.get("reply")
    return ExpectedTurn(user=str(data.get("user") or ""), intent=data.get("intent") or None,
                        actions=tuple(str(a) for a in data.get("actions") or ()),
                        reply=ReplyKind(reply) if reply else None)


def _to_test(row: ConversationTestRow) -> ConversationTest:
    return ConversationTest(name=row.name, turns=tuple(turn_from_json(t) for t in row.turns), source=row.source)


def all_tests(session: Session) -> list[ConversationTest]:
    """Every saved test, by name."""
    rows = session.scalars(select(ConversationTestRow).order_by(ConversationTestRow.name))
    return [_to_test(row) for row in rows]


def get_test(session: Session, name: str) -> ConversationTest | None:
    row = session.scalar(select(ConversationTestRow).where(ConversationTestRow.name == name))
    return _to_test(row) if row is not None else None


def save_test(session: Session, test: ConversationTest, created_by: str) -> int:
    """Store a new test; its id. A name that is taken already raises :class:`DuplicateTestName` (a ValueError)."""
    name = test.name.strip()
    if len(name) > MAX_NAME:
        raise ValueError(f"a conversation test's name has at most {MAX_NAME} characters ({len(name)} given)")
    if session.scalar(select(ConversationTestRow.id).where(ConversationTestRow.name == name)) is not None:
        raise DuplicateTestName(f"a conversation test named {name!r} exists already; pick another name")
    now = utcnow()
    row = ConversationTestRow(name=name, turns=[turn_to_json(t) for t in test.turns], source=test.source[:255],
                              created_by=created_by[:120], created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    return row.id


def delete_test(session: Session, name: str) -> None:
    """Remove a test and its results; :class:`UnknownTest` when there is none of that name."""
    row = session.scalar(select(ConversationTestRow).where(ConversationTestRow.name == name))
    if row is None:
        raise UnknownTest(f"no conversation test named {name!r}")
    session.execute(delete(ConversationTestResult).where(ConversationTestResult.test_id == row.id))
    session.delete(row)
    session.flush()


def _turn_result_json(result: TurnResult) -> dict[str, Any]:
    return {"index": result.index, "user": result.user, "expected": turn_to_json(result.expected),
            "intent": result.intent, "actions": list(result.actions),
            "reply": result.reply.value if result.reply is not None else None,
            "passed": result.passed, "differences": list(result.differences)}


def record_outcomes(session: Session, model_version: int, outcomes: list[TestOutcome]) -> None:
    """Store each outcome as its test's result for ``model_version`` (replacing an earlier run against it).
    Outcomes of tests that are not saved (deleted meanwhile) are skipped."""
    ids = dict(session.execute(select(ConversationTestRow.name, ConversationTestRow.id)).tuples().all())
    now = utcnow()
    for outcome in outcomes:
        test_id = ids.get(outcome.name)
        if test_id is None:
            continue
        row = session.scalar(select(ConversationTestResult).where(
            ConversationTestResult.test_id == test_id, ConversationTestResult.model_version == model_version))
        if row is None:
            row = ConversationTestResult(test_id=test_id, model_version=model_version)
            session.add(row)
        row.passed = bool(outcome.passed and not outcome.error)
        row.diverged_at = outcome.diverged_at
        row.detail = [_turn_result_json(t) for t in outcome.turns]
        row.error = outcome.error
        row.ran_at = now
    session.flush()


def latest_results(session: Session) -> dict[str, dict[int, dict[str, Any]]]:
    """Per test name, per model version: ``{"passed", "diverged_at", "differences", "error", "ran_at",
    "turns"}`` (``differences``: those of the turn that diverged; ``turns``: every turn result, for a diff).
    Tests never run map to ``{}``."""
    out: dict[str, dict[int, dict[str, Any]]] = {
        name: {} for name in session.scalars(select(ConversationTestRow.name).order_by(ConversationTestRow.name))}
    rows = session.execute(
        select(ConversationTestRow.name, ConversationTestResult)
        .join(ConversationTestResult, ConversationTestResult.test_id == ConversationTestRow.id)
        .order_by(ConversationTestResult.model_version)).tuples().all()
    for name, result in rows:
        diverged = next((t for t in result.detail if t.get("index") == result.diverged_at), None)
        out[name][result.model_version] = {
            "passed": result.passed, "diverged_at": result.diverged_at,
            "differences": list(diverged.get("differences") or []) if diverged else [],
            "error": result.error, "ran_at": result.ran_at.isoformat(), "turns": result.detail}
    return out


def summaries(session: Session) -> list[dict[str, Any]]:
    """The console's list: each test with its turns, source, author and last result per model version."""
    results = latest_results(session)
    rows = session.scalars(select(ConversationTestRow).order_by(ConversationTestRow.name))
    return [{"id": row.id, "name": row.name, "source": row.source, "created_by": row.created_by,
             "created_at": row.created_at.isoformat(), "turns": row.turns,
             "results": {str(v): r for v, r in results.get(row.name, {}).items()}} for row in rows]
