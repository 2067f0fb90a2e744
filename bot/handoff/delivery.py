"""Delivery of tickets to external helpdesks: an outbox table, retries with backoff, idempotency keys.

:func:`enqueue` writes one ``helpdesk_outbox`` row per configured webhook in the caller's transaction,
so a ticket and its deliveries commit together (or not at all). Each row holds the exact body to send
(generic JSON, Slack incoming webhook or Zendesk's tickets API) and a random ``Idempotency-Key`` made
once, so every retry of a row is the same request and a receiver that honours the header (Zendesk does)
creates the ticket once even when a response was lost.

:class:`OutboxWorker` (started by the gateway) sends due rows with httpx. A row is taken by bumping its
``attempts`` and pushing ``next_attempt_at`` one lease ahead in a conditional ``UPDATE`` (plus
``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so two workers never send the same row at once, and a worker
that dies mid-request leaves the row to be retried when the lease runs out: delivery survives restarts
and nothing is lost. Failures are retried with exponential backoff and jitter (honouring
``Retry-After``) up to ``SHOP_HELPDESK_MAX_ATTEMPTS``; then, or at once for a response that retrying
cannot fix (400, 404, 405, 410, 413, 422), the row becomes ``dead`` and stays for a person to look at
(:func:`requeue_dead`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import utcnow
from bot.config import HelpdeskWebhook, get_settings
from bot.db import get_engine, rows_affected
from bot.handoff.context import iso
from bot.handoff.tables import DEAD, DELIVERED, PENDING, HelpdeskOutbox, Ticket
from bot.privacy.redact import redact

log = logging.getLogger("bot.handoff.delivery")

PERMANENT_STATUSES = frozenset({400, 404, 405, 410, 413, 422})
USER_AGENT = "shop-assistant-helpdesk/1"
SLACK_TEXT_LIMIT = 2900  # Slack: 3000 characters per section text
SLACK_MESSAGES = 6  # latest transcript lines in the Slack message
ZENDESK_MESSAGES = 60
_ORDER_NUMBER = re.compile(r"^[A-Z]{2,4}-\d+$")



# --------------------------------------------------------------------------- formats


def redact_text(text: str) -> str:
    """Emails, phone numbers, card numbers and IBANs in free text replaced by placeholders."""
    return redact(text or "")


def redact_packet(packet: Mapping[str, Any]) -> dict[str, Any]:
    """The packet without the shopper's name, email and phone, and with both masked in what was said."""
    out = json.loads(json.dumps(packet))  # a deep copy of plain JSON
    customer = out.get("customer")
    if isinstance(customer, dict):
        for key in ("name", "email", "phone"):
            if customer.get(key):
                customer[key] = "[redacted]"
    for message in out.get("transcript") or []:
        message["text"] = redact_text(message.get("text") or "")
    slots = out.get("slots") or {}
    for name, value in list(slots.items()):
        if isinstance(value, str) and not _ORDER_NUMBER.match(value):
            slots[name] = redact_text(value)
    if out.get("summary"):
        name = (customer or {}).get("name")
        out["summary"] = redact_text(str(out["summary"]))
        if name and isinstance(packet.get("customer"), dict) and packet["customer"].get("name"):
            out["summary"] = out["summary"].replace(str(packet["customer"]["name"]), "[redacted]")
    return out


@dataclass(frozen=True)
class TicketFacts:
    """What the formats need of a ticket (so they run without a database)."""

    id: int
    conversation_id: str
    customer_id: int | None
    reason: str
    reason_detail: str
    priority: int
    status: str
    created_at: datetime
    followup_email: str | None = None

    @classmethod
    def of(cls, ticket: Ticket) -> TicketFacts:
        return cls(ticket.id, ticket.conversation_id, ticket.customer_id, ticket.reason, ticket.reason_detail,
                   ticket.priority, ticket.status, ticket.created_at, ticket.followup_email)


def inbox_url(ticket_id: int, public_url: str | None = None) -> str:
    base = (get_settings().public_url if public_url is None else public_url).rstrip("/")
    return f"{base}/agent?ticket={ticket_id}"


def _reason_words(reason: str) -> str:
    return reason.replace("_", " ")


def _who(packet: Mapping[str, Any]) -> str:
    customer = packet.get("customer") or {}
    if not customer:
        return "Guest"
    label = customer.get("segment_label") or customer.get("segment") or ""
    name = customer.get("name") or "signed-in customer"
    return f"{name} ({label})" if label else str(name)


def _mood(packet: Mapping[str, Any]) -> str:
    mood = packet.get("mood")
    return "n/a" if mood is None else f"{float(mood):+.2f}"


def generic_body(ticket: TicketFacts, packet: Mapping[str, Any], *, url: str) -> dict[str, Any]:
    """Generic JSON: the ticket and the whole context packet."""
    return {
        "event": "ticket.opened",
        "ticket": {"id": ticket.id, "conversation_id": ticket.conversation_id, "customer_id": ticket.customer_id,
                   "reason": ticket.reason, "reason_detail": ticket.reason_detail, "priority": ticket.priority,
                   "status": ticket.status, "created_at": iso(ticket.created_at), "url": url},
        "context": dict(packet),
    }


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_body(ticket: TicketFacts, packet: Mapping[str, Any], *, url: str) -> dict[str, Any]:
    """A Slack incoming-webhook message (Block Kit) with a plain-text fallback."""
    lines = []
    for message in (packet.get("transcript") or [])[-SLACK_MESSAGES:]:
        who = {"shopper": "Shopper", "bot": "Bot", "agent": "Agent"}.get(message.get("role"), "?")
        lines.append(f"> *{who}:* {_slack_escape(_cut(str(message.get('text') or ''), 400))}")
    fields = [("Reason", f"{_reason_words(ticket.reason)}: {ticket.reason_detail}" if ticket.reason_detail
               else _reason_words(ticket.reason)),
              ("Priority", str(ticket.priority)), ("Customer", _who(packet)), ("Mood", _mood(packet))]
    link = f"<{url}|Open in the inbox>" if url.startswith(("http://", "https://")) else url
    return {
        "text": _cut(f"New chat handoff #{ticket.id}: {_reason_words(ticket.reason)}, {_who(packet)}", 300),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": _cut(
                f"Chat handoff #{ticket.id}: {_reason_words(ticket.reason)}", 150)}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": _cut(f"*{k}*\n{_slack_escape(v)}", 2000)}
                                           for k, v in fields]},
            {"type": "section", "text": {"type": "mrkdwn", "text": _cut(
                "*Latest messages*\n" + ("\n".join(lines) or "_none_"), SLACK_TEXT_LIMIT)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(
                f"Conversation `{_slack_escape(ticket.conversation_id)}` · {link}", 2000)}]},
        ],
    }


def zendesk_priority(priority: int) -> str:
    if priority >= 70:
        return "urgent"
    if priority >= 45:
        return "high"
    if priority >= 20:
        return "normal"
    return "low"


def _zendesk_comment(ticket: TicketFacts, packet: Mapping[str, Any], url: str) -> str:
    parts = [f"Chat handoff from the shop assistant (ticket #{ticket.id}, conversation {ticket.conversation_id}).",
             f"Reason: {_reason_words(ticket.reason)}" + (f" ({ticket.reason_detail})" if ticket.reason_detail else ""),
             f"Customer: {_who(packet)}", f"Mood: {_mood(packet)}", f"Inbox: {url}", ""]
    orders = packet.get("orders") or []
    if orders:
        parts.append("Recent orders:")
        parts += [f"- {o.get('number')}: {o.get('status_label') or o.get('status')}, {o.get('total')} "
                  f"{o.get('currency') or ''}".rstrip() for o in orders]
        parts.append("")
    cart = packet.get("cart") or {}
    if cart.get("items"):
        parts.append(f"Cart: {cart.get('item_count')} item(s), {cart.get('total')} {cart.get('currency')}")
        parts.append("")
    parts.append("Conversation:")
    for message in (packet.get("transcript") or [])[-ZENDESK_MESSAGES:]:
        who = {"shopper": "Shopper", "bot": "Bot", "agent": "Agent"}.get(message.get("role"), "?")
        parts.append(f"[{message.get('at') or ''}] {who}: {message.get('text') or ''}")
    return "\n".join(parts)


def zendesk_body(ticket: TicketFacts, packet: Mapping[str, Any], *, url: str) -> dict[str, Any]:
    """A Zendesk Support "create ticket" body (``POST /api/v2/tickets.json``); the comment is internal."""
    customer = packet.get("customer") or {}
    body: dict[str, Any] = {
        "subject": _cut(f"Chat handoff: {_reason_words(ticket.reason)} ({_who(packet)})", 150),
        "comment": {"body": _zendesk_comment(ticket, packet, url), "public": False},
        "priority": zendesk_priority(ticket.priority),
        "tags": sorted({"shop_assistant", f"reason_{ticket.reason}",
                        f"segment_{customer.get('segment') or 'guest'}"}),
        "external_id": f"shop-assistant-ticket-{ticket.id}",
    }
    email = customer.get("email") if customer.get("email") not in (None, "", "[redacted]") else None
    if email:
        body["requester"] = {"email": email, "name": customer.get("name") or email}
    return {"ticket": body}


FORMATS: dict[str, Callable[..., dict[str, Any]]] = {
    "generic": generic_body, "slack": slack_body, "zendesk": zendesk_body,
}


def body_for(webhook: HelpdeskWebhook, ticket: TicketFacts, packet: Mapping[str, Any],
             public_url: str | None = None) -> dict[str, Any]:
    """The request body for one webhook (redacted first when the webhook asks for it)."""
    context = redact_packet(packet) if webhook.redact else dict(packet)
    return FORMATS[webhook.kind](ticket, context, url=inbox_url(ticket.id, public_url))


# --------------------------------------------------------------------------- the outbox


def enqueue(session: Session, ticket: Ticket, webhooks: Sequence[HelpdeskWebhook] | None = None, *,
            now: datetime | None = None, public_url: str | None = None) -> list[HelpdeskOutbox]:
    """One pending row per webhook (``SHOP_HELPDESK_WEBHOOKS`` by default) in the caller's transaction.
    A ticket already queued for a webhook is not queued again."""
    webhooks = get_settings().helpdesk_webhooks if webhooks is None else webhooks
    if not webhooks:
        return []
    session.flush()  # the ticket needs its id
    now = now or utcnow()
    done = set(session.scalars(select(HelpdeskOutbox.target).where(HelpdeskOutbox.ticket_id == ticket.id)))
    facts = TicketFacts.of(ticket)
    rows = []
    for webhook in webhooks:
        if webhook.name in done:
            continue
        row = HelpdeskOutbox(ticket_id=ticket.id, target=webhook.name, kind=webhook.kind, url=webhook.url,
                             payload=body_for(webhook, facts, ticket.context or {}, public_url),
                             idempotency_key=str(uuid.uuid4()), status=PENDING, attempts=0,
                             next_attempt_at=now, created_at=now)
        session.add(row)
        rows.append(row)
    session.flush()
    return rows


def requeue_dead(session: Session, outbox_id: int | None = None, now: datetime | None = None) -> int:
    """Give dead rows (one, or all) a fresh set of attempts; returns how many. The key stays the same."""
    statement = update(HelpdeskOutbox).where(HelpdeskOutbox.status == DEAD)
    if outbox_id is not None:
        statement = statement.where(HelpdeskOutbox.id == outbox_id)
    result = session.execute(statement.values(status=PENDING, attempts=0, next_attempt_at=now or utcnow())
                             .execution_options(synchronize_session=False))
    return rows_affected(result)


def outbox_counts(session: Session) -> dict[str, int]:
    """Rows per status, for health pages."""
    rows = session.execute(select(HelpdeskOutbox.status, func.count()).group_by(HelpdeskOutbox.status))
    return {PENDING: 0, DELIVERED: 0, DEAD: 0} | {status: int(n) for status, n in rows}


@dataclass(frozen=True)
class _Job:
    id: int
    target: str
    kind: str
    url: str
    payload: dict[str, Any]
    key: str
    attempt: int


@dataclass(frozen=True)
class Outcome:
    ok: bool
    permanent: bool = False
    error: str = ""
    retry_after: float | None = None


def _retry_after(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when.astimezone(UTC).replace(tzinfo=None) - now).total_seconds())


class OutboxWorker:
    """Sends due outbox rows. ``run_once()`` handles one batch; ``run_forever(stop)`` until ``stop`` is set.

    Settings default to ``SHOP_HELPDESK_*``; ``clock`` and ``rng`` are injectable for tests.
    """

    def __init__(self, database_url: str | None = None, webhooks: Sequence[HelpdeskWebhook] | None = None, *,
                 client: httpx.AsyncClient | None = None, max_attempts: int | None = None,
                 base_delay_s: float | None = None, max_delay_s: float | None = None,
                 timeout_s: float | None = None, lease_s: float | None = None, batch_size: int = 20,
                 poll_interval_s: float = 1.0, clock: Callable[[], datetime] = utcnow,
                 rng: Callable[[], float] = random.random) -> None:
        settings = get_settings()
        self.database_url = database_url or settings.database_url
        self.webhooks = {w.name: w for w in (settings.helpdesk_webhooks if webhooks is None else webhooks)}
        self.max_attempts = max_attempts or settings.helpdesk_max_attempts
        self.base_delay_s = settings.helpdesk_retry_base_s if base_delay_s is None else base_delay_s
        self.max_delay_s = settings.helpdesk_retry_max_s if max_delay_s is None else max_delay_s
        self.timeout_s = timeout_s or settings.helpdesk_timeout_s
        self.lease_s = lease_s if lease_s is not None else self.timeout_s + 30
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.clock = clock
        self.rng = rng
        self._own_client = client is None
        self._client = client
        self._sessions = sessionmaker(bind=get_engine(self.database_url), expire_on_commit=False)
        self._wake = asyncio.Event()

    # ----------------------------------------------------------------- database (run in a thread)

    def _take_due(self) -> list[_Job]:
        now = self.clock()
        with self._sessions.begin() as session:
            query = (select(HelpdeskOutbox.id, HelpdeskOutbox.attempts)
                     .where(HelpdeskOutbox.status == PENDING, HelpdeskOutbox.next_attempt_at <= now)
                     .order_by(HelpdeskOutbox.next_attempt_at, HelpdeskOutbox.id).limit(self.batch_size))
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            taken = []
            for row_id, attempts in session.execute(query).all():
                done = session.execute(
                    update(HelpdeskOutbox)
                    .where(HelpdeskOutbox.id == row_id, HelpdeskOutbox.status == PENDING,
                           HelpdeskOutbox.attempts == attempts, HelpdeskOutbox.next_attempt_at <= now)
                    .values(attempts=attempts + 1, next_attempt_at=now + timedelta(seconds=self.lease_s))
                    .execution_options(synchronize_session=False))
                if rows_affected(done) == 1:
                    taken.append(row_id)
            rows = session.scalars(select(HelpdeskOutbox).where(HelpdeskOutbox.id.in_(taken))
                                   .order_by(HelpdeskOutbox.id)).all() if taken else []
            return [_Job(r.id, r.target, r.kind, r.url, r.payload, r.idempotency_key, r.attempts) for r in rows]

    def backoff_s(self, attempt: int) -> float:
        """Delay after failed attempt ``attempt`` (1-based): base * 2^(attempt-1), capped, times 0.5 to 1."""
        delay = min(self.max_delay_s, self.base_delay_s * 2 ** max(0, attempt - 1))
        return delay * (0.5 + 0.5 * self.rng())

    def _record(self, job: _Job, outcome: Outcome) -> None:
        now = self.clock()
        with self._sessions.begin() as session:
            mine = (HelpdeskOutbox.id == job.id) & (HelpdeskOutbox.status == PENDING) & \
                   (HelpdeskOutbox.attempts == job.attempt)
            if outcome.ok:
                values: dict[str, Any] = {"status": DELIVERED, "delivered_at": now, "last_error": None}
            elif outcome.permanent or job.attempt >= self.max_attempts:
                values = {"status": DEAD, "last_error": outcome.error[:2000]}
                log.error("helpdesk delivery %s to %s is dead after %d attempt(s): %s", job.id, job.target,
                          job.attempt, outcome.error)
            else:
                delay = self.backoff_s(job.attempt)
                if outcome.retry_after is not None:
                    delay = min(self.max_delay_s, max(delay, outcome.retry_after))
                values = {"next_attempt_at": now + timedelta(seconds=delay), "last_error": outcome.error[:2000]}
                log.warning("helpdesk delivery %s to %s failed (attempt %d), retrying in %.1f s: %s", job.id,
                            job.target, job.attempt, delay, outcome.error)
            session.execute(update(HelpdeskOutbox).where(mine).values(**values)
                            .execution_options(synchronize_session=False))

    # ----------------------------------------------------------------- HTTP

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False)
        return self._client

    async def _send(self, job: _Job) -> Outcome:
        headers = {"Content-Type": "application/json", "Idempotency-Key": job.key, "User-Agent": USER_AGENT}
        webhook = self.webhooks.get(job.target)
        if webhook is not None and webhook.token and job.kind != "slack":
            headers["Authorization"] = f"Bearer {webhook.token}"
        body = json.dumps(job.payload, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            response = await self._get_client().post(job.url, content=body, headers=headers,
                                                     timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            return Outcome(False, error=f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__)
        if 200 <= response.status_code < 300:
            return Outcome(True)
        error = f"HTTP {response.status_code}: {response.text[:300]}"
        return Outcome(False, permanent=response.status_code in PERMANENT_STATUSES, error=error,
                       retry_after=_retry_after(response.headers.get("retry-after"), self.clock()))

    async def _deliver(self, job: _Job) -> None:
        outcome = await self._send(job)
        await asyncio.to_thread(self._record, job, outcome)

    # ----------------------------------------------------------------- loop

    async def run_once(self) -> int:
        """Send every row due now (one batch); returns how many were attempted."""
        jobs = await asyncio.to_thread(self._take_due)
        if jobs:
            await asyncio.gather(*(self._deliver(job) for job in jobs))
        return len(jobs)

    def wake(self) -> None:
        """Look at the outbox now (e.g. right after a ticket was opened in this process)."""
        self._wake.set()

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Poll every ``poll_interval_s`` (at once after a full batch) until ``stop`` is set; errors are
        logged and retried, never fatal."""
        failures = 0
        while not stop.is_set():
            try:
                sent = await self.run_once()
                failures = 0
            except Exception:  # the database may be briefly away: keep the worker alive
                failures += 1
                log.exception("helpdesk outbox: run failed (%d in a row)", failures)
                sent = 0
            if sent >= self.batch_size:
                continue
            pause = self.poll_interval_s * min(30, 2 ** failures if failures else 1)
            self._wake.clear()
            stop_wait = asyncio.ensure_future(stop.wait())
            wake_wait = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({stop_wait, wake_wait}, timeout=pause, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in (stop_wait, wake_wait):
                    waiter.cancel()

    async def aclose(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None
