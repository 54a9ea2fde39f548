"""The Mouser -> InvenTree job: one run walks the next parts after a persistent cursor.

Failure policy, by who is at fault:

* Mouser's quota (``QuotaExhaustedError``): stop calling, leave the cursor on
  the part so it is the first one after the reset; the run is ``aborted``.
* Mouser's answer for one part is garbage or refused (``PayloadError``,
  ``InvalidResponseError``, ``FatalApiError``): an ``error`` entry for that
  part, the cursor moves on.
* Mouser unavailable (5xx, timeouts): the run fails and the part is retried,
  but only ``MAX_PART_ATTEMPTS`` times, so one part can never stall the job.
* Mouser refuses the key, InvenTree unreachable or refusing the token: the
  run fails with the cursor unchanged; nothing about the part is recorded.
* InvenTree refuses a write for one part (400, locked part): an ``error``
  entry, the cursor moves on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from loguru import logger

from stocksyncd.clients.inventree import (
    LONG_LINK_API_VERSION,
    InvenTreeClient,
    Part,
    SupplierPart,
)
from stocksyncd.clients.mouser import MouserClient, MouserPart, next_utc_midnight
from stocksyncd.clients.mouser_quota import MouserQuota
from stocksyncd.clock import Clock
from stocksyncd.config import MouserInvenTreeConfig
from stocksyncd.errors import (
    ApiError,
    AuthError,
    FatalApiError,
    InvalidResponseError,
    NotFoundError,
    PayloadError,
    QuotaExhaustedError,
    RetriableError,
    StockSyncError,
)
from stocksyncd.integrations.base import Change, RunContext, RunResult
from stocksyncd.integrations.mouser_inventree.cursor import cursor_after, rotation
from stocksyncd.integrations.mouser_inventree.diff import (
    Break,
    MouserFields,
    StoredBreak,
    SupplierFields,
    plan_fields,
    plan_price_breaks,
)
from stocksyncd.integrations.mouser_inventree.exclusion import (
    PartInfo,
    metadata_reason,
    status_reason,
)
from stocksyncd.integrations.mouser_inventree.hits import (
    check_creatable,
    hits_message,
    is_na,
    make_hit,
    mark_created,
    summarise_hits,
)
from stocksyncd.integrations.mouser_inventree.note import plan_note
from stocksyncd.integrations.mouser_inventree.review import ReviewBook
from stocksyncd.state.api import StateStore

CURSOR_SCOPE = "mouser-inventree"
MAX_PART_ATTEMPTS = 3  # runs in a row Mouser may be down for one part before it is skipped
MAX_SKIPS_PER_RUN = 200  # excluded parts walked past in one run (bounds InvenTree traffic)
T = TypeVar("T")


class _PartProblem(Exception):
    """This part cannot be synced now; record an ``error`` entry and move on."""


class _MouserDown(Exception):
    """Mouser is unavailable (5xx, timeout): retry the part on the next run."""


class _RunFailure(Exception):
    """The run cannot go on (configuration, key refused, InvenTree down)."""


@dataclass
class _Pass:
    """What syncing parts needs besides the clients: quota, review book, result, mode."""

    quota: MouserQuota
    book: ReviewBook
    result: RunResult
    dry_run: bool


@dataclass
class _Outcome:
    """What syncing one part did."""

    matched: bool = False
    changed: bool = False
    written: bool = False
    state: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


def _quota_key(api_key: str) -> str:
    """The daily quota belongs to the API key; the key itself never goes into the store."""
    return "mouser:" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


def _iso(epoch: float | None) -> str:
    if epoch is None:
        return "an unknown time"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _to_part_info(part: Part) -> PartInfo:
    return PartInfo(part.pk, part.name, part.active, part.purchaseable, part.category)


class MouserInvenTreeJob:
    """Keeps InvenTree's Mouser supplier parts in step with Mouser (``mouser-inventree``)."""

    type = "mouser-inventree"

    def __init__(
        self, name: str, cfg: MouserInvenTreeConfig, *, inventree: InvenTreeClient,
        mouser: MouserClient, clock: Clock, state: StateStore | None = None,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.inventree = inventree
        self.mouser = mouser
        self.clock = clock
        self.state = state  # set by every run; review actions need it between runs
        self.quota_key = _quota_key(cfg.mouser_api_key.get_secret_value())
        self._supplier_checked = False

    async def close(self) -> None:
        """Nothing of our own to release: the runtime owns the sessions."""

    def _quota(self, state: StateStore) -> MouserQuota:
        return MouserQuota(state, self.quota_key, self.cfg.calls_per_minute,
                           self.cfg.calls_per_day, self.clock)

    # -- the run -------------------------------------------------------------------
    async def run(self, ctx: RunContext) -> RunResult:
        """Sync the next ``parts_per_run`` parts after the cursor."""
        self.state = ctx.state
        result = RunResult(integration=self.name, dry_run=ctx.dry_run)
        quota = self._quota(ctx.state)
        book = ReviewBook(ctx.state, self.name, ctx.run_id, ctx.dry_run)
        try:
            await self._run(ctx, result, quota, book)
        except _RunFailure as exc:
            result.status = "failed"
            result.message = str(exc)
            result.errors.append(str(exc))
        finally:
            result.details["mouser_quota_left"] = await quota.left_today()
            if ctx.dry_run:
                result.details["review"] = book.collected
        return result

    async def _run(self, ctx: RunContext, result: RunResult, quota: MouserQuota,
                   book: ReviewBook) -> None:
        if await quota.left_today() <= 0:
            # Known to be used up: do not walk InvenTree just to find that out again.
            result.status = "aborted"
            result.message = (f"Mouser call quota used up; the next part is synced after "
                              f"the reset at {_iso(quota.day_resets_at())}")
            result.details["quota_resets_at"] = quota.day_resets_at()
            return
        self.inventree.clear_cache()
        await self._inventree(self._check_supplier())
        parts = await self._inventree(self._candidates())
        pks = sorted(parts)
        stored = await ctx.state.get_value(CURSOR_SCOPE, self.name)
        cursor = stored if isinstance(stored, int) and not isinstance(stored, bool) else None
        result.details["cursor"] = cursor
        if not pks:
            result.message = "no active, purchasable parts in InvenTree"
            return
        done = 0
        for pk in rotation(pks, cursor):
            if done >= self.cfg.parts_per_run or result.counts.skipped >= MAX_SKIPS_PER_RUN:
                break
            part = parts[pk]
            result.counts.source += 1
            reason = await self._checked_exclusion(part, result, book)
            if reason is None:
                done += 1
                if not await self._one_part(ctx, result, quota, book, part):
                    return  # stopped on this part: the cursor stays on it
            else:
                result.counts.skip(reason)
            nxt = cursor_after(pks, pk)
            if not ctx.dry_run:
                await ctx.state.set_value(CURSOR_SCOPE, self.name, nxt)
            result.details["cursor"] = nxt
        if not result.message:
            result.message = (f"{done} part(s) synced, {result.counts.skipped} skipped; "
                              f"next part {result.details['cursor']}")

    async def _one_part(self, ctx: RunContext, result: RunResult, quota: MouserQuota,
                        book: ReviewBook, part: Part) -> bool:
        """Sync one part; False when the run must stop here (cursor stays on the part)."""
        ctx.log.debug("mouser-inventree: part {pk} {name!r}", pk=part.pk, name=part.name)
        try:
            outcome = await self._sync_part(part, _Pass(quota, book, result, ctx.dry_run))
        except QuotaExhaustedError as exc:
            resets = exc.resets_at
            if resets is not None and resets >= next_utc_midnight(self.clock.time()) - 1:
                # Mouser says the day is gone: remember it so no replica keeps asking.
                resets = await quota.exhausted_until_reset()
            result.status = "aborted"
            result.message = (f"Mouser call quota used up ({exc.detail}); part {part.pk} is "
                              f"retried after the reset at {_iso(resets)}")
            result.details["quota_resets_at"] = resets
            return False
        except _MouserDown as exc:
            return await self._mouser_down(ctx, result, book, part, exc)
        except _PartProblem as exc:
            result.errors.append(f"part {part.pk} {part.name!r}: {exc}")
            await book.set_state(part.pk, part.name, [("error", str(exc), {})])
            await self._forget_attempts(ctx)
            return True
        except NotFoundError:
            result.counts.skip("gone")  # deleted in InvenTree while we looked
            return True
        await self._forget_attempts(ctx)
        result.counts.matched += outcome.matched
        result.counts.changed += outcome.changed
        result.counts.written += outcome.written
        await book.set_state(part.pk, part.name, outcome.state)
        return True

    async def _mouser_down(self, ctx: RunContext, result: RunResult, book: ReviewBook,
                           part: Part, exc: _MouserDown) -> bool:
        """Retry the part on the next run, unless it has failed too often already."""
        key = f"{self.name}:attempts"
        seen = await ctx.state.get_value(CURSOR_SCOPE, key)
        attempts = 1
        if isinstance(seen, dict) and seen.get("pk") == part.pk:
            attempts = int(seen.get("n", 0)) + 1
        if attempts >= MAX_PART_ATTEMPTS:
            message = f"Mouser failed {attempts} times for this part: {exc}"
            result.errors.append(f"part {part.pk} {part.name!r}: {message}")
            await book.set_state(part.pk, part.name, [("error", message, {})])
            await self._forget_attempts(ctx)
            return True
        if not ctx.dry_run:
            await ctx.state.set_value(CURSOR_SCOPE, key, {"pk": part.pk, "n": attempts})
        result.status = "failed"
        result.message = f"Mouser is unavailable: {exc}; part {part.pk} is retried next run"
        result.errors.append(result.message)
        return False

    async def _forget_attempts(self, ctx: RunContext) -> None:
        if not ctx.dry_run and await ctx.state.get_value(CURSOR_SCOPE,
                                                         f"{self.name}:attempts") is not None:
            await ctx.state.delete_value(CURSOR_SCOPE, f"{self.name}:attempts")

    # -- InvenTree reads -------------------------------------------------------------
    async def _inventree(self, call: Awaitable[T]) -> T:
        """Run an InvenTree call whose failure ends the run (cursor unchanged)."""
        try:
            return await call
        except (ApiError, PayloadError) as exc:
            raise _RunFailure(f"InvenTree: {exc}") from exc

    async def _check_supplier(self) -> None:
        """The configured supplier must be a supplier company (checked once per object)."""
        if self._supplier_checked:
            return
        pk = self.cfg.mouser_supplier
        try:
            company = await self.inventree.get_company(pk)
        except NotFoundError:
            raise _RunFailure(f"mouser_supplier {pk} does not exist in InvenTree") from None
        if not company.is_supplier:
            raise _RunFailure(f"mouser_supplier {pk} is not a supplier company in InvenTree "
                              f"({company.name!r})")
        self._supplier_checked = True

    async def _candidates(self) -> dict[int, Part]:
        return {p.pk: p async for p in self.inventree.iter_parts(active=True, purchaseable=True)}

    async def _checked_exclusion(self, part: Part, result: RunResult,
                                 book: ReviewBook) -> str | None:
        """The exclusion reason; a part whose data InvenTree cannot give is skipped as "error"."""
        try:
            return await self._exclusion(part)
        except (AuthError, RetriableError) as exc:
            raise _RunFailure(f"InvenTree: {exc}") from exc
        except NotFoundError:
            return "gone"  # deleted while we looked
        except (ApiError, PayloadError) as exc:
            message = f"InvenTree could not tell whether the part is excluded: {exc}"
            result.errors.append(f"part {part.pk} {part.name!r}: {message}")
            await book.set_state(part.pk, part.name, [("error", message, {})])
            return "error"

    async def _exclusion(self, part: Part) -> str | None:
        info = _to_part_info(part)
        reason = status_reason(info)
        if reason is not None:
            return reason
        chain = []
        if part.category is not None:
            categories = await self.inventree.category_and_ancestors(part.category)
            chain = [await self.inventree.category_metadata(c.pk) for c in categories]
        return metadata_reason(await self.inventree.part_metadata(part.pk), chain)

    # -- Mouser calls ----------------------------------------------------------------
    async def _mouser(self, quota: MouserQuota, call: Callable[[], Awaitable[T]]) -> T:
        """One Mouser call: spend quota first, translate failures by whose fault they are."""
        await quota.take()
        try:
            return await call()
        except QuotaExhaustedError:
            raise
        except AuthError as exc:
            raise _RunFailure(f"Mouser refused the API key: {exc}") from exc
        except InvalidResponseError as exc:
            raise _PartProblem(f"Mouser sent an unreadable answer: {exc}") from exc
        except RetriableError as exc:
            raise _MouserDown(str(exc)) from exc
        except (PayloadError, FatalApiError) as exc:
            raise _PartProblem(f"Mouser: {exc}") from exc

    # -- one part -------------------------------------------------------------------
    async def _sync_part(self, part: Part, run: _Pass) -> _Outcome:
        try:
            sps = await self.inventree.supplier_parts(part=part.pk,
                                                      supplier=self.cfg.mouser_supplier)
        except NotFoundError:
            raise
        except (AuthError, RetriableError) as exc:
            raise _RunFailure(f"InvenTree: {exc}") from exc
        except (ApiError, PayloadError) as exc:
            raise _PartProblem(f"InvenTree: {exc}") from exc
        usable = [sp for sp in sps if not is_na(sp.sku)]
        if not usable:
            return await self._search(part, run.quota)
        outcome = _Outcome()
        run.result.counts.target += len(usable)
        for sp in usable:
            await self._sync_supplier_part(part.pk, part.name, sp, run, outcome)
        return outcome

    async def _search(self, part: Part, quota: MouserQuota) -> _Outcome:
        """No Mouser supplier part: search by name and keep the hits for review."""
        name = part.name.strip()
        if len(name) < 3 or len(name) > 40 or not name.isascii():
            raise _PartProblem(
                f"part name {name!r} cannot be searched on Mouser (3-40 ASCII characters)"
            )
        found = await self._mouser(quota, lambda: self.mouser.search_name(name))
        hits = [
            make_hit(mouser_pn=p.mouser_part_number, manufacturer=p.manufacturer,
                     mpn=p.manufacturer_part_number, description=p.description,
                     availability=p.availability, link=p.product_detail_url, na=p.is_na)
            for p in found.parts
        ]
        summary = summarise_hits(name, hits, found.number_of_results, self.cfg.search_link)
        if found.rejected:
            summary["rejected"] = found.rejected[:10]
        return _Outcome(matched=bool(hits), state=[("hits", hits_message(summary), summary)])

    async def _sync_supplier_part(
        self, part_pk: int, part_name: str, sp: SupplierPart, run: _Pass, outcome: _Outcome,
    ) -> None:
        """Look the SKU up and bring note, price breaks and fields in step."""
        mp = await self._mouser(run.quota, lambda: self.mouser.lookup(sp.sku))
        if mp is None:
            outcome.state.append(("unknown_sku", f"Mouser no longer knows SKU {sp.sku}",
                                  {"sku": sp.sku, "supplier_part": sp.pk}))
            return
        outcome.matched = True
        try:
            await self._apply(part_pk, part_name, sp, mp, run=run, outcome=outcome)
        except NotFoundError as exc:
            raise _PartProblem(f"InvenTree: {exc}") from exc
        except (AuthError, RetriableError) as exc:
            raise _RunFailure(f"InvenTree: {exc}") from exc
        except (ApiError, PayloadError) as exc:
            raise _PartProblem(f"InvenTree refused an update of SKU {sp.sku}: {exc}") from exc
        if mp.warnings:
            # What parsed was applied; the rest is for a human to look at.
            run.result.errors.extend(f"SKU {sp.sku}: {w}" for w in mp.warnings)
            more = f" (and {len(mp.warnings) - 1} more)" if len(mp.warnings) > 1 else ""
            outcome.state.append(("error", f"Mouser sent unusable data for SKU {sp.sku}: "
                                  f"{mp.warnings[0]}{more}",
                                  {"sku": sp.sku, "warnings": list(mp.warnings)}))

    async def _apply(
        self, part_pk: int, part_name: str, sp: SupplierPart, mp: MouserPart, *, run: _Pass,
        outcome: _Outcome,
    ) -> None:
        key = f"{part_name}/{sp.sku}"
        ref = str(sp.pk)
        applied = not run.dry_run
        book, result = run.book, run.result
        note = plan_note(sp.note, mp.lifecycle_status)
        link_max = 2000 if await self.inventree.api_version() >= LONG_LINK_API_VERSION else 200
        fields = plan_fields(
            SupplierFields(sp.available, sp.packaging, sp.link),
            MouserFields(mp.in_stock, mp.packaging or None, mp.product_detail_url or None),
            link_max=link_max,
        )
        current = [StoredBreak(b.pk, b.quantity, b.price, b.price_currency)
                   for b in await self.inventree.price_breaks(sp.pk)]
        breaks = plan_price_breaks(
            current, [Break(Decimal(b.quantity), b.price, b.currency) for b in mp.price_breaks]
        )
        if not (note.changed or fields or breaks):
            return
        outcome.changed = True
        patch: dict[str, Any] = {f.api_field: f.value for f in fields}
        if note.changed:
            patch["note"] = note.note or ""
        if applied:
            await self.inventree.update_supplier_part(sp.pk, patch)
            if breaks is not None:
                for pk in breaks.delete:
                    await self.inventree.delete_price_break(pk)
                for b in breaks.create:
                    await self.inventree.create_price_break(sp.pk, b.quantity, b.price,
                                                            b.currency)
            outcome.written = True
        if note.changed:
            result.changes.append(Change(ref, key, "note", note.old_note, note.note, applied))
            await book.event(
                part_pk, part_name, "lifecycle",
                f"lifecycle {note.old_status or '(none)'} -> {note.new_status or '(none)'}",
                {"sku": sp.sku, "supplier_part": sp.pk, "old": note.old_status,
                 "new": note.new_status},
            )
        changed: dict[str, dict[str, str | None]] = {}
        for f in fields:
            result.changes.append(Change(ref, key, f.field, f.old, f.new, applied))
            changed[f.field] = {"old": f.old, "new": f.new}
        if breaks is not None:
            result.changes.append(Change(ref, key, "price_breaks", breaks.old or None,
                                         breaks.new, applied))
            changed["price_breaks"] = {"old": breaks.old or None, "new": breaks.new}
        # Stock moves all the time; only changes worth a look make a review entry.
        if set(changed) - {"availability"}:
            await book.event(part_pk, part_name, "updated",
                             f"updated {', '.join(changed)} of SKU {sp.sku}",
                             {"sku": sp.sku, "supplier_part": sp.pk, "fields": changed})

    # -- review action -----------------------------------------------------------------
    async def create_supplier_part(self, entry_id: int, hit: int) -> str:
        """Create the Mouser supplier part from hit ``hit`` of a ``hits`` entry."""
        state = self.state
        if state is None:
            raise StockSyncError("the job has not run yet, so its results are not available")
        entry = await state.get_review(entry_id)
        if entry is None or entry.integration != self.name:
            raise StockSyncError(f"review entry {entry_id} does not exist")
        try:
            chosen = check_creatable(entry.kind, entry.data, hit)
        except ValueError as exc:
            raise StockSyncError(f"cannot create a supplier part: {exc}") from None
        sku = str(chosen.get("mouser_pn", "")).strip()
        try:
            sp = await self._create(entry.part_pk, sku, chosen)
        except _RunFailure as exc:
            raise StockSyncError(str(exc)) from None
        except (ApiError, PayloadError) as exc:
            raise StockSyncError(f"InvenTree refused the supplier part: {exc}") from None
        await state.update_review(
            entry_id, data=mark_created(entry.data, hit, sp.pk, sku),
            message=f"{entry.message}; created supplier part {sp.pk} (SKU {sku})",
        )
        text = f"created supplier part {sp.pk} (SKU {sku}) for {entry.part_name}"
        return text + await self._fill(state, entry.part_pk, entry.part_name, sp)

    async def _create(self, part_pk: int, sku: str, chosen: dict[str, Any]) -> SupplierPart:
        await self._inventree(self._check_supplier())
        existing = await self.inventree.supplier_parts(supplier=self.cfg.mouser_supplier,
                                                       sku=sku)
        if existing:
            sp = existing[0]
            raise StockSyncError(
                f"SKU {sku} already exists as supplier part {sp.pk} of part {sp.part}"
            )
        mpn = str(chosen.get("mpn") or "").casefold()
        makers = await self.inventree.manufacturer_parts(part=part_pk)
        linked = next((m for m in makers if m.mpn.casefold() == mpn), None)
        return await self.inventree.create_supplier_part(
            part=part_pk, supplier=self.cfg.mouser_supplier, sku=sku,
            manufacturer_part=linked.pk if linked else None,
            link=str(chosen.get("link") or "") or None,
            description=str(chosen.get("description") or "") or None,
        )

    async def _fill(self, state: StateStore, part_pk: int, part_name: str,
                    sp: SupplierPart) -> str:
        """Bring the new supplier part in step at once; it is fine if that must wait."""
        result = RunResult(integration=self.name)
        book = ReviewBook(state, self.name)
        try:
            run = _Pass(self._quota(state), book, result, dry_run=False)
            await self._sync_supplier_part(part_pk, part_name, sp, run, _Outcome())
        except (QuotaExhaustedError, _MouserDown, _PartProblem, _RunFailure) as exc:
            return f"; prices and lifecycle follow with the next sync ({exc})"
        for c in result.changes:  # not part of a run, so the log is the audit trail
            logger.info("{}: supplier part {} {}: {} -> {}", self.name, c.ref, c.field, c.old,
                        c.new)
        return "; prices and lifecycle filled in from Mouser"
