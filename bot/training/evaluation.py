"""NLU cross-validation with Rasa, reduced to the figures a lead compares."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from bot import PROJECT_ROOT
from bot.training.rasa_model import rasa_executable


def cross_validate(folds: int = 3, out: Path = Path("results/nlu-cv")) -> dict[str, Any]:
    out = out if out.is_absolute() else PROJECT_ROOT / out
    out.mkdir(parents=True, exist_ok=True)
    cmd = [str(rasa_executable()), "test", "nlu", "--nlu", "data/nlu", "--config", "config.yml",
           "--cross-validation", "--folds", str(folds), "--out", str(out), "--no-plot"]
    subprocess.run(cmd, cwd=PROJECT_ROOT, check=True, stdout=subprocess.DEVNULL)
    return summarise(out / "intent_report.json", folds)


def summarise(report_path: Path, folds: int) -> dict[str, Any]:
    report = json.loads(report_path.read_text())
    per_intent = {k: v for k, v in report.items() if isinstance(v, dict) and "f1-score" in v
                  and k not in ("macro avg", "weighted avg", "micro avg")}
    return {
        "benchmark": "nlu_cross_validation",
        "folds": folds,
        "intents": len(per_intent),
        "examples": int(report.get("macro avg", {}).get("support", 0)),
        "accuracy": round(float(report.get("accuracy", report.get("micro avg", {}).get("f1-score", 0.0))), 4),
        "macro_f1": round(float(report["macro avg"]["f1-score"]), 4),
        "weighted_f1": round(float(report["weighted avg"]["f1-score"]), 4),
        "worst_intents": sorted(((k, round(v["f1-score"], 3)) for k, v in per_intent.items()),
                                key=lambda kv: kv[1])[:5],
    }
