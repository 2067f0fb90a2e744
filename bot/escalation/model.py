"""The escalation model: logistic regression over ``bot.escalation.signals``, with a threshold for any target
false-escalation rate.

Stored as JSON (``escalation_model.json`` beside this module; ``python -m bot escalation train`` writes it):
the signal names, their standardisation, the coefficients, and the **calibration**: the dev dialogues
replayed at a few hundred thresholds, each with the false-escalation rate (satisfied dialogues it would have
handed over), the recall (dissatisfied dialogues it escalates at a labelled message, not before) and the
precision it gives. A target rate then maps to a threshold without retraining (:meth:`EscalationModel.threshold`):

- by default the threshold with the best recall among those within the rate (ties: the higher threshold).
  Escalating too early counts against recall, so this is rarely the lowest threshold the rate allows;
- ``eager``: the lowest threshold within the rate, for shoppers who should be handed over sooner (VIPs).

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

FORMAT = 2
DEFAULT_PATH = Path(__file__).resolve().parent / "escalation_model.json"


class ModelError(ValueError):
    """The model file is missing, malformed, or was made for other signals."""


@dataclass(frozen=True, order=True)
class CalibrationPoint:
    threshold: float
    false_escalation_rate: float
    recall: float
    precision: float


@dataclass(frozen=True)
class EscalationModel:
    signals: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    calibration: tuple[CalibrationPoint, ...]  # the dev dialogues at each threshold, thresholds ascending
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
            raise ModelError("the model has no calibration points")

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

    def threshold(self, rate: float, eager: bool = False) -> float:
        """The threshold for a target false-escalation rate (see the module docstring). Above every score
        (never escalates) when no calibrated threshold stays within ``rate``."""
        if not 0.0 <= rate <= 1.0 or math.isnan(rate):
            raise ValueError(f"a false-escalation rate is between 0 and 1, got {rate!r}")
        within = [p for p in self.calibration if p.false_escalation_rate <= rate + 1e-9]
        if not within:
            return 1.0
        if eager:
            return min(p.threshold for p in within)
        return max(within, key=lambda p: (p.recall, p.threshold)).threshold

    def false_escalation_rate(self, threshold: float) -> float:
        """The false-escalation rate on the calibration dialogues at the nearest calibrated threshold at or
        below ``threshold``."""
        below = [p for p in self.calibration if p.threshold <= threshold]
        return below[-1].false_escalation_rate if below else self.calibration[0].false_escalation_rate

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "signals": list(self.signals), "mean": list(self.mean), "scale": list(self.scale),
                "coef": list(self.coef), "intercept": self.intercept,
                "calibration": [[p.threshold, p.false_escalation_rate, p.recall, p.precision]
                                for p in self.calibration],
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
                       calibration=tuple(sorted(_point(point) for point in data["calibration"])),
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


def _point(raw: Any) -> CalibrationPoint:
    values = [float(v) for v in raw]
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"a calibration point is [threshold, false_escalation_rate, recall, precision], got {raw!r}")
    return CalibrationPoint(*values)


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
