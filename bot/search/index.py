"""Persisted FAISS index of product vectors, keyed by product id, with a manifest.

The manifest records the model, the dimension and a fingerprint of the catalog texts;
an index whose fingerprint does not match the catalog is stale and is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.catalog.models import Product
from bot.search.embeddings import DIMENSION, MODEL_NAME, Embedder

INDEX_FILE = "products.faiss"
MANIFEST_FILE = "manifest.json"


def catalog_fingerprint(session: Session) -> tuple[str, int]:
    digest = hashlib.sha256()
    count = 0
    for pid, text in _catalog_texts(session):
        digest.update(f"{pid}\x1f{text}\x1e".encode())
        count += 1
    return digest.hexdigest(), count


def _catalog_texts(session: Session) -> list[tuple[int, str]]:
    products = session.scalars(select(Product).order_by(Product.id)).all()
    return [(p.id, p.search_text()) for p in products]


@dataclass
class ProductIndex:
    index: faiss.IndexIDMap2
    fingerprint: str

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def search(self, vector: np.ndarray, k: int, allowed_ids: list[int] | None = None) -> list[tuple[int, float]]:
        """Nearest products by cosine similarity; ``allowed_ids`` restricts retrieval itself."""
        if self.size == 0 or k <= 0:
            return []
        params = None
        if allowed_ids is not None:
            if not allowed_ids:
                return []
            params = faiss.SearchParameters()
            params.sel = faiss.IDSelectorBatch(np.asarray(allowed_ids, dtype=np.int64))
            k = min(k, len(allowed_ids))
        scores, ids = self.index.search(vector.reshape(1, -1), min(k, self.size), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i != -1]


def build(session: Session, embedder: Embedder, progress: bool = False) -> ProductIndex:
    texts = _catalog_texts(session)
    fingerprint, _ = catalog_fingerprint(session)
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(DIMENSION))
    if texts:
        vectors = embedder.encode([t for _, t in texts], progress=progress)
        index.add_with_ids(vectors, np.asarray([pid for pid, _ in texts], dtype=np.int64))
    return ProductIndex(index, fingerprint)


def save(product_index: ProductIndex, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (INDEX_FILE + ".tmp")
    faiss.write_index(product_index.index, str(tmp))
    tmp.replace(directory / INDEX_FILE)
    manifest = {"model": MODEL_NAME, "dimension": DIMENSION, "fingerprint": product_index.fingerprint,
                "count": product_index.size, "index_type": "IndexIDMap2(IndexFlatIP)"}
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))


def load(directory: Path) -> ProductIndex | None:
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.exists() or not (directory / INDEX_FILE).exists():
        return None
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("model") != MODEL_NAME or manifest.get("dimension") != DIMENSION:
        return None
    index = faiss.read_index(str(directory / INDEX_FILE))
    return ProductIndex(index, manifest["fingerprint"])


def ensure(session: Session, embedder: Embedder, directory: Path, progress: bool = False) -> ProductIndex:
    """Load the persisted index, rebuilding it only when it is missing or stale."""
    existing = load(directory)
    fingerprint, _ = catalog_fingerprint(session)
    if existing is not None and existing.fingerprint == fingerprint:
        return existing
    fresh = build(session, embedder, progress=progress)
    save(fresh, directory)
    return fresh
