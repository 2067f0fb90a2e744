"""Parses many messages with a trained Rasa model in one process (``bench escalation``, ``bench nlu``, the gate).

Run with the Rasa venv from the project root: ``.venv-rasa/bin/python -m rasa_addons.parse_batch MODEL``.
Reads one JSON string (a message) per line on stdin, writes one JSON object per line on stdout, in order:
``{"text", "intent", "confidence", "sentiment", "ranking", "out_of_scope_check", "parse_ms"}``; ``ranking`` is
the intent ranking (name, confidence), ``out_of_scope_check`` what ``rasa_addons.intent_classifier`` decided
about the message's distance from the training data (or null with another classifier), ``parse_ms`` the
wall time of this one parse (the whole NLU pipeline, one message at a time, after one warm-up parse).
Rasa's own logging goes to stderr.

``--batch N`` runs the NLU graph on N messages at a time instead (every component's ``process`` takes a
list; the sentence encoder then embeds a whole batch in one pass): tens of thousands of messages parse in
minutes, not hours. The parse of each message is the same; ``parse_ms`` is then the batch's time divided by
its size (throughput, not the latency one message sees). Each result also has ``embedding``, the message's
sentence embedding as the parse data carries it (float16, base64), or null when the model has none.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from typing import Any


async def parse_all(model: str, texts: list[str]) -> list[dict[str, Any]]:
    from rasa.core.agent import Agent

    agent = Agent.load(model)
    if texts:
        await agent.parse_message(texts[0])  # first parse pays for lazy set-up; not timed
    results = []
    for text in texts:
        started = time.perf_counter()
        parsed = await agent.parse_message(text)
        results.append(_result(text, parsed, (time.perf_counter() - started) * 1000))
    return results


def _result(text: str, parsed: dict[str, Any], elapsed_ms: float) -> dict[str, Any]:
    intent = parsed.get("intent") or {}
    return {"text": text, "intent": intent.get("name"), "confidence": intent.get("confidence"),
            "sentiment": parsed.get("sentiment"),
            "ranking": [{"name": r.get("name"), "confidence": r.get("confidence")}
                        for r in parsed.get("intent_ranking") or []],
            "out_of_scope_check": parsed.get("out_of_scope_check"), "embedding": parsed.get("embedding"),
            "parse_ms": round(elapsed_ms, 3)}


async def parse_batched(model: str, texts: list[str], size: int) -> list[dict[str, Any]]:
    """The NLU graph over ``size`` messages at a time (what ``MessageProcessor`` runs for one message)."""
    from rasa.core.agent import Agent
    from rasa.core.channels.channel import UserMessage
    from rasa.engine.constants import PLACEHOLDER_MESSAGE, PLACEHOLDER_TRACKER
    from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, PREDICTED_CONFIDENCE_KEY
    from rasa.shared.nlu.constants import TEXT as TEXT_KEY

    agent = Agent.load(model)
    processor = agent.processor
    if processor is None:
        raise RuntimeError(f"{model}: no model loaded")
    target = processor.model_metadata.nlu_target
    results: list[dict[str, Any]] = []
    for start in range(0, len(texts), size):
        chunk = texts[start:start + size]
        started = time.perf_counter()
        outputs = processor.graph_runner.run(
            inputs={PLACEHOLDER_MESSAGE: [UserMessage(text) for text in chunk], PLACEHOLDER_TRACKER: None},
            targets=[target])[target]
        per_message = (time.perf_counter() - started) * 1000 / len(chunk)
        for text, message in zip(chunk, outputs, strict=True):
            parsed: dict[str, Any] = {TEXT_KEY: "", INTENT: {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0}}
            parsed.update(message.as_dict(only_output_properties=True))
            results.append(_result(text, parsed, per_message))
    return results


def main(argv: list[str]) -> int:
    batch = 0
    if len(argv) == 3 and argv[0] == "--batch" and argv[1].isdigit() and int(argv[1]) > 0:
        batch, argv = int(argv[1]), argv[2:]
    if len(argv) != 1:
        print("usage: python -m rasa_addons.parse_batch [--batch N] MODEL < texts.jsonl", file=sys.stderr)
        return 2
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    from rasa.utils.tensorflow.environment import setup_tf_environment

    setup_tf_environment()  # TensorFlow's threads as `rasa run` sets them (TF_*_PARALLELISM_THREADS)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    texts = []
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        text = json.loads(line)
        if not isinstance(text, str):
            print(f"line {number}: expected a JSON string", file=sys.stderr)
            return 2
        texts.append(text)
    run = parse_batched(argv[0], texts, batch) if batch else parse_all(argv[0], texts)
    for result in asyncio.run(run):
        sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
