"""Trains the Rasa model only when its inputs changed, using a fingerprint of those inputs."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from bot import PROJECT_ROOT
from bot.config import get_settings

TRAINING_INPUTS = ("config.yml", "domain.yml", "data/nlu", "data/stories", "data/rules", "requirements/rasa.lock",
                   "requirements/rasa-nodeps.txt", "rasa_addons", "bot/nlu")  # our components are part of the model
MODEL_NAME = "shop"


def rasa_executable() -> Path:
    """Rasa's command line (``RASA_BIN``)."""
    return get_settings().rasa_bin


def rasa_env() -> dict[str, str]:
    """Environment of a Rasa subprocess: our custom components importable, no telemetry, the shared cache."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("RASA_TELEMETRY_ENABLED", "false")
    env.setdefault("RASA_CACHE_DIRECTORY", str(PROJECT_ROOT / ".rasa" / "cache"))
    return env


def model_dir() -> Path:
    """Where the model archive and its fingerprint go (``SHOP_RASA_MODEL_DIR``)."""
    return get_settings().rasa_model_dir


def _generated(relative: Path) -> bool:
    """Caches that tools write beside the sources (``__pycache__``, ``.ruff_cache``, ``.mypy_cache``): not inputs."""
    return any(part == "__pycache__" or part.startswith(".") for part in relative.parts)


def fingerprint(root: Path = PROJECT_ROOT) -> str:
    digest = hashlib.sha256()
    for name in TRAINING_INPUTS:
        path = root / name
        files = (sorted(p for p in path.rglob("*") if p.is_file() and not _generated(p.relative_to(path)))
                 if path.is_dir() else [path])
        for file in files:
            if file.exists():
                digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def model_path() -> Path:
    return model_dir() / f"{MODEL_NAME}.tar.gz"


def is_current() -> bool:
    stamp = model_dir() / "fingerprint.txt"
    return model_path().exists() and stamp.exists() and stamp.read_text().strip() == fingerprint()


def train(force: bool = False) -> bool:
    """Train when needed; returns True when a new model was trained."""
    if not force and is_current():
        return False
    out = model_dir()
    out.mkdir(parents=True, exist_ok=True)
    expected = fingerprint()
    cmd = [str(rasa_executable()), "train", "--fixed-model-name", MODEL_NAME, "--out", str(out),
           "--config", "config.yml", "--domain", "domain.yml", "--data", "data/nlu", "data/stories", "data/rules"]
    print(f"training the Rasa model ({' '.join(cmd[1:3])}) ...", file=sys.stderr, flush=True)
    subprocess.run(cmd, cwd=PROJECT_ROOT, check=True, env=rasa_env())
    (out / "fingerprint.txt").write_text(expected + "\n")
    return True
