"""Demo data generators: the demo catalog (``catalog``) and demo customers with orders (``orders``).

Used by ``python -m bot setup-data`` and the demo sign-in; a real shop imports its own catalog instead.
"""
