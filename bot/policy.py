"""The shop-policy file: facts and answer templates that a shop owner edits.

Answers are Jinja2 templates rendered in a sandbox with the whole file as context,
so ``{{ returns.window_days }}`` in an answer always agrees with the fact itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from bot.config import get_settings


class PolicyError(ValueError):
    """The policy file is missing something or has a template that does not render."""


@dataclass(frozen=True)
class Button:
    title: str
    payload: str


@dataclass(frozen=True)
class PolicyAnswer:
    text: str
    buttons: list[Button] = field(default_factory=list)


class ShopPolicy:
    def __init__(self, data: dict[str, Any], source: str = "<policy>") -> None:
        if not isinstance(data, dict) or not isinstance(data.get("answers"), dict):
            raise PolicyError(f"{source}: needs a mapping with an 'answers' section")
        self.data = data
        self.source = source
        self._env = SandboxedEnvironment(undefined=StrictUndefined, trim_blocks=False, keep_trailing_newline=False)

    @classmethod
    def load(cls, path: Path) -> ShopPolicy:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise PolicyError(f"policy file not found: {path}") from exc
        except yaml.YAMLError as exc:
            raise PolicyError(f"{path}: not valid YAML: {exc}") from exc
        return cls(data, str(path))

    @property
    def topics(self) -> list[str]:
        return sorted(self.data["answers"])

    def fact(self, dotted: str) -> Any:
        node: Any = self.data
        for key in dotted.split("."):
            node = node[key]
        return node

    def answer(self, topic: str, **extra: Any) -> PolicyAnswer:
        spec = self.data["answers"].get(topic)
        if spec is None:
            raise PolicyError(f"{self.source}: no answer for topic {topic!r}")
        if isinstance(spec, str):
            spec = {"text": spec}
        try:
            text = self._env.from_string(spec["text"]).render(**self.data, **extra)
        except Exception as exc:  # template errors carry the topic so the owner can find them
            raise PolicyError(f"{self.source}: answer {topic!r} does not render: {exc}") from exc
        lines = [line.rstrip() for line in text.strip().splitlines()]
        buttons = [Button(str(b["title"]), str(b["payload"])) for b in spec.get("buttons", [])]
        return PolicyAnswer("\n".join(line for line in lines if line), buttons)


@lru_cache
def get_policy(path: Path | None = None) -> ShopPolicy:
    return ShopPolicy.load(path or get_settings().policy_file)
