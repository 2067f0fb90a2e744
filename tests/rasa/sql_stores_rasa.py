"""Run with the Rasa venv (tests/rasa/test_sql_stores.py does): ``ShopSQLTrackerStore`` stores and returns exactly
what Rasa's own ``SQLTrackerStore`` does, and its event broker gets each new event once.

The same conversation (a new tracker, turns appended and saved one by one, a second session, a tracker
rebuilt by another store instance as after a restart, an unsaved copy) is played against both stores, each on
its own SQLite file with a SQL event broker on a third and fourth file. Prints one JSON object.
"""

import asyncio
import itertools
import json
import sqlite3
import sys
import time
from pathlib import Path

from rasa.core.brokers.sql import SQLEventBroker
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered

from rasa_addons.sql_stores import STORED, ShopSQLTrackerStore

DOMAIN = Domain.from_yaml("""
version: "3.1"
intents: [greet, track_order]
slots:
  order_number:
    type: text
    mappings: [{type: custom}]
responses:
  utter_greet: [{text: "Hi!"}]
""")


CLOCK = itertools.count(1)


def now() -> float:
    """Increasing timestamps after the wall clock (Rasa's own events use it; sessions are found by time)."""
    return time.time() + next(CLOCK) / 1000


def turn(n: int) -> list:  # type: ignore[type-arg]
    return [UserUttered(f"message {n}", {"name": "greet", "confidence": 0.9}, timestamp=now()),
            ActionExecuted("utter_greet", timestamp=now()), BotUttered(f"reply {n}", timestamp=now()),
            SlotSet("order_number", f"NW-{n}", timestamp=now()), ActionExecuted("action_listen", timestamp=now())]


def without_time(data: str) -> dict:  # type: ignore[type-arg]
    event = json.loads(data)
    event.pop("timestamp", None)  # events made by Rasa itself carry the wall-clock time
    return event  # type: ignore[no-any-return]


def rows(path: Path, broker: bool = False) -> list[list]:  # type: ignore[type-arg]
    columns = "sender_id, data" if broker else "sender_id, type_name, intent_name, action_name, data"
    with sqlite3.connect(path) as conn:
        return [[*r[:-1], without_time(r[-1])] for r in conn.execute(f"SELECT {columns} FROM events ORDER BY id")]


async def play(store_class: type, workdir: Path, name: str) -> dict:  # type: ignore[type-arg]
    db, broker_db = workdir / f"{name}.sqlite3", workdir / f"{name}-broker.sqlite3"

    def open_store():  # type: ignore[no-untyped-def]
        broker = SQLEventBroker(dialect="sqlite", db=str(broker_db))
        return store_class(domain=DOMAIN, dialect="sqlite", db=str(db), event_broker=broker)

    store = open_store()
    tracker = await store.get_or_create_tracker("shopper-1")  # new conversation: created and saved
    for n in range(3):
        for event in turn(n):
            tracker.update(event)
        await store.save(tracker)
    await store.save(tracker)  # nothing new: nothing stored twice
    for n in range(3, 5):  # another store instance, as after a restart: retrieve, append, save
        restarted = open_store()
        tracker = await restarted.retrieve("shopper-1")
        for event in turn(n):
            tracker.update(event)
        await restarted.save(tracker)
    copy = tracker.copy()  # a tracker that was not retrieved: falls back to counting what is stored
    copy.update(UserUttered("after copy", {"name": "track_order", "confidence": 0.8}, timestamp=now()))
    await store.save(copy)
    tracker = copy
    tracker.update(SessionStarted(timestamp=now()))  # a new session: only its events are retrieved after
    tracker.update(ActionExecuted("action_listen", timestamp=now()))
    for event in turn(10):
        tracker.update(event)
    await store.save(tracker)
    latest = await store.retrieve("shopper-1")
    full = await store.retrieve_full_tracker("shopper-1")
    journal = None
    if store_class is ShopSQLTrackerStore:
        with sqlite3.connect(db) as conn:
            journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    return {"events": rows(db), "broker": rows(broker_db, broker=True),
            "latest": [without_time(json.dumps(e.as_dict())) for e in latest.events],
            "full": len(full.events), "journal": journal, "stored_attr": getattr(latest, STORED, None)}


async def timing(store_class: type, workdir: Path, name: str, conversations: int = 40, turns: int = 8) -> float:
    """Milliseconds per turn (retrieve, append a turn, save) over short conversations."""
    store = store_class(domain=DOMAIN, dialect="sqlite", db=str(workdir / f"{name}-timing.sqlite3"))
    started = time.perf_counter()
    for c in range(conversations):
        await store.get_or_create_tracker(f"timed-{c}")
        for n in range(turns):
            tracker = await store.retrieve(f"timed-{c}")
            for event in turn(n):
                tracker.update(event)
            await store.save(tracker)
    return (time.perf_counter() - started) / (conversations * turns) * 1000


async def main(workdir: Path) -> None:
    ours = await play(ShopSQLTrackerStore, workdir, "ours")
    reference = await play(SQLTrackerStore, workdir, "reference")
    print(json.dumps({"ours": ours, "reference": reference,
                      "ours_ms": await timing(ShopSQLTrackerStore, workdir, "ours"),
                      "reference_ms": await timing(SQLTrackerStore, workdir, "reference")}))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
