"""Saved conversations as regression tests: what the shopper said, turn by turn, and what the bot must do."""
