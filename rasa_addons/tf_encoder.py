"""The sentence encoder's forward pass as one TensorFlow graph, for the Rasa venv.

``bot.nlu.encoder.SentenceEncoder`` loads the weights and the tokenizer and runs the model in NumPy. Rasa's
venv pins NumPy 1.23, whose OpenBLAS multiplies the small matrices of one short message about half as fast
as a current one: 19 ms a message against 8 ms for the same graph in TensorFlow (already loaded by Rasa,
one thread as Rasa serves). So Rasa runs the same weights through this graph; the result is the NumPy
encoder's (``tests/rasa/nlu_components_rasa.py`` compares them: cosine > 0.9999).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bot.nlu.encoder import SentenceEncoder


class TFSentenceEncoder:
    """``encode(texts, batch_size) -> float32 (n, dim)``, unit-length rows, like :class:`SentenceEncoder`."""

    def __init__(self, reference: SentenceEncoder) -> None:
        import tensorflow as tf

        self.reference = reference
        self.model_dir = reference.model_dir
        self.dim = reference.dim
        heads, dim, eps = reference.heads, reference.dim, reference.eps
        head_dim = dim // heads
        constant = tf.constant
        word, position, token_type = (constant(reference._word), constant(reference._position),
                                      constant(reference._token_type))
        emb_gamma, emb_beta = (constant(a) for a in reference._emb_ln)
        layers = [{name: constant(getattr(layer, name)) for name in layer.__dataclass_fields__}
                  for layer in reference._layers]

        def norm(x: Any, gamma: Any, beta: Any) -> Any:
            mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
            return (x - mean) * tf.math.rsqrt(variance + eps) * gamma + beta

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.float32)])
        def forward(ids: Any, mask: Any) -> Any:
            n, length = tf.shape(ids)[0], tf.shape(ids)[1]
            x = norm(tf.gather(word, ids) + position[:length] + token_type, emb_gamma, emb_beta)
            bias = ((1.0 - mask) * -1e9)[:, None, None, :]
            for layer in layers:
                qkv = tf.matmul(tf.reshape(x, [-1, dim]), layer["qkv_w"]) + layer["qkv_b"]
                qkv = tf.transpose(tf.reshape(qkv, [n, length, 3, heads, head_dim]), [2, 0, 3, 1, 4])
                scores = tf.matmul(qkv[0], qkv[1], transpose_b=True) * (1.0 / math.sqrt(head_dim)) + bias
                context = tf.reshape(tf.transpose(tf.matmul(tf.nn.softmax(scores, axis=-1), qkv[2]), [0, 2, 1, 3]),
                                     [-1, dim])
                attended = tf.reshape(tf.matmul(context, layer["out_w"]) + layer["out_b"], [n, length, dim])
                x = norm(x + attended, layer["ln1_g"], layer["ln1_b"])
                hidden = tf.nn.gelu(tf.matmul(tf.reshape(x, [-1, dim]), layer["up_w"]) + layer["up_b"],
                                    approximate=False)
                x = norm(x + tf.reshape(tf.matmul(hidden, layer["down_w"]) + layer["down_b"], [n, length, dim]),
                         layer["ln2_g"], layer["ln2_b"])
            pooled = tf.reduce_sum(x * mask[..., None], 1) / tf.maximum(tf.reduce_sum(mask, 1, keepdims=True), 1e-9)
            return tf.math.l2_normalize(pooled, axis=1)

        self._forward = forward
        self._tf = tf

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = self.reference.token_ids(texts)
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            length = max(len(ids[i]) for i in chunk)
            padded = np.zeros((len(chunk), length), dtype=np.int32)
            mask = np.zeros((len(chunk), length), dtype=np.float32)
            for row, i in enumerate(chunk):
                padded[row, :len(ids[i])] = ids[i]
                mask[row, :len(ids[i])] = 1.0
            out[chunk] = self._forward(self._tf.constant(padded), self._tf.constant(mask)).numpy()
        return out
