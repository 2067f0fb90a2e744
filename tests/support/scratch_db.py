"""Databases of a test's own: a migrated SQLite file, a session on emptied tables, a file at an old schema revision."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session

from bot.db import MIGRATIONS_DIR, migrate, session_scope

if TYPE_CHECKING:
    from alembic.config import Config

# A product row as the schema before product variants (revisions 0003 to 0009) stores it.
OLD_SCARF = ("INSERT INTO products (id, sku, title, description, brand, category, price, currency, color, "
             "material, gender, sizes, attributes, rating, rating_count, stock, image_url) VALUES "
             "(7, 'P7', 'Scarf', '', '', '', 20, 'USD', '', '', '', '[]', '{}', 0, 0, 9, '')")


def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory, folder: str, filename: str) -> str:
    """The URL of a new SQLite file ``folder/filename`` with every migration applied."""
    url = f"sqlite:///{tmp_path_factory.mktemp(folder) / filename}"
    migrate(url)
    return url


@contextmanager
def emptied_session(url: str, *tables: Any) -> Iterator[Session]:
    """A session on ``url`` after deleting every row of ``tables`` (in that order)."""
    with session_scope(url) as session:
        for table in tables:
            session.execute(delete(table))
        session.commit()
        yield session


def migrated_to(db: Path, revision: str) -> Config:
    """Alembic's configuration for the SQLite file ``db``, which it has just upgraded to ``revision``."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", f"sqlite:///{db}")
    command.upgrade(cfg, revision)
    return cfg
