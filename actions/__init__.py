"""Rasa custom actions: thin translations between Rasa trackers and ``bot`` services."""
