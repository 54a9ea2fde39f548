"""The job's writes to InvenTree, each one through the write-ahead audit.

Every request is stored as ``planned`` before it goes out and settled as
``sent`` or ``refused`` after, so a run cut off at any step leaves every write
it may have made in the audit. A request that timed out stays ``planned``: it
may have reached the server.

Price breaks are swapped so that a failure at any step leaves the old set or
the complete new set, never less: new quantities are created and kept ones
rewritten first; if one of those writes fails, what was done is undone (the
undo is audited too) and the old set stays; rows Mouser dropped are deleted
only once the new set is complete.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from stocksyncd.clients.inventree import InvenTreeClient
from stocksyncd.errors import ApiError, FatalApiError, PayloadError, RetriableError, WriteFenced
from stocksyncd.integrations.base import Change, WriteAhead
from stocksyncd.integrations.mouser_inventree.diff import (
    Break,
    BreakPlan,
    StoredBreak,
    format_break,
)

T = TypeVar("T")
PRICE_FIELD = "price_breaks"


class SwapFailed(Exception):
    """A price-break write failed; ``kept_old`` says whether the old set is back whole."""

    def __init__(self, message: str, *, kept_old: bool, retriable: bool) -> None:
        super().__init__(message)
        self.kept_old = kept_old
        self.retriable = retriable


@dataclass
class Writer:
    """Audited writes of one run (``dry_run``: plan and report, send nothing)."""

    inventree: InvenTreeClient
    audit: WriteAhead
    may_take: float
    dry_run: bool
    changes: list[Change] = field(default_factory=list)  # every write, for the run's result

    async def write(self, changes: Sequence[Change],
                    call: Callable[[], Awaitable[T]]) -> T | None:
        """Plan ``changes`` in the audit, send ``call``, settle; ``WriteFenced`` sends nothing."""
        if self.dry_run:
            for change in changes:
                change.applied = False
                change.status = "planned"
            self.changes.extend(changes)
            return None
        await self.audit.planned(changes, may_take=self.may_take)
        self.changes.extend(changes)  # fenced: neither stored nor sent, so not reported
        try:
            answer = await call()
        except (FatalApiError, PayloadError) as exc:
            # Refused (4xx), or answered with something unreadable after the
            # write: FatalApiError is certain, a bad answer body leaves it open.
            if isinstance(exc, FatalApiError):
                for change in changes:
                    change.applied = False
                await self.audit.settle(changes, "refused", reason=str(exc))
            raise
        for change in changes:
            change.applied = True
        await self.audit.settle(changes, "sent")
        return answer

    async def swap_breaks(self, sp: int, key: str, plan: BreakPlan) -> None:
        """Bring the supplier part's breaks to ``plan``'s new set (see the module doc)."""
        ref = str(sp)
        created: list[tuple[int, Break]] = []
        rewritten: list[tuple[StoredBreak, Break]] = []
        try:
            for new in plan.create:
                row = await self.write(
                    [Change(ref, key, PRICE_FIELD, None, format_break(new))],
                    lambda new=new: self.inventree.create_price_break(  # type: ignore[misc]
                        sp, new.quantity, new.price, new.currency),
                )
                if row is not None:
                    created.append((row.pk, new))
            for old, new in plan.update:
                await self.write(
                    [Change(ref, key, PRICE_FIELD, format_break(old), format_break(new))],
                    lambda old=old, new=new: self.inventree.update_price_break(  # type: ignore[misc]
                        old.pk, new.price, new.currency),
                )
                rewritten.append((old, new))
        except (ApiError, PayloadError) as exc:
            undo = await self._undo(ref, key, created, rewritten)
            kept = "the old prices are kept" if undo is None else (
                f"putting the old prices back failed too ({undo}); the part holds the old "
                "prices and some new ones")
            raise SwapFailed(f"InvenTree refused a price break: {exc}; {kept}",
                             kept_old=undo is None,
                             retriable=isinstance(exc, RetriableError)) from exc
        for old in plan.delete:
            try:
                await self.write([Change(ref, key, PRICE_FIELD, format_break(old), None)],
                                 lambda old=old: self.inventree.delete_price_break(old.pk))  # type: ignore[misc]
            except (ApiError, PayloadError) as exc:
                raise SwapFailed(
                    f"the new prices are in place, but InvenTree refused to delete the old "
                    f"break {format_break(old)}: {exc}",
                    kept_old=False, retriable=isinstance(exc, RetriableError)) from exc

    async def _undo(self, ref: str, key: str, created: list[tuple[int, Break]],
                    rewritten: list[tuple[StoredBreak, Break]]) -> str | None:
        """Delete what was created, rewrite what was changed; None when all of it worked."""
        try:
            for pk, new in reversed(created):
                await self.write([Change(ref, key, PRICE_FIELD, format_break(new), None)],
                                 lambda pk=pk: self.inventree.delete_price_break(pk))  # type: ignore[misc]
            for old, new in reversed(rewritten):
                await self.write(
                    [Change(ref, key, PRICE_FIELD, format_break(new), format_break(old))],
                    lambda old=old: self.inventree.update_price_break(  # type: ignore[misc]
                        old.pk, old.price, old.currency),
                )
        except WriteFenced:
            raise
        except (ApiError, PayloadError) as exc:
            return str(exc)
        return None


__all__ = ["PRICE_FIELD", "SwapFailed", "Writer"]
