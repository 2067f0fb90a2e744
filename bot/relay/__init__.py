"""Shopper messages held while Rasa is unreachable, replayed in order once it is back."""
