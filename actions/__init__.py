"""Rasa custom actions: thin translations between Rasa trackers and ``bot`` services.

Importing them changes nothing process-wide; the action server's entry point does its set-up
(``actions.server.set_up``).
"""
