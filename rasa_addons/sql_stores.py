"""Rasa's SQL tracker store and SQL event broker, made safe on a dropped connection and cheap per message.

Selected in Rasa's endpoints (bot/rasa_endpoints.py, docker/endpoints.compose.yml) as
``type: rasa_addons.sql_stores.ShopSQLTrackerStore`` and ``type: rasa_addons.sql_stores.PingingSQLEventBroker``.

**A dropped connection is replaced, not used.** Rasa 3.6 creates both engines without ``pool_pre_ping``, so
after a database restart or a terminated backend the next message fails on a dead pooled connection: the
tracker store falls back to an in-memory tracker for that message (answered, never stored: the message is
lost), and a failing event broker stops the tracker from being saved at all.

**Saving a turn costs one transaction.** Rasa's ``save`` first counts the conversation's stored events
(a query over the latest session) to find which events are new, and with an event broker also retrieves and
rebuilds the whole tracker to diff it; on SQLite each session also opened and closed a file connection and
committed through a rollback journal. Under load that was about a quarter of the Rasa server's busy time
(py-spy, docs/benchmarks.md, "Load"). Here:

- ``retrieve`` remembers on the tracker how many stored events it was built from. A turn runs under
  Rasa's conversation lock (in-process or Redis), so nobody else stores events for it between the retrieve
  and the save: the new events are exactly those after that count. A tracker that was not retrieved (a new
  conversation, a copy) falls back to Rasa's count query. After a save the count is the tracker's length.
- The event broker gets the same new events, without a second retrieve.
- SQLite keeps its connections in a pool and uses write-ahead logging with ``synchronous=FULL``: a commit
  is one fsync of the log and still durable on power loss; readers (the lead's inbox, analytics) do not
  block the writer. ``busy_timeout`` lets the gateway's privacy jobs and Rasa share the file.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm
from rasa.core.brokers.sql import SQLEventBroker
from rasa.core.tracker_store import SQLTrackerStore, create_engine_kwargs
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker

logger = logging.getLogger(__name__)

STORED = "_shop_stored_events"  # attribute on a tracker: how many of its events are in the database


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class ShopSQLTrackerStore(SQLTrackerStore):
    """``SQLTrackerStore`` with pre-pinged pooled connections and one transaction per save (module docstring)."""

    engine: sa.engine.Engine  # set by SQLTrackerStore.__init__, replaced below for SQLite

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        url = self.engine.url
        self.engine.dispose()
        if url.get_backend_name() == "sqlite":
            self.engine = sa.create_engine(url, poolclass=sa.pool.QueuePool, pool_size=2, max_overflow=4,
                                           pool_pre_ping=True, connect_args={"check_same_thread": False})
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = sa.create_engine(url, pool_pre_ping=True, **create_engine_kwargs(url))
        self.sessionmaker = sqlalchemy.orm.sessionmaker(bind=self.engine)

    async def _retrieve(self, sender_id: str, fetch_events_from_all_sessions: bool) -> DialogueStateTracker | None:
        tracker = await super()._retrieve(sender_id, fetch_events_from_all_sessions)
        if tracker is not None:  # built from exactly the stored events it holds
            setattr(tracker, STORED, len(tracker.events))
        return tracker

    @staticmethod
    def _new_events(tracker: DialogueStateTracker) -> list[Event] | None:
        """The tracker's events after those it was retrieved (or last saved) with; None: not known."""
        stored = getattr(tracker, STORED, None)
        if stored is None or stored > len(tracker.events):
            return None
        return list(itertools.islice(tracker.events, stored, len(tracker.events)))

    async def stream_events(self, tracker: DialogueStateTracker) -> None:
        new_events = self._new_events(tracker)
        if self.event_broker is None or new_events is None:
            await super().stream_events(tracker)  # retrieves the stored tracker again to diff it
            return
        await self._stream_new_events(self.event_broker, new_events, tracker.sender_id)

    def _additional_events(self, session: sa.orm.Session, tracker: DialogueStateTracker) -> Iterator[Event]:
        new_events = self._new_events(tracker)
        if new_events is None:
            return super()._additional_events(session, tracker)  # type: ignore[no-any-return]
        return iter(new_events)

    async def save(self, tracker: DialogueStateTracker) -> None:
        await super().save(tracker)  # stream_events, then _additional_events, stored in one commit
        setattr(tracker, STORED, len(tracker.events))


class PingingSQLEventBroker(SQLEventBroker):
    """``SQLEventBroker`` whose connection pool pings each connection before handing it out, and which starts
    beside another replica: Rasa's own creates its table unguarded, so two Rasa servers starting at once on
    one PostgreSQL could fail with "relation events already exists" (seen in tests/integration/test_scale_out.py)."""

    def __init__(self, dialect: str = "sqlite", host: str | None = None, port: int | None = None,
                 db: str = "events.db", username: str | None = None, password: str | None = None) -> None:
        url = SQLTrackerStore.get_db_url(dialect, host, port, db, username, password)
        self.engine = sa.create_engine(url, pool_pre_ping=True)
        for attempt in range(5):
            try:
                self.Base.metadata.create_all(self.engine)  # checks for the table first
                break
            except (sa.exc.ProgrammingError, sa.exc.IntegrityError, sa.exc.OperationalError) as error:
                if sa.inspect(self.engine).has_table("events"):
                    break  # another Rasa server created it at the same moment
                if attempt == 4:
                    raise
                logger.warning(f"SQLEventBroker: creating the events table failed, trying again: {error}")
                time.sleep(0.5 * (attempt + 1))
        self.sessionmaker = sqlalchemy.orm.sessionmaker(bind=self.engine)
