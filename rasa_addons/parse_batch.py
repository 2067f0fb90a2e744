"""Parses many messages with a trained Rasa model in one process (``bench escalation``, ``bench nlu``, the gate).

Run with the Rasa venv from the project root: ``.venv-rasa/bin/python -m rasa_addons.parse_batch MODEL``.
Reads one JSON string (a message) per line on stdin, writes one JSON object per line on stdout, in order:
``{"text", "intent", "confidence", "sentiment", "ranking", "out_of_scope_check", "parse_ms"}``; ``ranking`` is
the intent ranking (name, confidence), ``out_of_scope_check`` what ``rasa_addons.intent_classifier`` decided
about the message's distance from the training data (or null with another classifier), ``parse_ms`` the
wall time of this one parse (the whole NLU pipeline, one message at a time, after one warm-up parse).
Rasa's own logging goes to stderr.
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
        elapsed = (time.perf_counter() - started) * 1000
        intent = parsed.get("intent") or {}
        results.append({"text": text, "intent": intent.get("name"), "confidence": intent.get("confidence"),
                        "sentiment": parsed.get("sentiment"),
                        "ranking": [{"name": r.get("name"), "confidence": r.get("confidence")}
                                    for r in parsed.get("intent_ranking") or []],
                        "out_of_scope_check": parsed.get("out_of_scope_check"),
                        "parse_ms": round(elapsed, 3)})
    return results


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m rasa_addons.parse_batch MODEL < texts.jsonl", file=sys.stderr)
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
    for result in asyncio.run(parse_all(argv[0], texts)):
        sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
