"""Parsing many messages with a trained Rasa model in one subprocess of the Rasa venv
(``rasa_addons.parse_batch``): the NLU benchmark, the console's evaluation and the escalation benchmark."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bot import PROJECT_ROOT


def rasa_python() -> Path:
    """Python of the Rasa venv (``RASA_PYTHON``, else the one beside ``RASA_BIN``)."""
    from bot.config import get_settings

    return get_settings().rasa_python_path


def parse_batch(texts: Iterable[str], model: Path, timeout: float = 900.0,
                batch: int = 0) -> dict[str, dict[str, Any]]:
    """Rasa's parse of each distinct text: ``{text: {"intent", "confidence", "ranking", "out_of_scope_check",
    "sentiment", "embedding", "parse_ms"}}``. Serving's thread settings apply (one thread per library), so
    ``parse_ms`` is what one message costs a serving Rasa. ``batch``: run the NLU graph on that many messages
    at a time, on every core (much faster for many messages; ``parse_ms`` is then a share of the batch's time)."""
    unique = list(dict.fromkeys(texts))
    if not model.exists():
        raise FileNotFoundError(f"no trained Rasa model at {model}: run `python -m bot model ensure` first")
    # one thread per library, as serving runs (parse_ms is what a serving Rasa pays); batches use every core
    threads = str(os.cpu_count() or 1) if batch > 0 else "1"
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "OMP_NUM_THREADS": threads,
           "OPENBLAS_NUM_THREADS": threads, "TF_INTRA_OP_PARALLELISM_THREADS": threads,
           "TF_INTER_OP_PARALLELISM_THREADS": "1"}
    options = ["--batch", str(batch)] if batch > 0 else []
    done = subprocess.run([str(rasa_python()), "-m", "rasa_addons.parse_batch", *options, str(model)],
                          input="".join(json.dumps(t) + "\n" for t in unique), capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=timeout, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"rasa_addons.parse_batch failed ({done.returncode}): {done.stderr[-2000:]}")
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if len(results) != len(unique):
        raise RuntimeError(f"rasa_addons.parse_batch returned {len(results)} parses for {len(unique)} texts")
    return {r["text"]: r for r in results}
