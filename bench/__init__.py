"""Benchmarks: stocksyncd against a sequential reference script and the API lower bound.

Run ``python -m bench`` (see ``bench/run.py`` for options). Nothing here is a test:
no timing is asserted anywhere.
"""
