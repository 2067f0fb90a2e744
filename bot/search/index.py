"""The persisted search index of the catalog: dense (FAISS) and lexical (BM25), keyed by product id.

The manifest records the embedding model, the dimension, the FAISS index kind, a fingerprint of
the catalog texts and the catalog's fusion calibration (``calibration.py``: made at a full build,
and again once a tenth of the catalog has changed). ``ensure`` loads it and brings it in line with
the catalog: products that were added, changed or deleted since (found by a hash of each product's
texts) are embedded and indexed one by one; the index is built from scratch only when none exists or the model changed.

A build can report its steps (``BuildProgress``): the command line shows them with ``console_progress``,
the embedding with a count of products, since it takes minutes on a large catalog.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.catalog.tables import Product
from bot.search.calibration import Calibration, calibrate
from bot.search.dense import ANN_THRESHOLD, DenseIndex
from bot.search.embeddings import DIMENSION, MODEL_NAME, Embedder
from bot.search.lexical import LexicalIndex

log = logging.getLogger(__name__)

INDEX_FILE = "products.faiss"
MANIFEST_FILE = "manifest.json"
HASHES_FILE = "text_hashes.npz"
LEXICAL_DIR = "bm25"
FORMAT_VERSION = 3
RECALIBRATE_SHARE = 0.1  # the catalog is calibrated again once a tenth of it was added, changed or removed
EMBED_CHUNK = 512  # texts per encode call while a count is shown: a step of the count every second or two on CPU


class BuildProgress(Protocol):
    """Where a build reports what it is doing: a step (with how many items it has, when it counts them),
    then how many of them are done."""

    def step(self, description: str, total: int | None = None) -> None: ...

    def advance(self, count: int) -> None: ...


class _Silent:
    def step(self, description: str, total: int | None = None) -> None:
        pass

    def advance(self, count: int) -> None:
        pass


class _ConsoleProgress:
    """Each step on a line of its own, with a bar and "done/total" where it counts, and the time it took."""

    def __init__(self, progress: Any) -> None:
        self._progress = progress
        self._task: Any = None

    def step(self, description: str, total: int | None = None) -> None:
        self.finish()
        self._task = self._progress.add_task(description, total=total)

    def advance(self, count: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, count)

    def finish(self) -> None:
        if self._task is not None:
            task = self._progress.tasks[self._task]
            self._progress.update(self._task, total=task.total or 1, completed=task.total or 1)
            self._progress.stop_task(self._task)


@contextmanager
def console_progress() -> Iterator[BuildProgress]:
    """The build's steps on the terminal (stderr), cleared when it ends; nothing when stderr is no terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TextColumn, TimeElapsedColumn
    from rich.text import Text

    class Count(ProgressColumn):
        def render(self, task: Task) -> Text:
            return Text("" if task.total is None else f"{int(task.completed):,}/{int(task.total):,}")

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), Count(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        reporter = _ConsoleProgress(progress)
        yield reporter
        reporter.finish()


def _reporting(progress: bool | BuildProgress) -> Any:
    """A context giving the reporter for ``progress``: True shows the steps on the terminal, False nothing."""
    if progress is True:
        return console_progress()
    return nullcontext(_Silent() if progress is False else progress)


def _embed(embedder: Embedder, texts: list[str], progress: BuildProgress, what: str) -> np.ndarray:
    """The texts' vectors; with a count of them while they are embedded (in chunks) when progress is shown."""
    if not texts:
        return np.zeros((0, DIMENSION), np.float32)
    if isinstance(progress, _Silent):
        return embedder.encode(texts)
    progress.step(f"embedding {len(texts):,} {what}", total=len(texts))
    parts = []
    for start in range(0, len(texts), EMBED_CHUNK):
        chunk = texts[start:start + EMBED_CHUNK]
        parts.append(embedder.encode(chunk))
        progress.advance(len(chunk))
    return np.concatenate(parts)


@dataclass(frozen=True)
class CatalogTexts:
    ids: list[int]
    dense: list[str]
    lexical: list[dict[str, str]]

    def hashes(self) -> np.ndarray:
        def digest(dense: str, fields: dict[str, str]) -> int:
            text = "\x1f".join([dense, *(f"{k}={fields[k]}" for k in sorted(fields))])
            return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)

        return np.asarray([digest(d, f) for d, f in zip(self.dense, self.lexical, strict=True)], dtype=np.int64)

    def calibrate(self, dense: DenseIndex, lexical: LexicalIndex, embedder: Embedder) -> Calibration | None:
        return calibrate(dense, lexical, embedder, self.ids, [f.get("title", "") for f in self.lexical],
                         [f.get("brand", "") for f in self.lexical])

    def subset(self, ids: set[int]) -> CatalogTexts:
        rows = [i for i, pid in enumerate(self.ids) if pid in ids]
        return CatalogTexts([self.ids[i] for i in rows], [self.dense[i] for i in rows], [self.lexical[i] for i in rows])


def catalog_texts(session: Session) -> CatalogTexts:
    products = session.scalars(select(Product).order_by(Product.id)).all()
    return CatalogTexts([p.id for p in products], [p.search_text() for p in products],
                        [p.lexical_fields() for p in products])


def fingerprint_of(ids: np.ndarray, hashes: np.ndarray) -> str:
    order = np.argsort(ids)
    return hashlib.sha256(ids[order].tobytes() + hashes[order].tobytes()).hexdigest()


@dataclass
class SyncReport:
    added: int = 0
    changed: int = 0
    removed: int = 0
    rebuilt: bool = False
    recalibrated: bool = False
    seconds: float = 0.0

    @property
    def touched(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.rebuilt or self.recalibrated)


@dataclass
class ProductIndex:
    dense: DenseIndex
    lexical: LexicalIndex
    hashes: dict[int, int] = field(default_factory=dict)  # product id -> hash of its texts
    calibration: Calibration | None = None  # how far this catalog's search trusts meaning (calibration.py)
    changed_since_calibration: int = 0

    @property
    def size(self) -> int:
        return self.dense.size

    @property
    def fingerprint(self) -> str:
        ids = np.fromiter(self.hashes.keys(), dtype=np.int64, count=len(self.hashes))
        values = np.fromiter(self.hashes.values(), dtype=np.int64, count=len(self.hashes))
        return fingerprint_of(ids, values)

    @classmethod
    def build(cls, texts: CatalogTexts, embedder: Embedder, progress: bool | BuildProgress = False) -> ProductIndex:
        """The index of ``texts``; ``progress``: a reporter of the steps, True to show them on the terminal."""
        with _reporting(progress) as report:
            ids = np.asarray(texts.ids, dtype=np.int64)
            vectors = _embed(embedder, texts.dense, report, "products")
            report.step(f"vector index of {len(texts.ids):,} products")
            dense = DenseIndex.build(ids, vectors)
            report.step(f"word index (BM25F) of {len(texts.ids):,} products")
            lexical = LexicalIndex.build(texts.ids, texts.lexical)
            report.step("calibrating the fusion on the catalog")
            return cls(dense, lexical, dict(zip(texts.ids, texts.hashes().tolist(), strict=True)),
                       texts.calibrate(dense, lexical, embedder))

    def sync(self, texts: CatalogTexts, embedder: Embedder, progress: bool | BuildProgress = False) -> SyncReport:
        """Apply the catalog's additions, changes and deletions to this index in place."""
        with _reporting(progress) as report:
            return self._sync(texts, embedder, report)

    def _sync(self, texts: CatalogTexts, embedder: Embedder, progress: BuildProgress) -> SyncReport:
        start = time.perf_counter()
        current = dict(zip(texts.ids, texts.hashes().tolist(), strict=True))
        removed = [pid for pid in self.hashes if pid not in current]
        added = [pid for pid in current if pid not in self.hashes]
        changed = [pid for pid, h in current.items() if pid in self.hashes and self.hashes[pid] != h]
        report = SyncReport(len(added), len(changed), len(removed))
        if removed:
            self.dense.remove(np.asarray(removed, dtype=np.int64))
            self.lexical.remove(removed)
        fresh = texts.subset(set(added) | set(changed))
        if fresh.ids:
            ids = np.asarray(fresh.ids, dtype=np.int64)
            self.dense.upsert(ids, _embed(embedder, fresh.dense, progress, "new or changed products"))
            progress.step(f"word index (BM25F) of {len(fresh.ids):,} products")
            self.lexical.upsert(fresh.ids, fresh.lexical)
        for pid in removed:
            del self.hashes[pid]
        self.hashes.update((pid, current[pid]) for pid in fresh.ids)
        self.changed_since_calibration += len(added) + len(changed) + len(removed)
        stale = self.changed_since_calibration >= RECALIBRATE_SHARE * max(self.size, 1)
        if stale or self.calibration is None:
            progress.step("calibrating the fusion on the catalog")
            calibration = texts.calibrate(self.dense, self.lexical, embedder)
            report.recalibrated = calibration != self.calibration
            self.calibration, self.changed_since_calibration = calibration, 0
        if (self.dense.kind == "flat") == (self.size > ANN_THRESHOLD):
            # The catalog crossed the ANN threshold: re-index the stored vectors (no re-embedding).
            progress.step(f"vector index of {self.size:,} products")
            ids = self.dense.all_ids()
            self.dense = DenseIndex.build(ids, self.dense.vectors(ids))
            report.rebuilt = True
        report.seconds = time.perf_counter() - start
        return report

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dense.save(directory / INDEX_FILE)
        self.lexical.save(directory / LEXICAL_DIR)
        np.savez(directory / HASHES_FILE, ids=np.fromiter(self.hashes.keys(), np.int64, len(self.hashes)),
                 hashes=np.fromiter(self.hashes.values(), np.int64, len(self.hashes)))
        manifest = {"format": FORMAT_VERSION, "model": MODEL_NAME, "dimension": DIMENSION,
                    "fingerprint": self.fingerprint, "count": self.size, "index_type": self.dense.kind,
                    "nprobe": self.dense.nprobe, "lexical": "bm25f",
                    "calibration": self.calibration.as_dict() if self.calibration else None,
                    "changed_since_calibration": self.changed_since_calibration}
        tmp = directory / (MANIFEST_FILE + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2))
        tmp.replace(directory / MANIFEST_FILE)


def load(directory: Path) -> ProductIndex | None:
    manifest_path = directory / MANIFEST_FILE
    files = [manifest_path, directory / INDEX_FILE, directory / HASHES_FILE]
    if not all(f.exists() for f in files):
        return None
    manifest = json.loads(manifest_path.read_text())
    if (manifest.get("format"), manifest.get("model"), manifest.get("dimension")) != (FORMAT_VERSION, MODEL_NAME,
                                                                                       DIMENSION):
        return None
    lexical = LexicalIndex.load(directory / LEXICAL_DIR)
    if lexical is None:
        return None
    stored = np.load(directory / HASHES_FILE)
    index = ProductIndex(DenseIndex.load(directory / INDEX_FILE), lexical,
                         dict(zip(stored["ids"].tolist(), stored["hashes"].tolist(), strict=True)),
                         Calibration.of(manifest.get("calibration")), int(manifest.get("changed_since_calibration", 0)))
    if index.fingerprint != manifest.get("fingerprint") or index.size != len(index.hashes):
        log.warning("search index at %s is inconsistent; rebuilding it", directory)
        return None
    return index


def ensure(session: Session, embedder: Embedder, directory: Path,
           progress: bool | BuildProgress = False) -> ProductIndex:
    """The persisted index, brought up to date with the catalog (built only when missing)."""
    with _reporting(progress) as steps:
        steps.step("reading the catalog")
        texts = catalog_texts(session)
        steps.step("loading the index")
        existing = load(directory)
        if existing is None:
            fresh = ProductIndex.build(texts, embedder, progress=steps)
            steps.step("saving the index")
            fresh.save(directory)
            return fresh
        report = existing.sync(texts, embedder, progress=steps)
        if report.touched:
            log.info("search index synced: %s", report)
            steps.step("saving the index")
            existing.save(directory)
        return existing
