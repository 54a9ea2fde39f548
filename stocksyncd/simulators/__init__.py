"""Faithful simulators of the upstream APIs: real aiohttp servers on 127.0.0.1.

They follow ``shared/api`` in paging, limits, auth expiry and error shapes,
can inject faults, and power the tests, ``stocksyncd demo`` and the benchmarks.
"""
