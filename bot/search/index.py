"""The persisted search index of the catalog: dense (FAISS) and lexical (BM25), keyed by product id.

The manifest records the embedding model, the dimension, the FAISS index kind, a fingerprint of
the catalog texts and the catalog's fusion calibration (``calibration.py``: made at a full build,
and again once a tenth of the catalog has changed). ``ensure`` loads it and brings it in line with
the catalog: products that were added, changed or deleted since (found by a hash of each product's
texts) are embedded and indexed one by one; the index is built from scratch only when none exists or the model changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.catalog.models import Product
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
    def build(cls, texts: CatalogTexts, embedder: Embedder, progress: bool = False) -> ProductIndex:
        ids = np.asarray(texts.ids, dtype=np.int64)
        vectors = embedder.encode(texts.dense, progress=progress) if texts.ids else np.zeros((0, DIMENSION), np.float32)
        dense = DenseIndex.build(ids, vectors)
        lexical = LexicalIndex.build(texts.ids, texts.lexical)
        return cls(dense, lexical, dict(zip(texts.ids, texts.hashes().tolist(), strict=True)),
                   texts.calibrate(dense, lexical, embedder))

    def sync(self, texts: CatalogTexts, embedder: Embedder) -> SyncReport:
        """Apply the catalog's additions, changes and deletions to this index in place."""
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
            self.dense.upsert(ids, embedder.encode(fresh.dense))
            self.lexical.upsert(fresh.ids, fresh.lexical)
        for pid in removed:
            del self.hashes[pid]
        self.hashes.update((pid, current[pid]) for pid in fresh.ids)
        self.changed_since_calibration += len(added) + len(changed) + len(removed)
        stale = self.changed_since_calibration >= RECALIBRATE_SHARE * max(self.size, 1)
        if stale or self.calibration is None:
            calibration = texts.calibrate(self.dense, self.lexical, embedder)
            report.recalibrated = calibration != self.calibration
            self.calibration, self.changed_since_calibration = calibration, 0
        if (self.dense.kind == "flat") == (self.size > ANN_THRESHOLD):
            # The catalog crossed the ANN threshold: re-index the stored vectors (no re-embedding).
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


def ensure(session: Session, embedder: Embedder, directory: Path, progress: bool = False) -> ProductIndex:
    """The persisted index, brought up to date with the catalog (built only when missing)."""
    texts = catalog_texts(session)
    existing = load(directory)
    if existing is None:
        fresh = ProductIndex.build(texts, embedder, progress=progress)
        fresh.save(directory)
        return fresh
    report = existing.sync(texts, embedder)
    if report.touched:
        log.info("search index synced: %s", report)
        existing.save(directory)
    return existing
