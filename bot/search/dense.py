"""Product vectors in FAISS, keyed by product id and updated in place.

Up to ``ANN_THRESHOLD`` products the index is exact (``IndexFlatIP``). Above it, an inverted-file
index (``IndexIVFFlat``) scans only the ``nprobe`` closest of ``nlist`` clusters. IVF rather than
HNSW because a catalog changes: FAISS's HNSW cannot remove vectors, IVF removes and adds them
(``remove_ids``/``add_with_ids``), so a changed product never forces a rebuild. The threshold
and ``nprobe`` come from ``python -m bot bench ann`` (docs/benchmarks.md, "Search at scale").

Filters are applied inside the search with an id bitmap (``IDSelectorBitmap``). With IVF a
selective filter can leave fewer than ``k`` allowed products in the probed clusters; the search
then scores the allowed products exactly, so ``k`` results come back whenever ``k`` match.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

ANN_THRESHOLD = 100_000
NPROBE = 64
TRAINING_POINTS_PER_CLUSTER = 64


def nlist_for(count: int) -> int:
    return int(min(16384, max(64, 2 ** round(math.log2(2 * math.sqrt(max(count, 1)))))))


def use_one_thread_per_query() -> None:
    """Searches in this process run on one FAISS thread (the process answers one query at a time)."""
    faiss.omp_set_num_threads(1)


def bitmap(mask: np.ndarray) -> np.ndarray:
    """A boolean mask indexed by id, packed for ``IDSelectorBitmap``."""
    return np.packbits(mask.astype(np.uint8), bitorder="little")


@dataclass
class DenseIndex:
    index: faiss.Index
    dimension: int

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, ann_threshold: int = ANN_THRESHOLD,
              nprobe: int = NPROBE) -> DenseIndex:
        dimension = vectors.shape[1]
        if len(ids) <= ann_threshold:
            index: faiss.Index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        else:
            nlist = nlist_for(len(ids))
            ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dimension), dimension, nlist, faiss.METRIC_INNER_PRODUCT)
            sample = min(len(ids), nlist * TRAINING_POINTS_PER_CLUSTER)
            rows = np.random.default_rng(0).choice(len(ids), size=sample, replace=False)
            ivf.cp.max_points_per_centroid = TRAINING_POINTS_PER_CLUSTER
            ivf.train(np.ascontiguousarray(vectors[np.sort(rows)]))
            ivf.nprobe = nprobe
            # reconstruct() and remove_ids() by id. faiss's stubs lack the DirectMap enum.
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
            index = ivf
        dense = cls(index, dimension)
        dense.add(ids, vectors)
        return dense

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @property
    def kind(self) -> str:
        return "ivf" if isinstance(self.index, faiss.IndexIVF) else "flat"

    @property
    def nprobe(self) -> int:
        return int(self.index.nprobe) if isinstance(self.index, faiss.IndexIVF) else 0

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if isinstance(self.index, faiss.IndexIVF):
            self.index.nprobe = value

    @property
    def nlist(self) -> int:
        """Clusters of the IVF index; 0 for the exact one."""
        return int(self.index.nlist) if isinstance(self.index, faiss.IndexIVF) else 0

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> None:
        if len(ids):
            # faiss's Python wrapper also takes an id array; its stubs name only IDSelector
            self.index.remove_ids(np.asarray(ids, dtype=np.int64))  # type: ignore[arg-type]

    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.remove(ids)
        self.add(ids, vectors)

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (ids, cosine scores); ``allowed`` is a boolean mask indexed by product id."""
        if self.size == 0 or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        if allowed is None:
            scores, ids = self.index.search(query, min(k, self.size))
            keep = ids[0] != -1
            return ids[0][keep], scores[0][keep]
        allowed_count = int(allowed.sum())
        if allowed_count == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        k = min(k, allowed_count)
        bits = bitmap(allowed)
        selector = faiss.IDSelectorBitmap(bits.size, faiss.swig_ptr(bits))
        # faiss's stubs omit the keyword arguments SWIG's constructors accept (sel, nprobe)
        if isinstance(self.index, faiss.IndexIVF):
            params: faiss.SearchParameters = faiss.SearchParametersIVF(  # type: ignore[call-arg]
                sel=selector, nprobe=self.index.nprobe)
        else:
            params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
        scores, ids = self.index.search(query, k, params=params)
        keep = ids[0] != -1
        if keep.sum() < k:  # IVF: too few allowed products in the probed clusters
            return self.exact(query[0], np.flatnonzero(allowed), k)
        return ids[0][keep], scores[0][keep]

    def search_many(self, queries: np.ndarray, k: int) -> np.ndarray:
        """Top-``k`` ids of each query row, unfiltered, in one call (-1 pads rows with fewer hits)."""
        if self.size == 0 or k <= 0 or not len(queries):
            return np.full((len(queries), 0), -1, np.int64)
        _, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, self.size))
        return ids

    def exact(self, query: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = self.scores(query, ids)
        known = np.isfinite(scores)
        ids, scores = ids[known], scores[known]
        top = np.argsort(-scores, kind="stable")[:k]
        return ids[top], scores[top]

    def scores(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Exact cosine scores of the given products (-inf for ids not in the index)."""
        out = np.full(len(ids), -np.inf, dtype=np.float32)
        if not len(ids):
            return out
        try:
            vectors = self.index.reconstruct_batch(np.asarray(ids, dtype=np.int64))
            return vectors @ query
        except RuntimeError:  # some id is not indexed: score them one by one
            for i, pid in enumerate(ids):
                with contextlib.suppress(RuntimeError):
                    out[i] = float(self.index.reconstruct(int(pid)) @ query)
            return out

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        return self.index.reconstruct_batch(np.asarray(ids, dtype=np.int64))

    def all_ids(self) -> np.ndarray:
        if isinstance(self.index, faiss.IndexIDMap2):
            return faiss.vector_to_array(self.index.id_map).astype(np.int64)
        if not isinstance(self.index, faiss.IndexIVF) or self.index.invlists is None:
            raise TypeError(f"cannot list the ids of a {type(self.index).__name__}")
        invlists = self.index.invlists
        parts = [faiss.rev_swig_ptr(invlists.get_ids(i), invlists.list_size(i)).copy()
                 for i in range(self.index.nlist) if invlists.list_size(i)]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        faiss.write_index(self.index, str(tmp))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> DenseIndex:
        index = faiss.read_index(str(path))
        if isinstance(index, faiss.IndexIVF):
            index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]  # not in the stubs
        return cls(index, index.d)
