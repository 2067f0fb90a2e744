"""Rasa custom actions: thin translations between Rasa trackers and ``bot`` services."""

import multiprocessing

from sanic import Sanic

# Sanic (under rasa_sdk) serves from a spawned worker process, but an import before it
# (torch) has already fixed the start method, which Sanic refuses. Set spawn ourselves
# and tell Sanic it is done.
multiprocessing.set_start_method("spawn", force=True)
Sanic.START_METHOD_SET = True
