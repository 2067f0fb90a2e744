"""Rasa's SQL tracker store and SQL event broker with ``pool_pre_ping``: a dropped database connection
is replaced, not used.

Rasa 3.6 creates both engines without pre-ping, so after a database restart or a terminated backend the
next message fails on a dead pooled connection: the tracker store falls back to an in-memory tracker for
that message (answered, never stored: the shopper's message is lost), and a failing event broker stops
the tracker from being saved at all. With pre-ping, SQLAlchemy tests each connection on checkout and
reconnects. Selected in Rasa's endpoints as ``type: rasa_addons.pinging_sql.PingingSQLTrackerStore`` and
``type: rasa_addons.pinging_sql.PingingSQLEventBroker`` (bot/rasa_endpoints.py).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm
from rasa.core.brokers.sql import SQLEventBroker
from rasa.core.tracker_store import SQLTrackerStore, create_engine_kwargs


class PingingSQLTrackerStore(SQLTrackerStore):
    """``SQLTrackerStore`` whose connection pool pings each connection before handing it out."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        url = self.engine.url
        self.engine.dispose()
        self.engine = sa.create_engine(url, pool_pre_ping=True, **create_engine_kwargs(url))
        self.sessionmaker = sqlalchemy.orm.sessionmaker(bind=self.engine)


class PingingSQLEventBroker(SQLEventBroker):
    """``SQLEventBroker`` whose connection pool pings each connection before handing it out."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        url = self.engine.url
        self.engine.dispose()
        self.engine = sa.create_engine(url, pool_pre_ping=True)
        self.sessionmaker = sqlalchemy.orm.sessionmaker(bind=self.engine)
