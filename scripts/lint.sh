#!/usr/bin/env bash
# Python lint: ruff and mypy, run by `make lint` and `make test`. Exits non-zero on the first failing step.
#
# Two Pythons: the gateway, actions and benchmarks run on 3.11 (.venv); the Rasa server runs on 3.10
# (.venv-rasa) and imports rasa_addons/ plus the bot modules docker/rasa.Dockerfile copies (RASA_BOT_MODULES).
# Both mypy passes run from .venv, where mypy and the stub packages are pinned (requirements/app.lock):
# the 3.10 pass uses `--python-version 3.10`, so the standard library is checked as 3.10 has it (typeshed
# is version-gated), while Rasa and TensorFlow, absent from .venv, are typed as Any (pyproject.toml
# overrides). Installing mypy into .venv-rasa instead would add it to the Rasa lock and still find no types
# there: Rasa 3.6, its SQLAlchemy 1.4 and TensorFlow ship none.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

# The bot modules the Rasa process imports (keep in step with the COPY lines of docker/rasa.Dockerfile).
# bot/escalation/training.py is copied with its package but only runs in the app (`python -m bot escalation`).
RASA_BOT_MODULES=(
  bot/__init__.py bot/sentiment.py bot/nlu/__init__.py bot/nlu/encoder.py
  bot/privacy/__init__.py bot/privacy/redact.py
  bot/escalation/__init__.py bot/escalation/decision.py bot/escalation/dialogues.py bot/escalation/episode.py
  bot/escalation/model.py bot/escalation/sentiment_triggers.py bot/escalation/signals.py
)

echo "lint: ruff (py311; rasa_addons/ruff.toml makes rasa_addons py310)"
"$PY" -m ruff check bot actions benchmarks tests rasa_addons scripts
echo "lint: ruff, py310, the bot modules Rasa imports"
"$PY" -m ruff check --target-version py310 "${RASA_BOT_MODULES[@]}"
echo "lint: mypy, Python 3.11 (pyproject.toml [tool.mypy] files)"
"$PY" -m mypy
echo "lint: mypy, Python 3.10, rasa_addons and the bot modules Rasa imports"
# follow-imports=silent: modules reached only through imports (e.g. bot.config from a lazy import) are
# used for types but reported by the 3.11 pass only.
"$PY" -m mypy --python-version 3.10 --follow-imports=silent rasa_addons "${RASA_BOT_MODULES[@]}"
