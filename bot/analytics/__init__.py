"""Analytics of the assistant for support leads (``/admin/analytics``): figures computed from Rasa's
stored events and our ticket rows (``metrics``), read from the stores (``source``), exported as CSV
(``export``)."""
