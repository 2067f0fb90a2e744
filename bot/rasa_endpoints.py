"""Rasa's ``endpoints.yml`` for the engines in use, written by ``make run`` / the stack at start-up.

Embedded (the defaults): a SQLite tracker store and Rasa's in-process lock store. ``DATABASE_URL`` on
PostgreSQL puts the tracker store in that database (beside our tables, which the console and analytics
read) and Rasa's SQL event broker in ``<db>_events`` on the same server (every event as JSON, for
consumers that should not read the tracker store); ``REDIS_URL`` switches Rasa to the Redis lock
store, so several Rasa servers can serve one conversation without interleaving its messages. The
repository's ``endpoints.yml`` describes the embedded mode with environment variables, and
``docker/endpoints.compose.yml`` the compose one; this module is what the stack uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import make_url

TRACKER_STORE_CLASS = "rasa_addons.sql_stores.ShopSQLTrackerStore"
# Rasa sends the action server's shared secret (SHOP_ACTIONS_TOKEN) in this header on every call (Rasa's
# EndpointConfig ``headers``); the action server refuses calls without it (actions/server.py).
ACTIONS_TOKEN_HEADER = "X-Shop-Actions-Token"
EVENT_BROKER_CLASS = "rasa_addons.sql_stores.PingingSQLEventBroker"


def tracker_store(database_url: str, sqlite_file: str) -> dict[str, Any]:
    # rasa_addons/sql_stores.py: pre-pinged pooled connections (a dropped connection loses no message), one
    # transaction per saved turn, and on SQLite a write-ahead log
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return {"type": TRACKER_STORE_CLASS, "dialect": "sqlite", "db": sqlite_file}
    if url.get_backend_name() != "postgresql":
        raise ValueError(f"Rasa's tracker store supports SQLite or PostgreSQL here, not {url.get_backend_name()}")
    store: dict[str, Any] = {"type": TRACKER_STORE_CLASS, "dialect": "postgresql",
                             "url": url.host or "127.0.0.1",
                             "port": url.port or 5432, "db": url.database}
    if url.username:
        store["username"] = url.username
    if url.password:
        store["password"] = url.password
    return store


def event_database(database_url: str) -> str | None:
    """Name of the database Rasa's SQL event broker writes to on PostgreSQL (``<db>_events``): its table
    is also called ``events``, so it cannot share the tracker store's database."""
    url = make_url(database_url)
    return f"{url.database}_events" if url.get_backend_name() == "postgresql" else None


def event_broker(database_url: str) -> dict[str, Any] | None:
    name = event_database(database_url)
    if name is None:
        return None
    return {**tracker_store(database_url, ""), "type": EVENT_BROKER_CLASS, "db": name}


def ensure_event_database(database_url: str) -> None:
    """Creates the event broker's database on the PostgreSQL server when it is missing."""
    name = event_database(database_url)
    if name is None:
        return
    import psycopg

    url = make_url(database_url).set(drivername="postgresql", database="postgres")
    dsn = url.render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')


def lock_store(redis_url: str) -> dict[str, Any] | None:
    if not redis_url:
        return None
    url = make_url(redis_url.replace("redis://", "redis+py://", 1) if redis_url.startswith("redis://") else redis_url)
    store: dict[str, Any] = {"type": "redis", "url": url.host or "127.0.0.1", "port": url.port or 6379,
                             "db": int(url.database or 0), "key_prefix": "shop"}
    if url.password:
        store["password"] = url.password
    return store


def action_endpoint(action_url: str, action_token: str = "") -> dict[str, Any]:
    endpoint: dict[str, Any] = {"url": action_url}
    if action_token:
        endpoint["headers"] = {ACTIONS_TOKEN_HEADER: action_token}
    return endpoint


def render(*, action_url: str, database_url: str, sqlite_file: str, redis_url: str = "",
           action_token: str = "") -> dict[str, Any]:
    endpoints: dict[str, Any] = {"action_endpoint": action_endpoint(action_url, action_token),
                                 "tracker_store": tracker_store(database_url, sqlite_file)}
    broker = event_broker(database_url)
    if broker is not None:
        endpoints["event_broker"] = broker
    lock = lock_store(redis_url)
    if lock is not None:
        endpoints["lock_store"] = lock
    return endpoints


def write(path: Path, **kwargs: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = ("# Generated at start-up from DATABASE_URL, REDIS_URL and SHOP_ACTIONS_TOKEN (bot/rasa_endpoints.py); "
            "do not edit.\n")
    # it may hold database and Redis passwords, and holds the action server's secret: 0600 before it is written
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(body + yaml.safe_dump(render(**kwargs), sort_keys=False))
    return path
