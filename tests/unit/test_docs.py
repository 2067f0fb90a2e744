"""The documentation holds together: a short README front page, links that resolve, and an architecture page
whose file names exist.

`test_architecture_paths_exist` checks every file path in backticks in docs/architecture.md against the tree;
it describes the layout of issue 17 and fails until that layout is in place (run it with
`pytest tests/unit/test_docs.py -k architecture`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE = re.compile(r"`([^`\n]+)`")
FILE_SUFFIXES = (".py", ".yml", ".yaml", ".js", ".css", ".md", ".json", ".jsonl", ".txt", ".toml", ".cfg")
GENERATED = ("models/", "var/", "results/", "reports/", ".rasa/")


def _prose(path: Path) -> str:
    """The page without its fenced code blocks (code may contain brackets that are not links)."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but `-` and `_` dropped, spaces as hyphens."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_anchor(line.lstrip("#")) for line in _prose(path).splitlines() if line.startswith("#")}


def test_readme_is_a_short_front_page() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= 250, f"README.md has {lines} lines; move detail to docs/"


def test_readme_links_every_docs_page() -> None:
    linked = {(README.parent / target.split("#")[0]).resolve() for target in LINK.findall(_prose(README))}
    missing = [page.name for page in sorted(DOCS.glob("*.md")) if page.resolve() not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in LINK.findall(_prose(page)):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        file_part, _, fragment = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in _anchors(dest):
            broken.append(f"{target}: no heading #{fragment} in {dest.relative_to(ROOT)}")
    assert not broken, broken


def _named_paths(page: Path) -> list[str]:
    """Backticked repository paths: no spaces or URL, a folder separator or a file suffix, not generated."""
    paths = []
    for code in CODE.findall(page.read_text(encoding="utf-8")):
        if " " in code or "://" in code or code.startswith(("/", "-", "<", "{", "$", "~")):
            continue
        if "/" not in code and not code.endswith(FILE_SUFFIXES):
            continue
        if code.startswith(GENERATED) or any(ch in code for ch in "*?<>{}[]=:"):
            continue
        paths.append(code)
    return paths


def test_architecture_names_paths() -> None:
    """The path-existence check below has something to check (guards the extraction rule)."""
    named = _named_paths(DOCS / "architecture.md")
    assert "bot/conversation/pipeline.py" in named and "bot/web/static/widget.js" in named


def test_architecture_paths_exist() -> None:
    """Every file or folder docs/architecture.md names in backticks is in the tree (issue 17's layout)."""
    missing = sorted({p for p in _named_paths(DOCS / "architecture.md") if not (ROOT / p).exists()})
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"
