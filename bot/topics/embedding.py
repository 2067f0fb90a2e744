"""Message embeddings: the sentence encoder the NLU uses (``bot.nlu.encoder``), loaded once per process."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from bot.nlu.encoder import SentenceEncoder


@lru_cache(maxsize=1)
def encoder() -> SentenceEncoder:
    return SentenceEncoder()


def embed(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length float32 rows, one per text (identical texts are embedded once)."""
    unique = list(dict.fromkeys(texts))
    if not unique:
        return np.zeros((0, encoder().dim), dtype=np.float32)
    vectors = encoder().encode(unique, batch_size=batch_size)
    index = {text: i for i, text in enumerate(unique)}
    return vectors[[index[t] for t in texts]]
