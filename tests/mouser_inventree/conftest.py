"""The simulated InvenTree + Mouser environment, shared by the job's test modules."""

from __future__ import annotations

from .test_integration import env

__all__ = ["env"]
