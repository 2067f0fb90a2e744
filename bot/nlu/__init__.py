"""Understanding shoppers' messages outside Rasa: the sentence encoder the NLU pipeline embeds with, and the
evaluation sets and scores that the NLU benchmark and the console's gate share. Runs on Python 3.10 (the
Rasa venv imports the encoder) and 3.11; it imports neither Rasa nor torch."""
