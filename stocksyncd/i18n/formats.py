"""Times and durations for people: in the configured zone, with sensible precision."""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from zoneinfo import ZoneInfo

from stocksyncd.i18n import _

# None: the server's own zone (what ``datetime.astimezone()`` gives).
_zone: tzinfo | None = None


def set_timezone(name: str) -> None:
    """Show times in the IANA zone ``name`` ("" = the server's zone)."""
    global _zone
    _zone = ZoneInfo(name) if name else None


def local(value: datetime) -> datetime:
    """``value`` in the configured zone."""
    return value.astimezone(_zone)


def day_start(day: date) -> datetime:
    """Midnight starting ``day`` in the configured zone (its offset on that day)."""
    if _zone is None:
        return datetime(day.year, day.month, day.day).astimezone()
    return datetime(day.year, day.month, day.day, tzinfo=_zone)


def fmt_time(value: datetime | None) -> str:
    """'2026-11-27 22:05:13 MSK' (or '—')."""
    if value is None:
        return "—"
    return local(value).strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def fmt_duration(seconds: float | None) -> str:
    """0.021 -> '21 ms', 2.345 -> '2.3 s', 42.4 -> '42 s', 90 -> '1 min 30 s'."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return _("{n} ms").format(n=max(0, round(seconds * 1000)))
    if seconds < 10:
        return _("{n} s").format(n=f"{seconds:.1f}")
    if seconds < 60:
        return _("{n} s").format(n=round(seconds))
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        if not secs:
            return _("{m} min").format(m=minutes)
        return _("{m} min {s} s").format(m=minutes, s=secs)
    hours, minutes = divmod(minutes, 60)
    if not minutes:
        return _("{h} h").format(h=hours)
    return _("{h} h {m} min").format(h=hours, m=minutes)
