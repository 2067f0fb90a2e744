"""Training the Rasa model (the Rasa venv is a separate interpreter, called as a subprocess)."""
