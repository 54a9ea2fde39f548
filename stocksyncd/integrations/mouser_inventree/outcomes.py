"""How one step of the Mouser job ended, when it did not simply succeed.

The job turns every failure into one of these, by whose fault it is, and its
run loop decides from them what happens to the part and the cursor.
"""

from __future__ import annotations

from stocksyncd.errors import ApiError, AuthError, PayloadError, RetriableError


class PartProblem(Exception):
    """This part cannot be synced now; record an ``error`` entry and move on."""


class PartRetry(Exception):
    """Mouser or InvenTree failed on this part: retry it next run, a bounded number of times."""


class RunFailure(Exception):
    """The run cannot go on (configuration, key refused, InvenTree down, a proxy refusing)."""


class Halt(Exception):
    """The run stops with the cursor on ``pk`` (already recorded in the result)."""

    def __init__(self, pk: int) -> None:
        super().__init__(pk)
        self.pk = pk


def inventree_failure(exc: RetriableError) -> Exception:
    """InvenTree answered 5xx for one part's data: that part's problem, retried a bounded
    number of times; no answer at all (unreachable, timeout): the run's."""
    if exc.status is not None:
        return PartRetry(f"InvenTree failed for this part: {exc}")
    return RunFailure(f"InvenTree: {exc}")


def part_failure(exc: ApiError | PayloadError, what: str = "InvenTree") -> Exception:
    """An InvenTree failure on one part's data or write: the token refused ends the run,
    5xx is retried (bounded), anything else is that part's error entry."""
    if isinstance(exc, AuthError):
        return RunFailure(f"InvenTree: {exc}")
    if isinstance(exc, RetriableError):
        return inventree_failure(exc)
    return PartProblem(f"{what}: {exc}")


class Stop(Exception):
    """A call limit stops the run; the cursor stays on the part (``resets_at``: when to go on)."""

    def __init__(self, message: str, resets_at: float | None) -> None:
        super().__init__(message)
        self.resets_at = resets_at


__all__ = ["Halt", "PartProblem", "PartRetry", "RunFailure", "Stop", "inventree_failure",
           "part_failure"]
