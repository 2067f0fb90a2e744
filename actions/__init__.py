"""Rasa custom actions: thin translations between Rasa trackers and ``bot`` services."""

import multiprocessing

from sanic import Sanic

from bot import production
from bot.privacy.redact import install_log_redaction

# Sanic (under rasa_sdk) serves from a spawned worker process, but an import before it
# (torch) has already fixed the start method, which Sanic refuses. Set spawn ourselves
# and tell Sanic it is done.
multiprocessing.set_start_method("spawn", force=True)
Sanic.START_METHOD_SET = True

# SHOP_ENV=production: the action server refuses to start with development settings.
try:
    production.check(process="the action server")
except production.ProductionConfigError as exc:
    raise SystemExit(str(exc)) from None

install_log_redaction()  # emails, phones, cards and IBANs never reach the action server's logs
