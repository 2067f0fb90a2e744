"""The held-message queue and the login throttle on the real database (SQLite here, PostgreSQL in CI's
second run is not needed: the claim is one conditional UPDATE, the same on both)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from bot.auth.tables import LoginFailure
from bot.auth.throttle import LoginThrottle
from bot.clock import utcnow
from bot.db import session_scope
from bot.held_messages import queue as held
from bot.held_messages.tables import HeldMessage


def conversation() -> str:
    return f"held-{uuid.uuid4().hex[:10]}"


def test_held_messages_come_back_in_order_to_one_replica_at_a_time() -> None:
    conv, now = conversation(), utcnow()
    with session_scope() as s:
        assert not held.has_held(s, conv)
        for text in ("first", "second", "third"):
            held.hold(s, conv, text, {"customer_id": 7}, now=now)
        assert held.has_held(s, conv) and conv in held.due_conversations(s, now=now, limit=10_000)
    with session_scope() as s:
        mine = held.claim(s, conv, "gw-a", lease_s=60, now=now)
        assert [m.text for m in mine] == ["first", "second", "third"] and mine[0].metadata == {"customer_id": 7}
    with session_scope() as s:
        assert held.claim(s, conv, "gw-b", lease_s=60, now=now) == []  # gw-a is replaying it
        assert conv not in held.due_conversations(s, now=now, limit=10_000)
        held.hold(s, conv, "fourth", {}, now=now)  # arrives meanwhile: behind the others
        assert held.claim(s, conv, "gw-b", lease_s=60, now=now) == []  # not ahead of gw-a's rows
    with session_scope() as s:
        held.done(s, mine[0].id)
        held.release(s, conv, "gw-a", error="rasa could not be reached")
    with session_scope() as s:
        again = held.claim(s, conv, "gw-b", lease_s=60, now=now)
        assert [m.text for m in again] == ["second", "third", "fourth"]
        assert [m.attempts for m in again] == [1, 1, 0]
        row = s.get(HeldMessage, again[0].id)
        assert row is not None and row.last_error == "rasa could not be reached"


def test_an_expired_claim_is_taken_over() -> None:
    conv, now = conversation(), utcnow()
    with session_scope() as s:
        held.hold(s, conv, "hello", {}, now=now)
        assert held.claim(s, conv, "gw-dead", lease_s=30, now=now)
    with session_scope() as s:
        assert held.claim(s, conv, "gw-b", lease_s=30, now=now + timedelta(seconds=10)) == []
        taken = held.claim(s, conv, "gw-b", lease_s=30, now=now + timedelta(seconds=31))
        assert [m.text for m in taken] == ["hello"]
        held.done(s, taken[0].id)
        assert not held.has_held(s, conv)


def test_erasure_and_retention_helpers_delete_only_what_they_name() -> None:
    a, b, now = conversation(), conversation(), utcnow()
    with session_scope() as s:
        held.hold(s, a, "old", {}, now=now - timedelta(days=40))
        held.hold(s, b, "new", {}, now=now)
        assert held.delete_conversations(s, [a]) == 1
        assert not held.has_held(s, a) and held.has_held(s, b)
        held.hold(s, a, "old again", {}, now=now - timedelta(days=40))
        assert held.delete_older_than(s, now - timedelta(days=30)) >= 1
        assert not held.has_held(s, a) and held.has_held(s, b)
        held.delete_conversations(s, [b])


def test_login_failures_are_counted_in_the_database_for_every_replica() -> None:
    name, addr, now = f"user:{uuid.uuid4().hex[:8]}", f"addr:{uuid.uuid4().hex[:8]}", utcnow()
    replica_a, replica_b = LoginThrottle(limit=3, window_s=60), LoginThrottle(limit=3, window_s=60)
    for throttle in (replica_a, replica_b, replica_a):
        with session_scope() as s:
            assert not throttle.blocked(s, name, addr, now=now)
            throttle.failed(s, name, addr, now=now)
    with session_scope() as s:
        assert replica_b.blocked(s, name, now=now) and replica_a.blocked(s, addr, now=now)
        assert not replica_b.blocked(s, "user:someone-else", now=now)
        assert not replica_b.blocked(s, name, now=now + timedelta(seconds=61))  # the window moved on
        replica_b.succeeded(s, name)
        assert not replica_a.blocked(s, name, now=now) and replica_a.blocked(s, addr, now=now)
    with session_scope() as s:  # old failures are swept when new ones come
        replica_a.failed(s, "user:late", now=now + timedelta(seconds=120))
        assert s.scalars(select(LoginFailure).where(LoginFailure.key == addr)).all() == []


def test_rotating_addresses_cannot_lock_a_member_of_staff_out() -> None:
    """Throttled by name and address together: ten wrong passwords from ten addresses leave the right one from
    the member's own address working; ten from one address block that address; a hundred from anywhere
    block the name."""
    name, now = f"ann-{uuid.uuid4().hex[:8]}", utcnow()
    throttle = LoginThrottle()
    with session_scope() as s:
        for i in range(10):
            assert not throttle.login_blocked(s, name, f"198.51.100.{i}", now=now)
            throttle.login_failed(s, name, f"198.51.100.{i}", now=now)
        assert not throttle.login_blocked(s, name.upper(), "192.0.2.7", now=now)  # her own address still works
        guesser = f"203.0.113.{uuid.uuid4().int % 250}-{name}"
        for _ in range(10):
            throttle.login_failed(s, "someone", guesser, now=now)
        assert throttle.login_blocked(s, name, guesser, now=now)  # that address tried too often, any name
        for i in range(90):
            throttle.login_failed(s, name, f"2001:db8::{i:x}", now=now)
        assert throttle.login_blocked(s, name, "192.0.2.7", now=now)  # a hundred failures: the name waits
        assert not throttle.login_blocked(s, name, "192.0.2.7", now=now + timedelta(seconds=901))
        throttle.login_succeeded(s, name, "192.0.2.7")
        assert not throttle.login_blocked(s, name, "192.0.2.7", now=now)
