"""Custom Rasa graph components, loaded by the Rasa server (``.venv-rasa``, Python 3.10) from ``config.yml``.

Rasa puts its working directory on ``sys.path``, so ``rasa train`` and ``rasa run`` started from the
project root import ``rasa_addons.*`` and, through it, the pure-Python ``bot.sentiment``. Importing this
package changes nothing: the process-wide set-up (log redaction, the compiled validator of action-server
responses) happens in ``rasa_addons.serve.set_up`` and when Rasa builds our components.
"""
