"""Benchmarks: each prints measured numbers (``python -m bot bench <name>``; ``make bench`` runs them all).

Not part of the product: nothing in ``bot`` imports this package except the CLI's ``bench`` commands.
"""
