"""The command line: every command's help, and the main commands on a tiny catalog in a throwaway database."""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from bot.cli import app

ROOT = Path(__file__).resolve().parents[2]
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


def _local_imports() -> list[tuple[str, str, str]]:
    """(file:line, module, name) of every ``from X import Y`` inside a function of the CLI package: the imports
    kept lazy because they are heavy, which only the command that runs them would otherwise find broken."""
    found = []
    for path in sorted((ROOT / "bot" / "cli").glob("*.py")):
        for function in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom):
                    assert node.level == 0 and node.module, f"{path.name}:{node.lineno}: a relative import"
                    found += [(f"{path.name}:{node.lineno}", node.module, alias.name) for alias in node.names]
                elif isinstance(node, ast.Import):
                    found += [(f"{path.name}:{node.lineno}", alias.name, "") for alias in node.names]
    return found


LOCAL_IMPORTS = _local_imports()


def test_the_cli_keeps_its_heavy_imports_lazy() -> None:
    modules = {module for _, module, _ in LOCAL_IMPORTS}
    assert {"bot.search", "bot.search.index", "benchmarks.load"} <= modules


@pytest.mark.parametrize(("where", "module", "name"), LOCAL_IMPORTS, ids=[w for w, _, _ in LOCAL_IMPORTS])
def test_every_function_local_import_of_the_cli_resolves(where: str, module: str, name: str) -> None:
    imported = importlib.import_module(module)
    if name and not hasattr(imported, name):  # a submodule: `from bot.search import index`
        importlib.import_module(f"{module}.{name}")
        imported = importlib.import_module(module)
    assert not name or hasattr(imported, name), f"{where}: {module} has no {name}"


# What rich reads to draw its progress display as on a terminal, where the output is a pipe here.
TERMINAL = {"TTY_INTERACTIVE": "1", "TTY_COMPATIBLE": "1", "COLUMNS": "200"}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _bot(*args: str, tmp: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp / 'shop.sqlite3'}", "SHOP_MODELS_DIR": str(tmp / "models"),
           "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def _shown(stderr: str) -> str:
    """What the terminal showed, without the escape codes."""
    return _ANSI.sub("", stderr)


def test_import_then_build_the_search_index_and_rebuild_it_with_force(tmp_path: Path) -> None:
    imported = _bot("catalog", "import", str(FIXTURES / "shopify_products.csv"), "--format", "shopify", tmp=tmp_path)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    built = _bot("search", "build", tmp=tmp_path)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "search index: 3 products" in built.stdout
    assert "embedding" not in built.stderr and "Batches" not in built.stderr  # no terminal: no progress display
    assert (tmp_path / "models" / "search").is_dir()
    # crashed: it called functions the index lacks; on a terminal, each step shows, the embedding with its count
    forced = _bot("search", "build", "--force", tmp=tmp_path, env=TERMINAL)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "search index: 3 products" in forced.stdout
    shown = _shown(forced.stderr)
    for step in ("loading the embedding model", "embedding 3 products", "3/3", "word index (BM25F) of 3 products",
                 "saving the index"):
        assert step in shown, shown[-3000:]


def test_the_import_progress_counts_lines_products_and_rejected_rows(tmp_path: Path) -> None:
    source = tmp_path / "products.csv"  # 6 lines; the short row on line 4 is rejected, and so its product
    lines = (FIXTURES / "shopify_products.csv").read_text().splitlines(keepends=True)
    source.write_text("".join([*lines[:3], "trail-parka,,,,,,,,L,,Red\n", *lines[4:]]))
    imported = _bot("catalog", "import", str(source), "--format", "shopify", tmp=tmp_path, env=TERMINAL)
    assert imported.returncode == 1
    assert "2 inserted, 0 updated, 0 unchanged, 2 rejected (lines 2, 4)" in imported.stdout
    shown = _shown(imported.stderr)
    assert "line 6/6" in shown and "2 products, 2 rejected" in shown, shown[-3000:]
