"""Plays saved conversation tests against a model and reports, per test, the first turn that diverged.

:func:`play` talks to a running Rasa server the way the gateway does (``bot/conversation/rasa_client.py``): each
shopper message goes to the REST webhook (``Authorization: Bearer <token>``, as ``rasa_addons/rest_channel.py``
wants), then the conversation's tracker is read through the HTTP API (``?token=``) and the events since the
previous turn give the intent, the actions and the kind of reply. Every run uses a fresh conversation id.

:class:`ScratchRasa` starts a Rasa server with a candidate model and the project's action server on free
loopback ports (the command lines and endpoints of ``devstack/stack.py`` and ``bot/rasa_endpoints.py``), with
generated tokens and a SQLite tracker store in a temporary folder, so the real conversations are untouched.
The action server is the real one, on the real database: a test that searches reads the real catalog, and a
test that hands over or fills a cart does so for its own conversation id (``convtest-...``).

:func:`run_suite` is the two together, as the training job's gate uses it.
"""

from __future__ import annotations

import secrets
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from bot.convtests.spec import ConversationTest, ExpectedTurn, ReplyKind, TestOutcome, TurnResult

# Actions the stack runs around the story's own steps, whatever the story says: never compared.
# - action_listen ends every bot turn (and follows a pause);
# - action_session_start / action_restart are Rasa's session bookkeeping (the first message of a fresh
#   conversation starts a session before the user event);
# - action_unlikely_intent is Rasa's own (it only informs);
# The end-of-turn policy (rasa_addons/end_of_turn.py) only ever predicts action_listen or the active form, and
# the escalation policy action_escalate: nothing else runs on every turn (checked on the trained model's trackers).
IGNORED_ACTIONS = frozenset({"action_listen", "action_session_start", "action_restart", "action_unlikely_intent"})
# The escalation addon (rasa_addons/escalation.py) runs action_escalate; it is part of what a turn does (a
# handoff) and IS compared, and it makes the reply kind a handoff.
HANDOFF_ACTIONS = frozenset({"action_escalate"})
PRODUCT_CARDS, HANDOFF = "product_cards", "handoff"  # the ``custom`` message types of actions/
REQUEST_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _since_user(events: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The turn's user event and the events after it (``events`` are those since the previous turn)."""
    for i, event in enumerate(events):
        if isinstance(event, dict) and event.get("event") == "user":
            return event, [e for e in events[i + 1:] if isinstance(e, dict)]
    return None, []


def reply_kind(after_user: list[dict[str, Any]], actions: Iterable[str], tracker: dict[str, Any]) -> ReplyKind:
    """Handoff (an escalation action ran, the bot said so with a ``handoff`` message, or it paused) before
    product cards, before a form question (a form is active after the turn and asks for a slot), else text."""
    customs = [custom.get("type") for e in after_user if e.get("event") == "bot"
               and isinstance(data := e.get("data"), dict) and isinstance(custom := data.get("custom"), dict)]
    if (any(a in HANDOFF_ACTIONS for a in actions) or HANDOFF in customs
            or any(e.get("event") == "pause" for e in after_user)):
        return ReplyKind.HANDOFF
    if PRODUCT_CARDS in customs:
        return ReplyKind.PRODUCT_CARDS
    loop = tracker.get("active_loop") or {}
    slots = tracker.get("slots") or {}
    if isinstance(loop, dict) and loop.get("name") and slots.get("requested_slot"):
        return ReplyKind.FORM_QUESTION
    return ReplyKind.TEXT


def compare(index: int, expected: ExpectedTurn, intent: str | None, actions: tuple[str, ...],
            reply: ReplyKind | None) -> TurnResult:
    """One turn against what it must do; only the fields the test sets are checked."""
    differences: list[str] = []
    if expected.intent is not None and intent != expected.intent:
        differences.append(f"intent: expected {expected.intent}, got {intent or 'none'}")
    wanted = tuple(a for a in expected.actions if a not in IGNORED_ACTIONS)
    if wanted and actions != wanted:
        differences.append(f"actions: expected [{', '.join(wanted)}], got [{', '.join(actions)}]")
    if expected.reply is not None and reply != expected.reply:
        differences.append(f"reply: expected {expected.reply.value}, got {reply.value if reply else 'none'}")
    return TurnResult(index=index, user=expected.user, expected=expected, intent=intent, actions=actions,
                      reply=reply, passed=not differences, differences=tuple(differences))


def play(test: ConversationTest, rasa_url: str, token: str, conversation_prefix: str = "convtest",
         timeout_s: float = REQUEST_TIMEOUT_S) -> TestOutcome:
    """Plays ``test`` in a fresh conversation on the Rasa server at ``rasa_url``; stops at the first turn that
    diverges. Rasa not answering makes a failed outcome with ``error`` (the turns played so far are kept)."""
    base = rasa_url.rstrip("/")
    conversation = f"{conversation_prefix}-{uuid.uuid4().hex[:12]}"
    tracker_url = f"{base}/conversations/{quote(conversation, safe='')}/tracker"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    params = {"token": token, "include_events": "ALL"} if token else {"include_events": "ALL"}
    results: list[TurnResult] = []
    seen = 0
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout_s, connect=5.0)) as http:
            for index, expected in enumerate(test.turns):
                sent = http.post(f"{base}/webhooks/rest/webhook", headers=headers,
                                 json={"sender": conversation, "message": expected.user, "metadata": {}})
                sent.raise_for_status()
                got = http.get(tracker_url, params=params)
                got.raise_for_status()
                tracker = got.json()
                events = tracker.get("events") if isinstance(tracker, dict) else None
                if not isinstance(events, list):
                    raise ValueError(f"unexpected tracker from rasa: {tracker!r:.200}")
                user, after = _since_user(events[seen:])
                seen = len(events)
                if user is None:
                    raise ValueError(f"rasa did not record the message {expected.user!r} (is the bot paused?)")
                intent = ((user.get("parse_data") or {}).get("intent") or {}).get("name")
                actions = tuple(e.get("name") or "" for e in after
                                if e.get("event") == "action" and e.get("name") not in IGNORED_ACTIONS)
                result = compare(index, expected, intent, actions, reply_kind(after, actions, tracker))
                results.append(result)
                if not result.passed:
                    return TestOutcome(name=test.name, passed=False, turns=tuple(results), diverged_at=index)
    except (httpx.HTTPError, ValueError) as exc:
        return TestOutcome(name=test.name, passed=False, turns=tuple(results), diverged_at=len(results),
                           error=f"rasa at {base} did not answer turn {len(results) + 1}: {exc}")
    return TestOutcome(name=test.name, passed=True, turns=tuple(results))


class ScratchRasa:
    """A Rasa server with ``model`` and the project's action server, on free loopback ports, for as long as the
    ``with`` block lasts. Its tracker store is SQLite in a temporary folder; its tokens are generated."""

    def __init__(self, model: Path, timeout_s: float = 300.0) -> None:
        self.model = Path(model)
        self.timeout_s = timeout_s
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._stack: Any = None
        self._log: Any = None

    @property
    def url(self) -> str:
        assert self._stack is not None, "ScratchRasa is not started"
        return str(self._stack.rasa_url)

    @property
    def token(self) -> str:
        assert self._stack is not None, "ScratchRasa is not started"
        return str(self._stack.rasa_token)

    def __enter__(self) -> ScratchRasa:
        from bot import rasa_endpoints
        from bot.training.rasa_model import rasa_executable
        from devstack.stack import Stack, StackConfig

        if not self.model.exists():
            raise FileNotFoundError(f"no model archive at {self.model}")
        self._tmp = tempfile.TemporaryDirectory(prefix="shop-convtests-")
        folder = Path(self._tmp.name)
        tracker = folder / "tracker.sqlite3"
        config = StackConfig(rasa_port=free_port(), actions_port=free_port(), model=self.model.resolve(),
                             tracker_db=tracker, rasa_bin=rasa_executable(), color=False,
                             extra_env={"SHOP_RASA_TOKEN": secrets.token_urlsafe(24),
                                        "SHOP_ACTIONS_TOKEN": secrets.token_urlsafe(24)})

        class _Scratch(Stack):
            def write_endpoints(self) -> Path:  # always the scratch SQLite file: no PostgreSQL, broker, Redis
                env = self._env()
                return rasa_endpoints.write(self.endpoints_file, action_url=env["ACTION_ENDPOINT_URL"],
                                            action_token=env["SHOP_ACTIONS_TOKEN"],
                                            database_url=f"sqlite:///{tracker}", sqlite_file=str(tracker))

        self._log = (folder / "stack.log").open("w")
        self._stack = _Scratch(config, output=self._log)
        try:
            self._stack.start(names=("actions", "rasa"))
            self._stack.wait_healthy(timeout=self.timeout_s, names=("actions", "rasa"))
        except BaseException as exc:
            tail = self._tail()
            self.__exit__(None, None, None)
            if isinstance(exc, (RuntimeError, TimeoutError)):
                raise RuntimeError(f"the scratch Rasa for {self.model.name} did not start: {exc}\n{tail}") from exc
            raise
        return self

    def _tail(self) -> str:
        if self._log is None or self._tmp is None:
            return ""
        self._log.flush()
        return (Path(self._tmp.name) / "stack.log").read_text(errors="replace")[-3000:]

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._stack is not None:
            self._stack.stop()
            self._stack = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def run_suite(tests: list[ConversationTest], model_archive: Path,
              progress: Callable[[int, int], None] | None = None, timeout_s: float = 300.0) -> list[TestOutcome]:
    """Every test played against ``model_archive`` in a scratch Rasa; ``progress(done, total)`` after each.
    No tests: nothing starts. Rasa not starting: every test fails with the reason."""
    if not tests:
        return []
    try:
        scratch = ScratchRasa(model_archive, timeout_s=timeout_s).__enter__()
    except (RuntimeError, FileNotFoundError) as exc:
        return [TestOutcome(name=t.name, passed=False, turns=(), diverged_at=0, error=str(exc)[:2000])
                for t in tests]
    outcomes: list[TestOutcome] = []
    try:
        for done, test in enumerate(tests, start=1):
            outcomes.append(play(test, scratch.url, scratch.token))
            if progress is not None:
                progress(done, len(tests))
    finally:
        scratch.__exit__(None, None, None)
    return outcomes
