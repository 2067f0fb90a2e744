"""Where a console training reads its inputs and writes its versioned models.

``root`` holds ``config.yml``, ``domain.yml``, ``data/{nlu,stories,rules}`` and the held-out test set
``tests/nlu_test.yml`` (the repository itself unless ``SHOP_TRAINING_ROOT`` says otherwise; tests point it
at a copy). Version ``N`` lives in ``models/rasa/versions/vN/``: the archive ``shop-vN.tar.gz``, the
training log, and one evaluation folder per test-set fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.config import Settings

MODEL_PREFIX = "shop-v"


@dataclass(frozen=True)
class Workspace:
    root: Path
    versions_dir: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> Workspace:
        return cls(root=Path(settings.training_root), versions_dir=Path(settings.models_dir) / "rasa" / "versions")

    @property
    def config(self) -> Path:
        return self.root / "config.yml"

    @property
    def domain(self) -> Path:
        return self.root / "domain.yml"

    @property
    def data_dirs(self) -> list[Path]:
        return [self.root / "data" / name for name in ("nlu", "stories", "rules")]

    @property
    def test_set(self) -> Path:
        return self.root / "tests" / "nlu_test.yml"

    @property
    def held_out_sets(self) -> list[Path]:
        """Every set a model is scored on (``bot.nlu.evaluation_sets``): the test set first, then the informal
        set and the off-topic set where the root has them."""
        extra = [self.root / "tests" / name for name in ("nlu_informal.yml", "offtopic.yml")]
        return [self.test_set, *(p for p in extra if p.exists())]

    def version_dir(self, version: int) -> Path:
        return self.versions_dir / f"v{version}"

    def archive(self, version: int) -> Path:
        return self.version_dir(version) / f"{MODEL_PREFIX}{version}.tar.gz"

    def evaluation_dir(self, version: int, test_fingerprint: str) -> Path:
        return self.version_dir(version) / f"eval-{test_fingerprint[:12]}"
