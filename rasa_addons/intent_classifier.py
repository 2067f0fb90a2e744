"""NLU intent classifier: logistic regression over pretrained sentence embeddings and character n-grams,
with out-of-scope detection by similarity to the training examples.

Features (sentence level, from the featurizers before it in ``config.yml``):
- dense: the sentence embedding (``rasa_addons.sentence_embeddings``), unit length;
- sparse: character n-gram counts (``CountVectorsFeaturizer``, ``char_wb``), weighted here by sublinear TF-IDF
  fitted on the training examples and scaled to unit length, times ``sparse_weight``. They make typos
  ("refnd", "jakcet") look like the word; on our held-out sets they add about one point of macro-F1.

The classifier is scikit-learn's multinomial logistic regression. Only its arrays are stored (``.npz``
without pickles, plus a JSON file), and prediction is a matrix product: no pickle is ever loaded from a
model archive, and a parse costs well under a millisecond beyond the features.

Out of scope: a message whose mean cosine similarity to its ``neighbours`` nearest in-scope training
examples is below ``similarity_threshold`` is classified ``out_of_scope`` (whatever the regression says),
as is one the regression itself puts there (the intent has its own training examples). The threshold is
chosen on a dev split (``python -m bot bench nlu --calibrate``; docs/nlu.md). Low
confidence in an in-scope intent is left to Rasa's ``FallbackClassifier`` after this component.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import scipy.sparse
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.exceptions import RasaException
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)

ARRAYS = "classifier.npz"
META = "classifier.json"
# In the parse data: how close the message is to what we trained on, and whether that alone made it out of scope
# (then the intent ranking's first entry is that verdict and the classifier's own ranking follows it).
OUT_OF_SCOPE_CHECK = "out_of_scope_check"


class ClassifierFeatureMismatch(RasaException):
    """The features at prediction time are not the ones the model was trained with."""


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class ShopIntentClassifier(GraphComponent, IntentClassifier):
    """Intent = argmax of a logistic regression; ``out_of_scope`` when far from every in-scope example."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            "C": 20.0,  # inverse regularisation strength of the logistic regression
            "sparse_weight": 1.0,  # weight of the (unit-length) character n-gram block against the embedding
            "class_weight": None,  # or "balanced"
            "max_iter": 3000,
            "out_of_scope_intent": "out_of_scope",
            "similarity_threshold": 0.5,  # below: out of scope; 0 turns the similarity test off
            "neighbours": 3,
            "ranking_length": 10,
            "featurizers": [],  # aliases of the featurizers to read; empty: all
            "random_seed": 42,
        }

    def __init__(self, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
                 state: dict[str, Any] | None = None) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.classes: list[str] = []
        self.dense_weights = np.zeros((0, 0), dtype=np.float32)  # (dense_dim, classes)
        self.sparse_weights = np.zeros((0, 0), dtype=np.float32)  # (sparse_dim, classes)
        self.bias = np.zeros(0, dtype=np.float32)
        self.idf = np.zeros(0, dtype=np.float32)
        self.in_scope = np.zeros((0, 0), dtype=np.float32)  # unit-length embeddings of in-scope examples
        if state:
            self.__dict__.update(state)

    @classmethod
    def create(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> ShopIntentClassifier:
        return cls(config, model_storage, resource)

    @staticmethod
    def required_packages() -> list[str]:
        return ["sklearn", "scipy"]

    # ------------------------------------------------------------------ features

    def _dense(self, message: Message) -> np.ndarray | None:
        _, sentence = message.get_dense_features(TEXT, self.config["featurizers"] or None)
        return None if sentence is None else np.asarray(sentence.features, dtype=np.float32).reshape(-1)

    def _sparse(self, message: Message) -> scipy.sparse.csr_matrix | None:
        _, sentence = message.get_sparse_features(TEXT, self.config["featurizers"] or None)
        return None if sentence is None else scipy.sparse.csr_matrix(sentence.features, dtype=np.float32)

    def _weigh(self, counts: scipy.sparse.csr_matrix) -> scipy.sparse.csr_matrix:
        """Sublinear TF-IDF, unit length, times ``sparse_weight``."""
        weighted = counts.astype(np.float32).tocsr(copy=True)
        weighted.data = 1.0 + np.log(np.maximum(weighted.data, 1.0))
        weighted = weighted.multiply(self.idf[np.newaxis, :]).tocsr()
        norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).reshape(-1))
        scale = float(self.config["sparse_weight"]) / np.maximum(norms, 1e-12)
        return scipy.sparse.csr_matrix(weighted.multiply(scale[:, np.newaxis]), dtype=np.float32)

    # ------------------------------------------------------------------ training

    def train(self, training_data: TrainingData) -> Resource:
        from sklearn.linear_model import LogisticRegression

        examples = [m for m in training_data.intent_examples if m.get(TEXT) and m.get(INTENT)]
        if len({m.get(INTENT) for m in examples}) < 2:
            logger.warning("ShopIntentClassifier: fewer than two intents to train on; it will predict nothing")
            self.persist()
            return self._resource
        dense_rows = [row for row in (self._dense(m) for m in examples) if row is not None]
        if len(dense_rows) != len(examples):
            raise ClassifierFeatureMismatch(
                "ShopIntentClassifier needs dense sentence features for every training example: put "
                "rasa_addons.sentence_embeddings.SentenceEmbeddingFeaturizer before it in config.yml")
        dense = np.vstack(dense_rows).astype(np.float32)
        sparse_rows = [self._sparse(m) for m in examples]
        labels = [str(m.get(INTENT)) for m in examples]
        blocks: list[Any] = [scipy.sparse.csr_matrix(dense)]
        if all(row is not None for row in sparse_rows):
            counts = scipy.sparse.vstack(sparse_rows).tocsr()
            document_frequency = np.bincount(counts.indices, minlength=counts.shape[1]).astype(np.float32)
            self.idf = (np.log((1 + counts.shape[0]) / (1 + document_frequency)) + 1.0).astype(np.float32)
            blocks.append(self._weigh(counts))
        else:
            self.idf = np.zeros(0, dtype=np.float32)
        features = scipy.sparse.hstack(blocks).tocsr()
        model = LogisticRegression(C=float(self.config["C"]), max_iter=int(self.config["max_iter"]),
                                   class_weight=self.config["class_weight"],
                                   random_state=int(self.config["random_seed"]))
        model.fit(features, labels)
        self.classes = [str(c) for c in model.classes_]
        weights = model.coef_.astype(np.float32).T  # (features, classes)
        self.dense_weights = np.ascontiguousarray(weights[:dense.shape[1]])
        self.sparse_weights = np.ascontiguousarray(weights[dense.shape[1]:])
        self.bias = model.intercept_.astype(np.float32)
        oos = self.config["out_of_scope_intent"]
        self.in_scope = np.ascontiguousarray(dense[[label != oos for label in labels]])
        self.persist()
        return self._resource

    # ------------------------------------------------------------------ prediction

    def _check_dimensions(self, dense: np.ndarray, sparse: scipy.sparse.csr_matrix | None) -> None:
        if dense.shape[0] != self.dense_weights.shape[0]:
            raise ClassifierFeatureMismatch(
                f"ShopIntentClassifier was trained on {self.dense_weights.shape[0]}-dimensional sentence "
                f"embeddings but gets {dense.shape[0]}: the encoder changed since training; train the model again")
        if self.idf.size and (sparse is None or sparse.shape[1] != self.idf.size):
            raise ClassifierFeatureMismatch(
                "ShopIntentClassifier was trained with character n-gram features that are missing or of another "
                "size now: the featurizers in config.yml changed since training; train the model again")

    def probabilities(self, message: Message, dense: np.ndarray) -> np.ndarray:
        """The regression's probabilities for ``message`` whose sentence embedding is ``dense``."""
        sparse = self._sparse(message) if self.idf.size else None
        self._check_dimensions(dense, sparse)
        logits = dense @ self.dense_weights + self.bias
        if sparse is not None:
            logits = logits + np.asarray(self._weigh(sparse) @ self.sparse_weights).reshape(-1)
        logits = logits - logits.max()
        exp = np.exp(logits)
        return exp / exp.sum()

    def similarity(self, dense: np.ndarray) -> float:
        """Mean cosine similarity of the embedding ``dense`` to the ``neighbours`` nearest in-scope training
        examples."""
        if not self.in_scope.size:
            return 1.0
        sims = self.in_scope @ dense
        k = max(1, min(int(self.config["neighbours"]), sims.size))
        return float(np.partition(sims, -k)[-k:].mean())

    def process(self, messages: list[Message]) -> list[Message]:
        oos = self.config["out_of_scope_intent"]
        for message in messages:
            if not self.classes or not message.get(TEXT):
                message.set(INTENT, {"name": None, "confidence": 0.0}, add_to_output=True)
                message.set(INTENT_RANKING_KEY, [], add_to_output=True)
                continue
            dense = self._dense(message)
            if dense is None:
                raise ClassifierFeatureMismatch("no sentence embedding for this message: is the featurizer in "
                                                "config.yml?")
            probs = self.probabilities(message, dense)
            similarity = self.similarity(dense)
            order = np.argsort(-probs)
            ranking = [{"name": self.classes[i], "confidence": float(probs[i])} for i in order]
            threshold = float(self.config["similarity_threshold"])
            by_similarity = similarity < threshold and ranking[0]["name"] != oos
            if by_similarity:
                # Far from everything we trained on: out of scope, as sure as it is far.
                confident = min(1.0, max(ranking[0]["confidence"], 0.5 + (threshold - similarity)))
                ranking = [{"name": oos, "confidence": confident}] + [r for r in ranking if r["name"] != oos]
            length = int(self.config["ranking_length"])
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking[:length] if length > 0 else ranking, add_to_output=True)
            message.set(OUT_OF_SCOPE_CHECK, {"similarity": round(similarity, 4), "threshold": threshold,
                                             "by_similarity": by_similarity}, add_to_output=True)
        return messages

    # ------------------------------------------------------------------ persistence

    def persist(self) -> None:
        with self._model_storage.write_to(self._resource) as directory:
            np.savez(directory / ARRAYS, dense_weights=self.dense_weights, sparse_weights=self.sparse_weights,
                     bias=self.bias, idf=self.idf, in_scope=self.in_scope)
            (directory / META).write_text(json.dumps({"classes": self.classes, "format": 1}))

    @classmethod
    def load(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> ShopIntentClassifier:
        try:
            with model_storage.read_from(resource) as directory:
                meta = json.loads((directory / META).read_text())
                with np.load(directory / ARRAYS, allow_pickle=False) as arrays:
                    state = {name: np.array(arrays[name]) for name in arrays.files}
        except (ValueError, FileNotFoundError, OSError) as exc:
            logger.warning(f"ShopIntentClassifier: no trained classifier in the model ({exc}); it predicts nothing")
            return cls.create(config, model_storage, resource, execution_context)
        return cls(config, model_storage, resource, {**state, "classes": list(meta["classes"])})
