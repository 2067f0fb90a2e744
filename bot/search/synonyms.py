"""The shop's table of other names for its product categories (``data/search_synonyms.yml``).

Each entry is one group of names for the same kind of product, British and American or just
colloquial: ``sweater: [jumper, pullover]``. When the catalog has a category by any name of a
group, every name of the group filters by that category and searches as its name ("jumper" finds
the Sweaters); when it has none, the words stay as typed. Either way the lexical search (BM25)
also looks for the group's other names ("torch" finds "flashlight" in titles). The table is part
of the query parser's fingerprint: editing it rebuilds the saved parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class SynonymsError(ValueError):
    """The synonym file is not a mapping of names to lists of names."""


def _key(value: str) -> str:
    return " ".join(value.lower().split())


@dataclass(frozen=True)
class Synonyms:
    # (key, other names), in the file's order; names lower case, single-spaced
    categories: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @classmethod
    def from_dict(cls, data: Any, source: str = "<synonyms>") -> Synonyms:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise SynonymsError(f"{source}: expected a mapping with a 'categories' section")
        unknown = set(data) - {"categories"}
        if unknown:
            raise SynonymsError(f"{source}: unknown section(s) {sorted(unknown)}; expected 'categories'")
        section = data.get("categories") or {}
        if not isinstance(section, dict):
            raise SynonymsError(f"{source}: 'categories' must map a name to a list of other names")
        groups: list[tuple[str, tuple[str, ...]]] = []
        for name, others in section.items():
            if isinstance(others, str):
                others = [others]
            if not isinstance(name, str) or not name.strip() or not isinstance(others, list | None):
                raise SynonymsError(f"{source}: categories.{name}: expected `name: [other, names]`")
            names = [_key(str(o)) for o in others or [] if str(o).strip()]
            groups.append((_key(name), tuple(dict.fromkeys(n for n in names if n != _key(name)))))
        return cls(tuple(groups))

    @classmethod
    def load(cls, path: Path | None) -> Synonyms:
        """The table in ``path``; none when the path is None or the file does not exist."""
        if path is None or not path.exists():
            return cls()
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise SynonymsError(f"{path}: not valid YAML: {exc}") from exc
        return cls.from_dict(data, str(path))

    def to_dict(self) -> dict[str, Any]:
        return {"categories": {key: list(others) for key, others in self.categories}}

    def groups(self) -> list[tuple[str, ...]]:
        """Every group as its names, the key first."""
        return [(key, *others) for key, others in self.categories]


def stamp(path: Path | None) -> tuple[float, int] | None:
    """When and how big the file is (None: no file), to notice an edit without reading it."""
    if path is None:
        return None
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_mtime, info.st_size)
