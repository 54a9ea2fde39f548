"""Notifications through apprise: one message per change of an integration's state.

What counts as a state change, per integration:

* ok -> failed: "run failed" (``run_failed``); the ``failing_after``-th failure in
  a row: "failing N times in a row" (``failing``);
* -> aborted by the zero guard (``zero_guard``);
* failed/aborted -> ok: "recovered" (``recovered``);
* conflicts that the previous run did not have (``new_conflicts``);
* a Mouser part whose lifecycle status changed in this run (``lifecycle``).

A run that only repeats the state (the tenth failure of a one-minute job) sends
nothing; while a problem lasts, a digest ("still failing: 57 more failed runs")
goes out at most once per ``digest_every``. The state lives in the state store
(scope ``notify``), so a restart or another replica taking over does not repeat
a message. Sending happens in the background: a slow or broken destination
never delays a run.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from loguru import logger

from stocksyncd.clock import Clock
from stocksyncd.i18n import _, ngettext, using
from stocksyncd.i18n.formats import fmt_time
from stocksyncd.i18n.summary import run_summary
from stocksyncd.redact import redact, register_secrets

if TYPE_CHECKING:
    from stocksyncd.config import NotifyConfig
    from stocksyncd.integrations.base import RunResult
    from stocksyncd.state.api import StateStore

SCOPE = "notify"
MAX_KEYS_SHOWN = 10
_MIN_SECRET_PART = 6


def url_secrets(url: str) -> list[str]:
    """The parts of an apprise URL that may be credentials, for log redaction.

    Apprise URLs carry tokens in every position (``tgram://<bot token>/<chat>``,
    ``mailto://user:password@host``, ``json://host/path?token=...``): the whole
    URL, its user and password, and every host label, path segment and query
    value long enough to be a token are registered.
    """
    parts = [url]
    try:
        split = urlsplit(url)
    except ValueError:
        return parts
    # The network location whole and in pieces: "<id>:<token>@host" and the
    # Telegram bot token "123456789:AAH..." (which is no host:port at all).
    netloc = split.netloc
    candidates = [netloc, *netloc.replace("@", ":").split(":")]
    candidates += [unquote(p) for p in split.path.split("/")]
    for pair in split.query.split("&"):
        candidates.append(unquote(pair.partition("=")[2]))
    for part in candidates:
        if len(part) >= _MIN_SECRET_PART and any(c.isdigit() for c in part) and part not in (
                "localhost", "127.0.0.1"):
            parts.append(part)
    return parts


def shown_url(url: str) -> str:
    """A notification URL as it may appear anywhere: its scheme only."""
    scheme = url.partition("://")[0] if "://" in url else "?"
    return f"{scheme}://***"


@dataclass
class JobState:
    """What was last told about one integration."""

    state: str = "ok"  # ok | failed | aborted
    streak: int = 0  # runs in a row in ``state`` (failed/aborted)
    streak_told: bool = False  # the "failing N times" message went out
    since: str = ""  # ISO time the state began
    repeats: int = 0  # runs in the state not yet told (for the digest)
    told_at: float = 0.0  # clock time of the last message about the state
    conflicts: list[str] = field(default_factory=list)
    last_error: str = ""


@dataclass
class Message:
    """One notification."""

    event: str  # run_failed | zero_guard | failing | recovered | new_conflicts | lifecycle | digest
    integration: str
    title: str
    body: str


class Notifier:
    """Decides what to tell, and sends it through apprise."""

    def __init__(self, cfg: NotifyConfig, state: StateStore, clock: Clock, *,
                 page_url: str = "") -> None:
        self.cfg = cfg
        self.state = state
        self.clock = clock
        self.page_url = page_url.rstrip("/")
        self.urls = [u.get_secret_value() for u in cfg.urls]
        register_secrets(s for url in self.urls for s in url_secrets(url))
        self._tasks: set[asyncio.Task[bool]] = set()
        self._lock = asyncio.Lock()  # one decision at a time: state is read-modify-write

    @property
    def enabled(self) -> bool:
        """True when there is somewhere to send to."""
        return bool(self.urls)

    async def after_run(self, result: RunResult) -> None:
        """Decide on ``result`` and send in the background; never raises."""
        if not self.enabled or result.dry_run:
            return
        try:
            messages = await self.decide(result)
        except Exception as exc:  # noqa: BLE001 - notifications must never break a run
            logger.warning("notifications: could not judge run {}: {}", result.run_id,
                           redact(str(exc)))
            return
        for message in messages:
            task = asyncio.create_task(self.send(message), name="notify")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def decide(self, result: RunResult) -> list[Message]:
        """The messages ``result`` calls for, with the stored state moved on."""
        async with self._lock:
            raw = await self.state.get_value(SCOPE, result.integration)
            job = JobState(**raw) if isinstance(raw, dict) else JobState()
            with using(self.cfg.language):
                out = self._transition(job, result)
                out += self._conflicts(job, result)
                out += await self._lifecycle(result)
            await self.state.set_value(SCOPE, result.integration, asdict(job))
        return out

    def _transition(self, job: JobState, result: RunResult) -> list[Message]:
        cfg, name, now = self.cfg, result.integration, self.clock.time()
        status = result.status
        reason = (result.errors[0] if result.errors else result.message) or status
        out: list[Message] = []
        if status == "ok":
            if job.state != "ok" and cfg.recovered:
                out.append(self._message(
                    "recovered", name, _("{name}: recovered").format(name=name),
                    ngettext("Back to normal after {n} unsuccessful run (since {since}).",
                             "Back to normal after {n} unsuccessful runs (since {since}).",
                             job.streak).format(n=job.streak, since=self._since(job)),
                    result))
            job.state, job.streak, job.streak_told, job.repeats = "ok", 0, False, 0
            job.since, job.last_error = "", ""
            return out
        if status not in ("failed", "aborted"):
            return out
        if job.state != status:
            # A new state: told at once.
            job.state, job.streak, job.streak_told, job.repeats = status, 0, False, 0
            job.since = (result.started_at.isoformat() if result.started_at
                         else self.clock.now().isoformat())
            job.told_at = now  # repeats are digested from here, told or not
            event = "run_failed" if status == "failed" else "zero_guard"
            if getattr(cfg, event):
                title = (_("{name}: run failed") if status == "failed"
                         else _("{name}: stopped by the zero guard")).format(name=name)
                out.append(self._message(event, name, title, self._what(result), result))
        job.streak += 1
        job.last_error = reason
        if (status == "failed" and cfg.failing and not job.streak_told
                and job.streak >= cfg.failing_after):
            job.streak_told = True
            out.append(self._message(
                "failing", name,
                ngettext("{name}: {n} failed run in a row", "{name}: {n} failed runs in a row",
                         job.streak).format(name=name, n=job.streak),
                _("Every run since {since} failed. Last error: {error}").format(
                    since=self._since(job), error=reason), result))
            job.told_at, job.repeats = now, 0
        elif not out:
            job.repeats += 1
            if now - job.told_at >= cfg.digest_every:
                out.append(self._message(
                    "digest", name, _("{name}: still not working").format(name=name),
                    ngettext("{n} more unsuccessful run since the last message; in this "
                             "state since {since}. Last: {error}",
                             "{n} more unsuccessful runs since the last message; in this "
                             "state since {since}. Last: {error}", job.repeats).format(
                        n=job.repeats, since=self._since(job), error=reason), result))
                job.told_at, job.repeats = now, 0
        return out

    def _conflicts(self, job: JobState, result: RunResult) -> list[Message]:
        if result.status == "failed":
            return []  # a failed run may not have seen both sides: keep what we knew
        known = set(job.conflicts)
        current = sorted(set(result.conflicts))
        job.conflicts = current
        new = [k for k in current if k not in known]
        if not new or not self.cfg.new_conflicts:
            return []
        shown = ", ".join(new[:MAX_KEYS_SHOWN])
        if len(new) > MAX_KEYS_SHOWN:
            shown += " " + _("and {n} more").format(n=len(new) - MAX_KEYS_SHOWN)
        return [self._message(
            "new_conflicts", result.integration,
            ngettext("{name}: {n} new conflict", "{name}: {n} new conflicts", len(new)).format(
                name=result.integration, n=len(new)),
            _("Not written until fixed (the key is on several variants, or the source "
              "disagrees with itself): {keys}").format(keys=shown), result)]

    async def _lifecycle(self, result: RunResult) -> list[Message]:
        if not self.cfg.lifecycle or not result.changes:
            return []
        if not any(c.field == "note" for c in result.changes):
            return []  # lifecycle changes are written to the supplier part's note
        entries = await self.state.list_reviews(result.integration, kind="lifecycle", limit=200)
        mine = [e for e in entries if e.run_id == result.run_id]
        if not mine:
            return []
        lines = [f"{e.part_name} ({e.data.get('sku', '?')}): {e.data.get('old') or '—'} → "
                 f"{e.data.get('new') or '—'}" for e in mine[:MAX_KEYS_SHOWN]]
        if len(mine) > MAX_KEYS_SHOWN:
            lines.append(_("and {n} more").format(n=len(mine) - MAX_KEYS_SHOWN))
        return [self._message(
            "lifecycle", result.integration,
            ngettext("{name}: lifecycle changed for {n} part",
                     "{name}: lifecycle changed for {n} parts", len(mine)).format(
                name=result.integration, n=len(mine)),
            "\n".join(lines), result)]

    def _what(self, result: RunResult) -> str:
        summary = run_summary(result.status, result.dry_run, asdict(result.counts),
                              result.details)
        lines = [summary] if summary else []
        lines += [result.message] if result.message and result.message != summary else []
        lines += [e for e in result.errors[:5] if e != result.message]
        return "\n".join(lines) or result.status

    def _since(self, job: JobState) -> str:
        if not job.since:
            return "—"
        return fmt_time(datetime.fromisoformat(job.since))

    def _message(self, event: str, name: str, title: str, body: str,
                 result: RunResult) -> Message:
        if self.page_url and result.run_id:
            body += "\n" + _("Details: {url}").format(url=f"{self.page_url}/runs/{result.run_id}")
        return Message(event=event, integration=name, title=redact(title), body=redact(body))

    async def send(self, message: Message) -> bool:
        """Send ``message`` to every URL; failures are logged (URLs never shown)."""
        import apprise

        def deliver() -> bool:
            box = apprise.Apprise()
            for url in self.urls:
                if not box.add(url):
                    logger.warning("notifications: {} is not a valid apprise URL",
                                   shown_url(url))
            if len(box) == 0:
                return False
            return bool(box.notify(body=message.body, title=message.title))

        try:
            async with asyncio.timeout(self.cfg.timeout):
                ok = await asyncio.to_thread(deliver)
        except Exception as exc:  # noqa: BLE001 - a destination's failure is logged only
            logger.warning("notifications: sending {} about {} failed: {}", message.event,
                           message.integration, redact(str(exc)) or type(exc).__name__)
            return False
        if not ok:
            logger.warning("notifications: {} about {} was not accepted by every destination",
                           message.event, message.integration)
        else:
            logger.info("notifications: sent {} about {}", message.event, message.integration)
        return ok

    async def close(self) -> None:
        """Wait briefly for messages still being sent."""
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.cfg.timeout):
                    await asyncio.gather(*self._tasks, return_exceptions=True)
