"""Writes a large set of labelled dialogues for timing ``python -m bot bench escalation`` at scale.

    .venv/bin/python scripts/escalation_scale_set.py OUT.jsonl [--dialogues 5000] [--user-turns 12] [--seed 7]

Each dialogue strings together randomly chosen dialogues of our own splits until it has about
``--user-turns`` shopper messages (the size of real satisfaction-rated sets: 41,552 turns in 3,500
dialogues), and every shopper message gets a random reference, so no two texts are the same and nothing is
parsed or embedded only once for many. The labels are kept, so the scores stay meaningful, but the set is
for timing: use the test split for quality.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.escalation.dialogues import load_split


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--dialogues", type=int, default=5000)
    parser.add_argument("--user-turns", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.dialogues < 1 or args.user_turns < 1:
        parser.error("--dialogues and --user-turns must be at least 1")
    pool = [d for split in ("train", "dev", "test") for d in load_split(split)]
    rng = random.Random(args.seed)
    turns_written = 0
    with args.out.open("w", encoding="utf-8") as out:
        for n in range(args.dialogues):
            turns: list[dict[str, str]] = []
            escalated = False
            while sum(t["role"] == "user" for t in turns) < args.user_turns:
                for turn in rng.choice(pool).turns:
                    if turn.role == "bot":
                        turns.append({"role": "bot", "text": turn.text})
                        continue
                    escalated = escalated or turn.label == "escalate"
                    text = f"{turn.text} (ref {rng.randrange(10**6):06d})"
                    turns.append({"role": "user", "text": text, "label": "escalate" if escalated else "ok"})
            turns_written += sum(t["role"] == "user" for t in turns)
            out.write(json.dumps({"id": f"scale-{n:05d}", "turns": turns}) + "\n")
    print(f"{args.dialogues} dialogues, {turns_written} shopper messages -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
