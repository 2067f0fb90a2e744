"""The command line: every command's help, and the main commands on a tiny catalog in a throwaway database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from bot.cli import app

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group under ``group`` (Typer's groups are Click groups under another module)."""
    found = []
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        found.append(path)
        if hasattr(command, "commands"):
            found += _commands(command, path)
    return found


COMMANDS = _commands(typer.main.get_command(app))


def test_the_command_tree_is_all_there() -> None:
    assert {("search", "build"), ("catalog", "import"), ("bench", "escalation"), ("escalation", "train"),
            ("model", "ensure")} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    done = CliRunner().invoke(app, [*command, "--help"])
    assert done.exit_code == 0, done.output
    assert "usage:" in done.output.lower()


def _bot(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp / 'shop.sqlite3'}", "SHOP_MODELS_DIR": str(tmp / "models"),
           "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def test_import_then_build_the_search_index_and_rebuild_it_with_force(tmp_path: Path) -> None:
    imported = _bot("catalog", "import", str(FIXTURES / "shopify_products.csv"), "--format", "shopify", tmp=tmp_path)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    built = _bot("search", "build", tmp=tmp_path)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "search index: 3 products" in built.stdout
    assert (tmp_path / "models" / "search").is_dir()
    forced = _bot("search", "build", "--force", tmp=tmp_path)  # crashed: it called functions the index lacks
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "search index: 3 products" in forced.stdout
