"""The shop-policy file: facts and answer templates that a shop owner edits.

Answers are Jinja2 templates rendered in a sandbox with the whole file as context, so
``{{ returns.window_days }}`` in an answer always agrees with the fact itself. Each answer is also an
entry of the knowledge base (:mod:`bot.knowledge`): a label, the questions it answers and the facts it uses.

:class:`PolicySource` keeps the file current in a running process: every call checks the file (one
``stat``), loads a changed one, and keeps serving the last good version when the new one does not load.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined, Template
from jinja2.sandbox import SandboxedEnvironment

from bot.config import get_settings
from bot.knowledge.asked import NOTHING_ASKED, Asked, AskedExtractor

logger = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Entry:
    """One answer as the knowledge base sees it."""

    topic: str
    label: str  # a short title for a button ("Shipping costs")
    questions: tuple[str, ...]  # ways a shopper asks for it; none: reached by its intent only
    facts: tuple[str, ...]  # dotted names of the facts it uses


def money(value: Any, symbol: str = "$") -> str:
    """``24.95`` -> ``$24.95``; whole amounts without cents (``$50``)."""
    amount = float(value)
    return f"{symbol}{amount:,.0f}" if amount == int(amount) else f"{symbol}{amount:,.2f}"


def join_and(values: Any) -> str:
    """``["a", "b", "c"]`` -> ``a, b and c``."""
    items = [str(v) for v in values]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}" if items else ""


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise PolicyError(f"{what} must be a list of texts")
    return tuple(v.strip() for v in value)


class ShopPolicy:
    def __init__(self, data: dict[str, Any], source: str = "<policy>") -> None:
        if not isinstance(data, dict) or not isinstance(data.get("answers"), dict):
            raise PolicyError(f"{source}: needs a mapping with an 'answers' section")
        macros = data.get("macros", "")
        if not isinstance(macros, str):
            raise PolicyError(f"{source}: 'macros' must be a text of Jinja2 macros")
        self.data = data
        self.source = source
        self._macros = macros
        self._env = SandboxedEnvironment(undefined=StrictUndefined, trim_blocks=False, keep_trailing_newline=False)
        symbol = str(((data.get("shop") or {}).get("currency_symbol")) or "$")
        self._env.filters["money"] = lambda value: money(value, symbol)
        self._env.filters["join_and"] = join_and
        self._templates: dict[str, Template] = {}
        self.entries: tuple[Entry, ...] = tuple(self._entry(topic, spec) for topic, spec in data["answers"].items())

    def _entry(self, topic: Any, spec: Any) -> Entry:
        where = f"{self.source}: answer {topic!r}"
        if isinstance(spec, str):
            return Entry(str(topic), str(topic).replace("_", " ").capitalize(), (), ())
        if not isinstance(spec, dict) or not isinstance(spec.get("text"), str):
            raise PolicyError(f"{where} needs a 'text'")
        label = spec.get("label", str(topic).replace("_", " ").capitalize())
        if not isinstance(label, str) or not label.strip():
            raise PolicyError(f"{where}: 'label' must be a short text")
        try:
            questions = _strings(spec.get("questions"), "'questions'")
            facts = _strings(spec.get("facts"), "'facts'")
        except PolicyError as exc:
            raise PolicyError(f"{where}: {exc}") from None
        for name in facts:
            try:
                self.fact(name)
            except (KeyError, TypeError, IndexError):
                raise PolicyError(f"{where} lists the fact {name!r}, which the file does not have") from None
        buttons = spec.get("buttons", [])
        if not isinstance(buttons, list) or not all(isinstance(b, dict) and "title" in b and "payload" in b
                                                    for b in buttons):
            raise PolicyError(f"{where}: 'buttons' must be a list of title and payload")
        return Entry(str(topic), label.strip(), questions, facts)

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

    def entry(self, topic: str) -> Entry | None:
        return next((e for e in self.entries if e.topic == topic), None)

    @cached_property
    def extractor(self) -> AskedExtractor:
        """Finds what a message names among this version's facts (countries, shipping and payment methods)."""
        return AskedExtractor.for_policy(self.data)

    def fact(self, dotted: str) -> Any:
        node: Any = self.data
        for key in dotted.split("."):
            node = node[key]
        return node

    def _template(self, topic: str, text: str) -> Template:
        if topic not in self._templates:
            self._templates[topic] = self._env.from_string(self._macros + text)
        return self._templates[topic]

    def answer(self, topic: str, asked: Asked = NOTHING_ASKED, **extra: Any) -> PolicyAnswer:
        """The answer for ``topic``, with what the shopper named (``asked``) for the template to use."""
        spec = self.data["answers"].get(topic)
        if spec is None:
            raise PolicyError(f"{self.source}: no answer for topic {topic!r}")
        if isinstance(spec, str):
            spec = {"text": spec}
        try:
            text = self._template(topic, spec["text"]).render(**{**self.data, "asked": asked, **extra})
        except Exception as exc:  # template errors carry the topic so the owner can find them
            raise PolicyError(f"{self.source}: answer {topic!r} does not render: {exc}") from exc
        lines = [line.rstrip() for line in text.strip().splitlines()]
        buttons = [Button(str(b["title"]), str(b["payload"])) for b in spec.get("buttons", [])]
        return PolicyAnswer("\n".join(line for line in lines if line.strip()), buttons)

    def check(self, samples: Sequence[Asked] | None = None) -> None:
        """Renders every answer with each kind of thing a message can name; PolicyError on the first failure."""
        for asked in samples if samples is not None else self.extractor.samples():
            for topic in self.topics:
                self.answer(topic, asked)


class PolicySource:
    """The policy file of a running process, re-read when it changes.

    Every :meth:`current` call compares the file's modification time, size and inode with the loaded
    version's (one ``stat``). A changed file is loaded and checked (:meth:`ShopPolicy.check`); when that
    fails, the error is logged and the last good version keeps answering until the file changes again.
    Only the first load raises.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._policy: ShopPolicy | None = None
        self._signature: tuple[int, int, int] | None = None
        self._error: PolicyError | None = None

    @property
    def error(self) -> PolicyError | None:
        """Why the file on disk is not the version being served (None when it is)."""
        return self._error

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def current(self) -> ShopPolicy:
        signature = self._stat()
        policy = self._policy
        if policy is not None and signature == self._signature:
            return policy
        with self._lock:
            if self._policy is None or signature != self._signature:
                self._reload(signature)
            if self._policy is None:
                assert self._error is not None
                raise self._error
            return self._policy

    def _reload(self, signature: tuple[int, int, int] | None) -> None:
        self._signature = signature
        try:
            policy = ShopPolicy.load(self.path)
            policy.check()
        except PolicyError as exc:
            self._error = exc
            if self._policy is not None:
                logger.error("The policy file was changed but does not load; still answering from the last good "
                             "version. Fix the file and save it again. %s", exc)
            return
        if self._policy is not None:
            logger.info("Policy file reloaded: %s (%d answers)", self.path, len(policy.entries))
        self._policy, self._error = policy, None


@lru_cache
def policy_source(path: Path) -> PolicySource:
    return PolicySource(path)


def get_policy(path: Path | None = None) -> ShopPolicy:
    """The current version of the policy file (re-read when it changed)."""
    return policy_source(path or get_settings().policy_file).current()
