"""Parses many messages with a trained Rasa model in one process (for ``python -m bot bench escalation``).

Run with the Rasa venv from the project root: ``.venv-rasa/bin/python -m rasa_addons.parse_batch MODEL``.
Reads one JSON string (a message) per line on stdin, writes one JSON object per line on stdout, in order:
``{"text", "intent", "confidence", "sentiment"}``. Rasa's own logging goes to stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from typing import Any


async def parse_all(model: str, texts: list[str]) -> list[dict[str, Any]]:
    from rasa.core.agent import Agent

    agent = Agent.load(model)
    results = []
    for text in texts:
        parsed = await agent.parse_message(text)
        intent = parsed.get("intent") or {}
        results.append({"text": text, "intent": intent.get("name"), "confidence": intent.get("confidence"),
                        "sentiment": parsed.get("sentiment")})
    return results


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m rasa_addons.parse_batch MODEL < texts.jsonl", file=sys.stderr)
        return 2
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
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
