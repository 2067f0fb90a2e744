"""``python -m rasa_addons.serve run ...``: Rasa's command line, with ``--auth-token`` from ``SHOP_RASA_TOKEN``.

A token on the command line is readable by every local user (``ps``, ``/proc/PID/cmdline``); the environment
of a process is readable by its owner only. The stack (bot/devstack.py) starts Rasa this way. Runs on Rasa's
Python 3.10.
"""

from __future__ import annotations

import os
import sys

TOKEN_ENV = "SHOP_RASA_TOKEN"


def argv_with_token(argv: list[str], token: str) -> list[str]:
    """``argv`` with ``--auth-token=TOKEN`` added: one argument, because a generated token may start with "-",
    which argparse would take for an option after a separate ``--auth-token``."""
    if not token or any(a == "--auth-token" or a.startswith("--auth-token=") for a in argv):
        return list(argv)
    return [*argv, f"--auth-token={token}"]


def main() -> None:
    from rasa.__main__ import main as rasa_main

    sys.argv = ["rasa", *argv_with_token(sys.argv[1:], os.environ.get(TOKEN_ENV, "").strip())]
    rasa_main()


if __name__ == "__main__":
    main()
