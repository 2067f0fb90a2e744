"""BM25 over the same product texts as the dense index (bm25s: sparse-matrix BM25)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

_STEMMER = Stemmer.Stemmer("english")


def _tokens(texts: list[str]) -> list[list[str]]:
    return bm25s.tokenize(texts, stopwords="en", stemmer=_STEMMER, return_ids=False, show_progress=False)


@dataclass
class LexicalIndex:
    ids: np.ndarray  # product id of each BM25 document, in document order
    retriever: bm25s.BM25

    @classmethod
    def build(cls, ids: list[int], texts: list[str]) -> LexicalIndex:
        retriever = bm25s.BM25()
        if texts:
            retriever.index(_tokens(texts), show_progress=False)
        return cls(np.asarray(ids, dtype=np.int64), retriever)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document (aligned with ``ids``); zeros when no term matches."""
        if len(self.ids) == 0:
            return np.zeros(0, dtype=np.float32)
        tokens = _tokens([query])[0]
        if not tokens:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self.retriever.get_scores(tokens), dtype=np.float32)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.retriever.save(str(directory))
        np.save(directory / "ids.npy", self.ids)
        (directory / "lexical.json").write_text(json.dumps({"documents": len(self.ids)}))

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex | None:
        if not (directory / "ids.npy").exists():
            return None
        return cls(np.load(directory / "ids.npy"), bm25s.BM25.load(str(directory)))
