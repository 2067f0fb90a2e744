"""Conversation tests to and from YAML in Rasa's test-story format, so they can be versioned in the repository.

One story per test::

    version: "3.1"
    stories:
    - story: order tracking
      metadata:
        source: agent-inbox:42
        reply_kinds: [text, form_question]
      steps:
      - user: |
          hello
        intent: greet
      - action: action_greet
      - user: |
          where is my order
        intent: track_order
      - action: track_order_form

Rasa's test stories have no place for the kind of reply a turn must get, and Rasa reads no key it does not
know inside a step, so it goes in the story's ``metadata`` (which Rasa accepts on a story and ignores):
``reply_kinds`` holds one entry per user step (``product_cards``, ``form_question``, ``handoff``, ``text``
or null for "not checked"), and ``source`` where the test came from. A user step without ``intent`` is a turn
whose intent is not checked. ``ConversationTest`` -> YAML -> ``ConversationTest`` gives the same test
(user texts are stripped of surrounding white space, as Rasa strips them).

Reading also takes Rasa's own test stories (``tests/test_stories.yml``): entity annotations in a user text
(``[green](color)``, ``[x]{"entity": ...}``) become the plain words, ``action_listen`` steps are skipped, and
without ``reply_kinds`` a turn after which an ``active_loop`` step leaves a form active expects a form question
(other kinds are then not checked). A ``slot_was_set`` step states a value that Rasa's story test takes as
given, but a replay gets from the shop's own data (an order that must exist, an email that must match), and
every later turn depends on it. The same holds for a form that ends (``active_loop: null``): whether it
submits or asks again depends on the values it validates against the shop's data. So the test ends with the
turn of the first ``slot_was_set`` step that sets a slot other than ``requested_slot`` (which a form sets itself
when it asks) or of the first form that ends; that turn's intent is checked, its actions and reply are not.
Our own export writes neither step, so saved tests are checked whole. ``checkpoint`` and ``or`` steps are
refused: a conversation test is one straight conversation.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bot.convtests.spec import ConversationTest, ExpectedTurn, ReplyKind

_ANNOTATION = re.compile(r"\[([^\]\n]+)\](?:\([^)\n]*\)|\{[^}\n]*\})")
_KINDS = {kind.value: kind for kind in ReplyKind}


class ConvTestYamlError(ValueError):
    """The YAML is not a list of conversation test stories (the message says where)."""


class _Block(str):
    """A user text: written as a ``|`` block like Rasa's own stories."""


class _Dumper(yaml.SafeDumper):
    pass


def _block(dumper: yaml.SafeDumper, data: _Block) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style="|")


_Dumper.add_representer(_Block, _block)


def _story(test: ConversationTest) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for turn in test.turns:
        step: dict[str, Any] = {"user": _Block(turn.user.strip())}
        if turn.intent is not None:
            step["intent"] = turn.intent
        steps.append(step)
        steps.extend({"action": action} for action in turn.actions)
    metadata: dict[str, Any] = {"reply_kinds": [t.reply.value if t.reply is not None else None for t in test.turns],
                                "source": test.source}
    return {"story": test.name, "metadata": metadata, "steps": steps}


def dumps(tests: list[ConversationTest]) -> str:
    doc = {"version": "3.1", "stories": [_story(t) for t in tests]}
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=10_000)


def export_file(tests: list[ConversationTest], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(tests), encoding="utf-8")


def _name(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _assumes_values(slots: Any) -> bool:
    """A ``slot_was_set`` step sets more than ``requested_slot`` (which a form sets itself when it asks)."""
    names = [name for item in (slots if isinstance(slots, list) else [slots])
             for name in (item if isinstance(item, dict) else {item: None})]
    return any(name != "requested_slot" for name in names)


def _story_to_test(item: Any, index: int, default_source: str) -> ConversationTest:
    name, where, steps, metadata = _story_parts(item, index)
    turns = _steps_to_turns(steps, where)
    replies = _reply_kinds(metadata, turns, where)
    source = metadata.get("source", default_source)
    if not isinstance(source, str):
        raise ConvTestYamlError(f"{where}: metadata.source must be text")
    return ConversationTest(
        name=name, source=source,
        turns=tuple(ExpectedTurn(user=t["user"], intent=t["intent"], actions=tuple(t["actions"]), reply=reply)
                    for t, reply in zip(turns, replies, strict=True)))


def _story_parts(item: Any, index: int) -> tuple[str, str, list[Any], dict[str, Any]]:
    """(name, where for error messages, steps, metadata) of one story, checked."""
    where = f"story #{index + 1}"
    if not isinstance(item, dict):
        raise ConvTestYamlError(f"{where}: expected a mapping with 'story' and 'steps'")
    name = _name(item.get("story"))
    if name is None:
        raise ConvTestYamlError(f"{where}: 'story' must be a non-empty name")
    where = f"story {name!r}"
    unknown = set(item) - {"story", "steps", "metadata"}
    if unknown:
        raise ConvTestYamlError(f"{where}: unknown keys {sorted(unknown)}")
    steps = item.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ConvTestYamlError(f"{where}: 'steps' must be a non-empty list")
    metadata = item.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ConvTestYamlError(f"{where}: 'metadata' must be a mapping")
    return name, where, steps, metadata


def _user_turn(step: dict[str, Any], at: str) -> dict[str, Any]:
    """The turn a ``user:`` step starts."""
    text = step["user"]
    if not isinstance(text, str) or not text.strip():
        raise ConvTestYamlError(f"{at}: 'user' must be the shopper's text")
    intent = step.get("intent")
    if intent is not None and _name(intent) is None:
        raise ConvTestYamlError(f"{at}: 'intent' must be an intent name")
    extra = set(step) - {"user", "intent", "entities", "metadata"}
    if extra:
        raise ConvTestYamlError(f"{at}: unknown keys {sorted(extra)} in a user step")
    return {"user": _ANNOTATION.sub(r"\1", text).strip(), "intent": _name(intent), "actions": [], "form": False}


def _steps_to_turns(steps: list[Any], where: str) -> list[dict[str, Any]]:
    """The story's turns: user text, intent, actions and whether a form asked (see the module's docstring
    for where a test ends)."""
    turns: list[dict[str, Any]] = []
    for n, step in enumerate(steps, start=1):
        at = f"{where}, step {n}"
        if not isinstance(step, dict):
            raise ConvTestYamlError(f"{at}: expected a mapping such as 'user:' or 'action:'")
        if "user" in step:
            turns.append(_user_turn(step, at))
        elif "action" in step:
            action = _name(step["action"])
            if action is None:
                raise ConvTestYamlError(f"{at}: 'action' must be an action name")
            if not turns:
                raise ConvTestYamlError(f"{at}: action {action!r} comes before the first user message")
            if action != "action_listen":
                turns[-1]["actions"].append(action)
        elif "active_loop" in step:
            if turns and step["active_loop"] is None:  # a form ended: see the module's docstring
                turns[-1].update(actions=[], form=False)
                break
            if turns:
                turns[-1]["form"] = True
        elif "slot_was_set" in step:
            if turns and _assumes_values(step["slot_was_set"]):  # see the module's docstring: the test ends here
                turns[-1].update(actions=[], form=False)
                break
        elif "checkpoint" in step or "or" in step:
            raise ConvTestYamlError(f"{at}: 'checkpoint' and 'or' steps cannot be part of a conversation test")
        else:
            raise ConvTestYamlError(f"{at}: unknown step {sorted(step)}; expected 'user', 'action', "
                                    "'active_loop' or 'slot_was_set'")
    if not turns:
        raise ConvTestYamlError(f"{where}: no user step")
    return turns


def _reply_kinds(metadata: dict[str, Any], turns: list[dict[str, Any]], where: str) -> list[ReplyKind | None]:
    """The expected reply kind of each turn: from ``metadata.reply_kinds``, else a form question where a
    form asked and unchecked (None) elsewhere."""
    kinds = metadata.get("reply_kinds")
    if kinds is None:
        return [ReplyKind.FORM_QUESTION if t["form"] else None for t in turns]
    if not isinstance(kinds, list) or len(kinds) != len(turns):
        raise ConvTestYamlError(f"{where}: metadata.reply_kinds must list one entry per user step "
                                f"({len(turns)}), got {kinds!r}")
    replies: list[ReplyKind | None] = []
    for kind in kinds:
        if kind is not None and kind not in _KINDS:
            raise ConvTestYamlError(f"{where}: unknown reply kind {kind!r}; expected one of "
                                    f"{sorted(_KINDS)} or null")
        replies.append(_KINDS[kind] if kind is not None else None)
    return replies


def loads(text: str, *, source: str = "yaml") -> list[ConversationTest]:
    """The tests of a YAML document; :class:`ConvTestYamlError` naming the story and step that is wrong.
    ``source``: the tests' source when a story's metadata names none."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConvTestYamlError(f"not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("stories"), list):
        raise ConvTestYamlError("expected a mapping with a 'stories:' list (Rasa's test-story format)")
    tests = [_story_to_test(item, i, source) for i, item in enumerate(doc["stories"])]
    seen: set[str] = set()
    for test in tests:
        if test.name in seen:
            raise ConvTestYamlError(f"story {test.name!r} appears twice")
        seen.add(test.name)
    return tests


def import_file(path: Path, *, source: str | None = None) -> list[ConversationTest]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConvTestYamlError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    try:
        return loads(text, source=source or f"yaml:{path.name}")
    except ConvTestYamlError as exc:
        raise ConvTestYamlError(f"{path}: {exc}") from exc
