"""The escalation model: logistic regression over ``bot.escalation.signals``, with a threshold for any target
false-escalation rate.

Stored as JSON (``escalation_model.json`` beside this module; ``python -m bot escalation train`` writes it):
the signal names, their standardisation, the coefficients, and the **calibration**: the highest score that
each satisfied calibration dialogue reached at any message. The share of those maxima at or above a
threshold is the false-escalation rate the threshold gives (on the calibration dialogues), so a target rate
maps to a threshold without retraining (:meth:`EscalationModel.threshold`).

Scoring is NumPy-free arithmetic over a few dozen numbers: the Rasa policy runs it on every message.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.escalation.signals import SIGNALS

FORMAT = 1
DEFAULT_PATH = Path(__file__).resolve().parent / "escalation_model.json"


class ModelError(ValueError):
    """The model file is missing, malformed, or was made for other signals."""


@dataclass(frozen=True)
class EscalationModel:
    signals: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    calibration: tuple[float, ...]  # per satisfied calibration dialogue: its highest score, sorted descending
    info: Mapping[str, Any] = field(default_factory=dict)  # how it was trained (data, sizes, scores)

    def __post_init__(self) -> None:
        n = len(self.signals)
        if not (len(self.mean) == len(self.scale) == len(self.coef) == n):
            raise ModelError(f"the model has {n} signals but {len(self.mean)}/{len(self.scale)}/{len(self.coef)} "
                             "means/scales/coefficients")
        if tuple(self.signals) != SIGNALS:
            missing = sorted(set(SIGNALS) - set(self.signals))
            extra = sorted(set(self.signals) - set(SIGNALS))
            raise ModelError(f"the model was trained on other signals (missing {missing}, unknown {extra}); "
                             "retrain it: python -m bot escalation train")
        if not self.calibration:
            raise ModelError("the model has no calibration dialogues")

    def _terms(self, values: Sequence[float]) -> list[float]:
        return [c * (v - m) / s for v, m, s, c in zip(values, self.mean, self.scale, self.coef, strict=True)]

    def score(self, values: Sequence[float]) -> float:
        """Probability-like score in 0..1 that a person should take over at this message."""
        z = self.intercept + sum(self._terms(values))
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def contributions(self, values: Sequence[float]) -> list[tuple[str, float]]:
        """Each signal's push towards escalating (log-odds against an average message), largest first."""
        pairs = list(zip(self.signals, self._terms(values), strict=True))
        return sorted(pairs, key=lambda pair: -pair[1])

    def threshold(self, rate: float) -> float:
        """The lowest threshold whose false-escalation rate on the calibration dialogues is at most ``rate``:
        halfway between the highest maximum that must stay below it and the next one up."""
        if not 0.0 <= rate <= 1.0 or math.isnan(rate):
            raise ValueError(f"a false-escalation rate is between 0 and 1, got {rate!r}")
        maxima = self.calibration
        allowed = math.floor(rate * len(maxima) + 1e-9)
        if allowed >= len(maxima):
            return 0.0
        below = maxima[allowed]
        above = maxima[allowed - 1] if allowed > 0 else 1.0
        return (below + above) / 2.0

    def false_escalation_rate(self, threshold: float) -> float:
        """The share of calibration dialogues that this threshold would have escalated."""
        return sum(m >= threshold for m in self.calibration) / len(self.calibration)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "signals": list(self.signals), "mean": list(self.mean), "scale": list(self.scale),
                "coef": list(self.coef), "intercept": self.intercept, "calibration": list(self.calibration),
                "info": dict(self.info)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = "<model>") -> EscalationModel:
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ModelError(f"{source}: not an escalation model of format {FORMAT}")
        try:
            def floats(key: str) -> tuple[float, ...]:
                values = tuple(float(v) for v in data[key])
                if not all(math.isfinite(v) for v in values):
                    raise ValueError(f"{key} has a value that is not a finite number")
                return values

            scale = floats("scale")
            if any(s <= 0 for s in scale):
                raise ValueError("a scale is not positive")
            return cls(signals=tuple(str(s) for s in data["signals"]), mean=floats("mean"), scale=scale,
                       coef=floats("coef"), intercept=float(data["intercept"]),
                       calibration=tuple(sorted(floats("calibration"), reverse=True)),
                       info=dict(data.get("info") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{source}: {exc}") from exc

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
        temporary.replace(path)

    @classmethod
    def load(cls, path: Path | None = None) -> EscalationModel:
        path = path or DEFAULT_PATH
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ModelError(f"no escalation model at {path}: python -m bot escalation train") from exc
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"{path}: {exc}") from exc
        return cls.from_json(data, str(path))


_LOADED: dict[Path, tuple[float, EscalationModel]] = {}


def default_model(path: Path | None = None) -> EscalationModel:
    """The model file, loaded once and again whenever it changes on disk (a retrained model is used without
    a restart)."""
    path = path or DEFAULT_PATH
    try:
        stamp = path.stat().st_mtime
    except OSError as exc:
        raise ModelError(f"no escalation model at {path}: python -m bot escalation train") from exc
    cached = _LOADED.get(path)
    if cached is None or cached[0] != stamp:
        _LOADED[path] = (stamp, EscalationModel.load(path))
    return _LOADED[path][1]
