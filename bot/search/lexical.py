"""Field-aware BM25 (BM25F) over the product texts, updatable product by product.

A product is indexed as fields (title, brand, category, attributes, description). Each field keeps
its own term counts and lengths; at query time a term's frequency is the weighted sum of its
per-field frequencies, each normalised by that field's length (Robertson and Zaragoza's BM25F):

    tf~ = sum_f  w_f * tf_f / (1 - b_f + b_f * len_f / avglen_f)      score = sum_t idf_t * tf~ / (k1 + tf~)

so "Nike" in the brand field or "boots" in the title counts more than the same word deep in a
description, and a long description no longer drowns a short exact title. idf uses the number of
products with the term in any field (Lucene's formula). Weights are computed from the current
statistics at query time, so adding, changing or removing a product re-tokenises only that product.

Tokens: lower-cased words, Porter-stemmed (Snowball English), Lucene's English stop words removed.
Sizes and units are read as one token, so the many ways a catalog writes them meet: "3/4 in.",
"3/4 inch" and 3/4" are all ``3/4in``; "10 ft", "10-foot" and 10' are ``10ft``; "18V" and "18 volt"
are ``18v``; "2 x 4" and "2x4" are ``2x4``. A hyphenated word ("WH-1000XM4", "T-shirt") also gives its
joined form (``wh1000xm4``, ``tshirt``), so a shopper who types it without the hyphen still finds it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import Stemmer

K1 = 1.2
# Per-field weight and length normalisation (the fields of ``Product.lexical_fields``); a plain string is
# indexed as the field "text".
FIELD_WEIGHTS: dict[str, float] = {"title": 3.0, "brand": 2.0, "category": 2.0, "attributes": 1.5,
                                   "description": 1.0, "text": 1.0}
FIELD_B: dict[str, float] = {"title": 0.75, "brand": 0.75, "category": 0.75, "attributes": 0.75, "description": 0.75,
                             "text": 0.75}
# Lucene's default English stop set: function words only, so "top", "back" or "side" still count.
STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not", "of",
    "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "will", "with",
})
_STEMMER = Stemmer.Stemmer("english")

# Canonical unit of each spelling; a number directly before one of them becomes one token.
UNITS = {
    "in": "in", "inch": "in", "inches": "in", '"': "in", "''": "in",
    "ft": "ft", "foot": "ft", "feet": "ft", "'": "ft",
    "mm": "mm", "cm": "cm", "m": "m", "meter": "m", "meters": "m", "metre": "m", "metres": "m",
    "yd": "yd", "yard": "yd", "yards": "yd",
    "gb": "gb", "gig": "gb", "gigs": "gb", "tb": "tb", "mb": "mb",
    "v": "v", "volt": "v", "volts": "v", "w": "w", "watt": "w", "watts": "w", "mah": "mah", "a": "amp", "amp": "amp",
    "amps": "amp", "hz": "hz", "khz": "khz", "mhz": "mhz", "ghz": "ghz", "mp": "mp", "megapixel": "mp",
    "megapixels": "mp", "oz": "oz", "ounce": "oz", "ounces": "oz", "lb": "lb", "lbs": "lb", "pound": "lb",
    "pounds": "lb", "kg": "kg", "g": "g", "gram": "g", "grams": "g", "ml": "ml", "l": "l", "liter": "l",
    "liters": "l", "litre": "l", "litres": "l", "qt": "qt", "quart": "qt", "gal": "gal", "gallon": "gal",
    "gallons": "gal", "k": "k", "p": "p", "x": "x", "pc": "pc", "pcs": "pc", "piece": "pc", "pieces": "pc",
    "pack": "pk", "pk": "pk", "btu": "btu", "cu": "cu", "sq": "sq", "gauge": "ga", "ga": "ga", "awg": "awg",
}
_NUMBER = r"\d+(?:\.\d+)?(?:/\d+)?"
_UNIT_WORDS = sorted((u for u in UNITS if u[0].isalpha()), key=len, reverse=True)
_MEASURE = re.compile(
    rf"(?<![a-z0-9./])({_NUMBER})(?:\s*-\s*|\s*)({'|'.join(_UNIT_WORDS)})(?![a-z0-9])\.?"
    rf"|(?<![a-z0-9./])({_NUMBER})\s*(''|\"|')(?![a-z])")
_DIMENSION = re.compile(rf"(?<![a-z0-9./])({_NUMBER})\s*x\s*({_NUMBER})(?![a-z0-9])")
_QUOTES = str.maketrans({"\u2033": '"', "\u201d": '"', "\u201c": '"', "\u2019": "'", "\u2032": "'", "\u00d7": "x"})
_TOKEN = re.compile(rf"{_NUMBER}x{_NUMBER}|{_NUMBER}[a-z]*|[a-z0-9]+(?:-[a-z0-9]+)*")
_POSSESSIVE = re.compile(r"(?<=[a-z])'s\b")


def _measure(match: re.Match[str]) -> str:
    number, unit = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
    return f" {number}{UNITS[unit]} "


def tokenize(text: str) -> list[str]:
    lowered = _POSSESSIVE.sub("", text.lower().translate(_QUOTES))
    lowered = _DIMENSION.sub(lambda m: f" {m.group(1)}x{m.group(2)} ", lowered)
    lowered = _MEASURE.sub(_measure, lowered)
    tokens: list[str] = []
    for raw in _TOKEN.findall(lowered):
        parts = raw.split("-")
        for part in parts:
            if part and part not in STOPWORDS:
                tokens.append(part if any(c.isdigit() for c in part) else _STEMMER.stemWord(part))
        if len(parts) > 1:
            tokens.append("".join(parts))  # WH-1000XM4 -> wh1000xm4 and t-shirt -> tshirt too
    return tokens


Document = str | Mapping[str, str]


def _fields_of(document: Document) -> Mapping[str, str]:
    return {"text": document} if isinstance(document, str) else document


@dataclass
class _Field:
    counts: sp.csr_matrix
    by_term: sp.csc_matrix | None = None
    lengths: np.ndarray | None = None

    def prepare(self) -> tuple[sp.csc_matrix, np.ndarray]:
        if self.by_term is None or self.lengths is None:
            self.by_term = self.counts.tocsc()
            self.lengths = np.asarray(self.counts.sum(axis=1)).ravel().astype(np.float32)
        return self.by_term, self.lengths


@dataclass
class LexicalIndex:
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # product id of each row
    fields: dict[str, _Field] = field(default_factory=dict)
    vocabulary: dict[str, int] = field(default_factory=dict)
    _df: np.ndarray | None = None  # products with each term in any field

    @classmethod
    def build(cls, ids: Sequence[int], documents: Sequence[Document]) -> LexicalIndex:
        """``documents``: one per id, a mapping of field name to text (see ``FIELD_WEIGHTS``) or a plain string."""
        index = cls()
        index.upsert(ids, documents)
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

    def upsert(self, ids: Sequence[int], documents: Sequence[Document]) -> None:
        """Add products, or replace the texts of products already indexed."""
        self.remove(ids)
        if not ids:
            return
        docs = [_fields_of(d) for d in documents]
        names = set(self.fields) | {name for d in docs for name in d}
        rows = {name: self._rows([d.get(name, "") for d in docs]) for name in sorted(names)}
        width = len(self.vocabulary)
        for name, new in rows.items():
            old = self.fields[name].counts if name in self.fields else sp.csr_matrix((self.size, width),
                                                                                     dtype=np.float32)
            old.resize((old.shape[0], width))
            new.resize((new.shape[0], width))
            self.fields[name] = _Field(sp.vstack([old, new], format="csr"))
        self.ids = np.concatenate([self.ids, np.asarray(ids, dtype=np.int64)])
        self._df = None

    def remove(self, ids: Sequence[int]) -> None:
        if not len(ids) or not self.size:
            return
        keep = ~np.isin(self.ids, np.asarray(ids, dtype=np.int64))
        if keep.all():
            return
        self.fields = {name: _Field(f.counts[keep]) for name, f in self.fields.items()}
        self.ids = self.ids[keep]
        self._df = None

    def document_frequencies(self) -> np.ndarray:
        if self._df is None:
            present = sum((f.counts > 0).astype(np.int32) for f in self.fields.values())
            self._df = (np.asarray((present > 0).sum(axis=0)).ravel() if self.fields
                        else np.zeros(len(self.vocabulary), np.int64))
        return self._df

    def idf(self, df: int | np.ndarray) -> float | np.ndarray:
        return np.log1p((self.size - df + 0.5) / (df + 0.5))

    def query_terms(self, query: str) -> list[tuple[str, float, bool]]:
        """Each distinct query token with its idf and whether any product has it (idf of df 0 if none)."""
        df = self.document_frequencies()
        terms = []
        for token in dict.fromkeys(tokenize(query)):
            column = self.vocabulary.get(token, -1)
            count = int(df[column]) if 0 <= column < df.size else 0
            terms.append((token, float(self.idf(count)), count > 0))
        return terms

    def search(self, query: str, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(product ids, BM25F scores) of every product matching at least one query term.

        ``allowed`` is a boolean mask indexed by product id; products outside it are skipped.
        """
        terms = [self.vocabulary[t] for t in dict.fromkeys(tokenize(query)) if t in self.vocabulary]
        if not terms or not self.size:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        n = self.size
        prepared = []
        for name, f in self.fields.items():
            by_term, lengths = f.prepare()
            b = FIELD_B.get(name, 0.75)
            norm = FIELD_WEIGHTS.get(name, 1.0) / (1 - b + b * lengths / max(float(lengths.mean()), 1e-9))
            prepared.append((by_term, norm))
        scores = np.zeros(n, dtype=np.float32)
        tf = np.zeros(n, dtype=np.float32)
        for term in terms:
            tf[:] = 0.0
            for by_term, norm in prepared:
                start, end = by_term.indptr[term], by_term.indptr[term + 1]
                if start == end:
                    continue
                rows = by_term.indices[start:end]
                tf[rows] += by_term.data[start:end] * norm[rows]
            rows = np.flatnonzero(tf)
            if rows.size:
                scores[rows] += self.idf(rows.size) * tf[rows] / (K1 + tf[rows])
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
        for name, f in self.fields.items():
            sp.save_npz(directory / f"field-{name}.npz", f.counts)
        (directory / "vocabulary.json").write_text(json.dumps({"fields": sorted(self.fields),
                                                               "terms": self.vocabulary}))

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex | None:
        meta_path = directory / "vocabulary.json"
        if not (directory / "ids.npy").exists() or not meta_path.exists():
            return None
        meta = json.loads(meta_path.read_text())
        if not isinstance(meta, dict) or "fields" not in meta:
            return None  # an index from before fields: rebuilt
        files = {name: directory / f"field-{name}.npz" for name in meta["fields"]}
        if not all(path.exists() for path in files.values()):
            return None
        fields = {name: _Field(sp.load_npz(path).tocsr().astype(np.float32)) for name, path in files.items()}
        return cls(np.load(directory / "ids.npy"), fields, meta["terms"])
