"""BM25 over the product texts, updatable product by product.

Term counts are kept per product in a sparse matrix; BM25 weights (Lucene's idf and length
normalisation, k1=1.5, b=0.75) are computed at query time from the current statistics. Adding,
changing or removing a product therefore re-tokenises only that product: idf and the average
length, which every product's score depends on, stay correct without re-indexing the rest.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import Stemmer

K1 = 1.5
B = 0.75
# Lucene's default English stop set: function words only, so "top", "back" or "side" still count.
STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not", "of",
    "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "will", "with",
})
_WORD = re.compile(r"[a-z0-9]+")
_STEMMER = Stemmer.Stemmer("english")


def tokenize(text: str) -> list[str]:
    return _STEMMER.stemWords([w for w in _WORD.findall(text.lower()) if w not in STOPWORDS])


@dataclass
class LexicalIndex:
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # product id of each row
    counts: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0), dtype=np.float32))
    vocabulary: dict[str, int] = field(default_factory=dict)
    _by_term: sp.csc_matrix | None = None
    _lengths: np.ndarray | None = None

    @classmethod
    def build(cls, ids: list[int], texts: list[str]) -> LexicalIndex:
        index = cls()
        index.upsert(ids, texts)
        return index

    @property
    def size(self) -> int:
        return len(self.ids)

    def _rows(self, texts: list[str]) -> sp.csr_matrix:
        indptr, columns, values = [0], [], []
        for text in texts:
            terms, counts = np.unique(np.asarray(
                [self.vocabulary.setdefault(t, len(self.vocabulary)) for t in tokenize(text)], dtype=np.int64),
                return_counts=True)
            columns.append(terms)
            values.append(counts)
            indptr.append(indptr[-1] + len(terms))
        data = np.concatenate(values).astype(np.float32) if values else np.zeros(0, np.float32)
        cols = np.concatenate(columns) if columns else np.zeros(0, np.int64)
        return sp.csr_matrix((data, cols, np.asarray(indptr)), shape=(len(texts), len(self.vocabulary)))

    def upsert(self, ids: list[int], texts: list[str]) -> None:
        """Add products, or replace the text of products already indexed."""
        self.remove(ids)
        if not ids:
            return
        rows = self._rows(texts)
        old = self.counts
        old.resize((old.shape[0], len(self.vocabulary)))
        self.counts = sp.vstack([old, rows], format="csr")
        self.ids = np.concatenate([self.ids, np.asarray(ids, dtype=np.int64)])
        self._by_term = None

    def remove(self, ids: list[int]) -> None:
        if not ids or not self.size:
            return
        keep = ~np.isin(self.ids, np.asarray(ids, dtype=np.int64))
        if keep.all():
            return
        self.counts = self.counts[keep]
        self.ids = self.ids[keep]
        self._by_term = None

    def _prepare(self) -> tuple[sp.csc_matrix, np.ndarray]:
        if self._by_term is None or self._lengths is None:
            self._by_term = self.counts.tocsc()
            self._lengths = np.asarray(self.counts.sum(axis=1)).ravel().astype(np.float32)
        return self._by_term, self._lengths

    def search(self, query: str, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(product ids, BM25 scores) of every product matching at least one query term.

        ``allowed`` is a boolean mask indexed by product id; products outside it are skipped.
        """
        terms = [self.vocabulary[t] for t in dict.fromkeys(tokenize(query)) if t in self.vocabulary]
        if not terms or not self.size:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        by_term, lengths = self._prepare()
        n = self.size
        norm = K1 * (1 - B + B * lengths / max(float(lengths.mean()), 1e-9))
        scores = np.zeros(n, dtype=np.float32)
        for term in terms:
            start, end = by_term.indptr[term], by_term.indptr[term + 1]
            if start == end:
                continue
            rows, tf = by_term.indices[start:end], by_term.data[start:end]
            df = end - start
            idf = np.log1p((n - df + 0.5) / (df + 0.5))
            scores[rows] += idf * tf * (K1 + 1) / (tf + norm[rows])
        hit = np.flatnonzero(scores)
        ids = self.ids[hit]
        if allowed is not None:
            inside = ids < allowed.size
            inside[inside] = allowed[ids[inside]]
            hit, ids = hit[inside], ids[inside]
        return ids, scores[hit]

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "ids.npy", self.ids)
        sp.save_npz(directory / "counts.npz", self.counts)
        (directory / "vocabulary.json").write_text(json.dumps(self.vocabulary))

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex | None:
        files = [directory / "ids.npy", directory / "counts.npz", directory / "vocabulary.json"]
        if not all(f.exists() for f in files):
            return None
        counts = sp.load_npz(files[1]).tocsr().astype(np.float32)
        return cls(np.load(files[0]), counts, json.loads(files[2].read_text()))
