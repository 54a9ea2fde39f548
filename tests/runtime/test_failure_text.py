"""A failed run reports its causes, never "ExceptionGroup: unhandled errors" (issue 15)."""

from __future__ import annotations

import asyncio

from stocksyncd.errors import TransientError
from stocksyncd.integrations.base import RunResult
from stocksyncd.runtime.executor import failure_text, summary_line


def test_an_exception_group_is_opened_up_to_its_failures() -> None:
    cause = TransientError("insales", "GET https://s.myinsales.ru/admin/products.json: "
                                      "could not connect to s.myinsales.ru:443 (connection "
                                      "refused)")
    group = ExceptionGroup("unhandled errors in a TaskGroup",
                           [ExceptionGroup("inner", [cause, ValueError("bad")])])
    text = failure_text(group)
    assert text.startswith("TransientError: insales: GET https://s.myinsales.ru/admin/")
    assert text.endswith("(and 1 more failure)") and "TaskGroup" not in text
    cancelled = BaseExceptionGroup("g", [asyncio.CancelledError(), cause])
    assert failure_text(cancelled) == f"TransientError: {cause}"
    assert failure_text(KeyError()) == "KeyError"


def test_the_summary_line_shows_the_cause_beside_the_message() -> None:
    result = RunResult(integration="ms", status="failed",
                       errors=["moysklad: rate limited (HTTP 429) (GET https://x/y)"],
                       message="a page failed after retries; nothing written")
    line = summary_line(result)
    assert line.endswith("nothing written (moysklad: rate limited (HTTP 429) (GET https://x/y))")
