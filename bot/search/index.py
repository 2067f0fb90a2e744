"""Persisted search indexes of the catalog, keyed by product id, with a manifest.

Dense: FAISS over MiniLM vectors (exact below ``ANN_THRESHOLD`` products, HNSW above).
Lexical: BM25. The manifest records the model, the dimension and a fingerprint of the catalog
texts; an index whose fingerprint does not match the catalog is stale and is rebuilt.
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
from bot.search.lexical import LexicalIndex

INDEX_FILE = "products.faiss"
MANIFEST_FILE = "manifest.json"
LEXICAL_DIR = "bm25"


@dataclass(frozen=True)
class CatalogTexts:
    ids: list[int]
    dense: list[str]
    lexical: list[str]

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for pid, dense, lexical in zip(self.ids, self.dense, self.lexical, strict=True):
            digest.update(f"{pid}\x1f{dense}\x1f{lexical}\x1e".encode())
        return digest.hexdigest()


def catalog_texts(session: Session) -> CatalogTexts:
    products = session.scalars(select(Product).order_by(Product.id)).all()
    return CatalogTexts([p.id for p in products], [p.search_text() for p in products],
                        [p.lexical_text() for p in products])


def catalog_fingerprint(session: Session) -> tuple[str, int]:
    texts = catalog_texts(session)
    return texts.fingerprint, len(texts.ids)


@dataclass
class ProductIndex:
    index: faiss.Index
    lexical: LexicalIndex
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

    def vectors(self, ids: list[int]) -> np.ndarray:
        return np.vstack([self.index.reconstruct(int(i)) for i in ids]) if ids else np.zeros((0, DIMENSION))


def build(session: Session, embedder: Embedder, progress: bool = False) -> ProductIndex:
    texts = catalog_texts(session)
    return build_from_texts(texts, embedder, progress)


def build_from_texts(texts: CatalogTexts, embedder: Embedder, progress: bool = False) -> ProductIndex:
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(DIMENSION))
    if texts.ids:
        vectors = embedder.encode(texts.dense, progress=progress)
        index.add_with_ids(vectors, np.asarray(texts.ids, dtype=np.int64))
    return ProductIndex(index, LexicalIndex.build(texts.ids, texts.lexical), texts.fingerprint)


def save(product_index: ProductIndex, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (INDEX_FILE + ".tmp")
    faiss.write_index(product_index.index, str(tmp))
    tmp.replace(directory / INDEX_FILE)
    product_index.lexical.save(directory / LEXICAL_DIR)
    manifest = {"model": MODEL_NAME, "dimension": DIMENSION, "fingerprint": product_index.fingerprint,
                "count": product_index.size, "index_type": "IndexIDMap2(IndexFlatIP)", "lexical": "bm25s"}
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))


def load(directory: Path) -> ProductIndex | None:
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.exists() or not (directory / INDEX_FILE).exists():
        return None
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("model") != MODEL_NAME or manifest.get("dimension") != DIMENSION:
        return None
    lexical = LexicalIndex.load(directory / LEXICAL_DIR)
    if lexical is None:
        return None
    return ProductIndex(faiss.read_index(str(directory / INDEX_FILE)), lexical, manifest["fingerprint"])


def ensure(session: Session, embedder: Embedder, directory: Path, progress: bool = False) -> ProductIndex:
    """Load the persisted index, rebuilding it only when it is missing or stale."""
    existing = load(directory)
    texts = catalog_texts(session)
    if existing is not None and existing.fingerprint == texts.fingerprint:
        return existing
    fresh = build_from_texts(texts, embedder, progress=progress)
    save(fresh, directory)
    return fresh
