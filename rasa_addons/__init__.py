"""Custom Rasa graph components, loaded by the Rasa server (``.venv-rasa``, Python 3.10) from ``config.yml``.

Rasa puts its working directory on ``sys.path``, so ``rasa train`` and ``rasa run`` started from the
project root import ``rasa_addons.*`` and, through it, the pure-Python ``bot.sentiment``.
"""

from rasa_addons.action_validation import install as _install_action_validation

_install_action_validation()  # every Rasa process that loads our components (see action_validation.py)
