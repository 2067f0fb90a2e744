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
# SHOP_TEST_DATABASE=postgres runs the session against a throwaway PostgreSQL server (tests/support/pg.py)
# that the tests start and stop themselves: `make test` does so for the shop modules.
_PG_SERVER = None
if os.environ.get("SHOP_TEST_DATABASE", "sqlite") == "postgres":
    from tests.support.pg import PostgresServer, find_bin_dir

    _bin = find_bin_dir()
    if _bin is None:
        _why = "SHOP_TEST_DATABASE=postgres, but PostgreSQL (initdb, pg_ctl) is not installed"
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            raise RuntimeError(_why)
        pytest.exit(f"{_why}: the PostgreSQL pass is skipped", returncode=0)
    _PG_SERVER = PostgresServer(_bin)
    _PG_SERVER.start()
    os.environ["DATABASE_URL"] = _PG_SERVER.create_database("shop_tests")
elif os.environ.get("SHOP_TEST_DATABASE", "sqlite") != "sqlite":
    raise RuntimeError("SHOP_TEST_DATABASE must be sqlite or postgres")
os.environ["SHOP_MODELS_DIR"] = str(_TMP / "models")
# Console trainings read and write a copy of the training inputs, never the repository's data/ and tests/.
os.environ["SHOP_TRAINING_ROOT"] = str(_TMP / "training-root")
os.environ["SHOP_DEMO_PRODUCTS"] = "600"
# Many tests run a gateway with Rasa down on the shared test database, and the gateway keeps those messages
# for replay. A later test's gateway would replay them into its own Rasa (real or recorded) and disturb it:
# replay is off here and on where it is tested (tests/integration/test_faults.py, on its own database).
os.environ["SHOP_REPLAY_HELD"] = "false"
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


GROUPS = ("unit", "integration", "browser", "rasa")  # the folders under tests/, each also a marker


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test carries its folder's marker, so ``pytest -m "not browser"`` and the like select by group."""
    for item in items:
        group = item.path.parent.name
        if group in GROUPS:
            item.add_marker(getattr(pytest.mark, group))


def pytest_unconfigure(config: pytest.Config) -> None:
    if _PG_SERVER is not None:
        _PG_SERVER.stop()


def copy_training_inputs(target: Path) -> Path:
    """config.yml, domain.yml, data/{nlu,stories,rules} and the held-out sets (tests/nlu_test.yml, nlu_informal.yml,
    offtopic.yml, nlu_dev.yml), as a console training reads them."""
    import shutil

    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.yml", "domain.yml"):
        shutil.copy2(ROOT / name, target / name)
    for name in ("nlu", "stories", "rules"):
        shutil.copytree(ROOT / "data" / name, target / "data" / name, dirs_exist_ok=True)
    (target / "tests").mkdir(exist_ok=True)
    for name in ("nlu_test.yml", "nlu_informal.yml", "offtopic.yml", "nlu_dev.yml"):
        if (ROOT / "tests" / name).exists():
            shutil.copy2(ROOT / "tests" / name, target / "tests" / name)
    return target


def pytest_configure(config: pytest.Config) -> None:
    """Load the test catalog before test modules import ``actions`` (which builds the index)."""
    copy_training_inputs(Path(os.environ["SHOP_TRAINING_ROOT"]))
    from bot.catalog.store import product_count, upsert_products
    from bot.db import migrate, session_scope
    from bot.demo import catalog as demo

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
    from bot.training import rasa_model
    from devstack.stack import Stack, StackConfig

    if not rasa_model.model_path().exists():
        pytest.fail("no trained Rasa model: run `make model` (make test does) first")
    log = (tmp_root / "stack.log").open("w")
    config = StackConfig(
        rasa_port=free_port(), actions_port=free_port(), gateway_port=free_port(), model=rasa_model.model_path(),
        tracker_db=tmp_root / "tracker.sqlite3", python=ROOT / ".venv" / "bin" / "python",
        rasa_bin=rasa_model.rasa_executable(), color=False,
        # every test shopper comes from 127.0.0.1: the chat rate limits are tested on their own (test_security)
        extra_env={"SHOP_RATE_LIMIT_EXEMPT": "127.0.0.0/8,::1"},
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


CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    """Headless Chromium (the apt package) driven by Playwright, one per test module."""
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator:
    """A throwaway PostgreSQL server (tests/support/pg.py) for the whole session; ``.create_database(name)``
    gives a fresh database URL. Skipped without PostgreSQL, except under CI where that fails."""
    from tests.support.pg import postgres_server

    with postgres_server() as server:
        yield server
