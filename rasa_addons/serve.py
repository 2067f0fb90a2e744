"""``python -m rasa_addons.serve run ...``: Rasa's command line, with ``--auth-token`` from ``SHOP_RASA_TOKEN``,
after the process-wide set-up of our Rasa processes (:func:`set_up`).

A token on the command line is readable by every local user (``ps``, ``/proc/PID/cmdline``); the environment
of a process is readable by its owner only. The stack (devstack/stack.py) starts Rasa this way. Runs on Rasa's
Python 3.10.
"""

from __future__ import annotations

import sys

from rasa_addons import settings


def argv_with_token(argv: list[str], token: str) -> list[str]:
    """``argv`` with ``--auth-token=TOKEN`` added: one argument, because a generated token may start with "-",
    which argparse would take for an option after a separate ``--auth-token``."""
    if not token or any(a == "--auth-token" or a.startswith("--auth-token=") for a in argv):
        return list(argv)
    return [*argv, f"--auth-token={token}"]


def set_up() -> None:
    """What every Rasa process of ours needs before it serves: Rasa's own log lines redacted (emails, phones,
    cards, IBANs) and action-server responses validated with one compiled validator (action_validation.py).
    Rasa started by its own command line (docker-compose, ``rasa train``/``rasa test``) gets both from our
    components when it builds them (rasa_addons/sentiment.py, rasa_addons/escalation.py)."""
    from bot.privacy.redact import install_log_redaction
    from rasa_addons.action_validation import install as install_action_validation

    install_log_redaction()
    install_action_validation()


def main() -> None:
    from rasa.__main__ import main as rasa_main

    set_up()
    sys.argv = ["rasa", *argv_with_token(sys.argv[1:], settings.rasa_token())]
    rasa_main()


if __name__ == "__main__":
    main()
