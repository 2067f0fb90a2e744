"""Shopper messages held while Rasa is unreachable or slow: the queue (``queue``, table in ``tables``) and the
replay that sends them once Rasa is back (``replay``)."""
