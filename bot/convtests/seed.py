"""The suite a fresh install starts with: our own test stories and a few multi-turn conversations."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import PROJECT_ROOT
from bot.convtests import store, yaml_io
from bot.convtests.tables import ConversationTestRow

SEED_FILES = (PROJECT_ROOT / "tests" / "test_stories.yml",
              PROJECT_ROOT / "data" / "conversation_tests" / "seed.yml")
SEED_AUTHOR = "seed"


def import_tests(session: Session, path: Path, *, created_by: str, source: str | None = None) -> tuple[int, int]:
    """Save each test of the YAML file whose name is not taken yet: (added, skipped as present already).
    The whole file is checked before anything is saved."""
    tests = yaml_io.import_file(path, source=source)
    taken = set(session.scalars(select(ConversationTestRow.name)))
    added = 0
    for test in tests:
        if test.name in taken:
            continue
        store.save_test(session, test, created_by)
        added += 1
    return added, len(tests) - added


def seed(session: Session) -> int:
    """Import the seed files (tests/test_stories.yml, data/conversation_tests/seed.yml); tests already saved
    under the same name are left as they are, so seeding twice adds nothing. The number added."""
    added = 0
    for path in SEED_FILES:
        added += import_tests(session, path, created_by=SEED_AUTHOR, source=f"seed:{path.name}")[0]
    return added


def seed_if_empty(session: Session) -> int:
    """Seed only a suite that has no test at all (a fresh install), so a seeded test a lead deleted stays
    deleted. The number added."""
    if session.scalar(select(ConversationTestRow.id).limit(1)) is not None:
        return 0
    return seed(session)
