"""Test environment: an isolated SQLite database, search index and small demo catalog.

The environment is set before any ``bot`` module reads its settings.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_TMP = Path(tempfile.mkdtemp(prefix="shop-assistant-tests-"))
os.environ["DATABASE_URL"] = f"sqlite:///{_TMP / 'shop.sqlite3'}"
os.environ["SHOP_MODELS_DIR"] = str(_TMP / "models")
os.environ["SHOP_DEMO_PRODUCTS"] = "600"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

ROOT = Path(__file__).resolve().parent.parent
TEST_CATALOG_SIZE = 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def tmp_root() -> Path:
    return _TMP


def pytest_configure(config: pytest.Config) -> None:
    """Load the test catalog before test modules import ``actions`` (which builds the index)."""
    from bot.catalog import demo
    from bot.catalog.store import product_count, upsert_products
    from bot.db import migrate, session_scope

    migrate()
    with session_scope() as session:
        if product_count(session) == 0:
            upsert_products(session, demo.generate(TEST_CATALOG_SIZE))


@pytest.fixture(scope="session")
def catalog() -> int:
    """The demo catalog (600 products) in the test database, with its search index built."""
    from actions import services
    from bot.catalog.store import product_count
    from bot.db import session_scope

    with session_scope() as session:
        count = product_count(session)

    services.product_search()  # builds the index once for every test
    return count


@pytest.fixture
def db_session(catalog: int) -> Iterator:
    from bot.db import session_scope

    with session_scope() as session:
        yield session


@pytest.fixture(scope="session")
def stack(catalog: int, tmp_root: Path) -> Iterator:
    """The real thing: Rasa with the trained model, the action server and the gateway, on free ports."""
    from bot.devstack import Stack, StackConfig
    from bot.training import rasa_model

    if not rasa_model.model_path().exists():
        pytest.fail("no trained Rasa model: run `make model` (make test does) first")
    log = (tmp_root / "stack.log").open("w")
    config = StackConfig(
        rasa_port=free_port(), actions_port=free_port(), gateway_port=free_port(), model=rasa_model.model_path(),
        tracker_db=tmp_root / "tracker.sqlite3", python=ROOT / ".venv" / "bin" / "python",
        rasa_bin=rasa_model.rasa_executable(), color=False,
    )
    running = Stack(config, output=log)
    running.start()
    try:
        running.wait_healthy(timeout=240)
        yield running
    except (RuntimeError, TimeoutError) as exc:
        log.flush()
        tail = (tmp_root / "stack.log").read_text()[-4000:]
        pytest.fail(f"stack did not start: {exc}\n{tail}")
    finally:
        running.stop()
        log.close()
