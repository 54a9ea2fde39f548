"""Logging: loguru to stderr in journal, text or JSON form, secrets scrubbed.

Every record, including stdlib records from aiohttp, APScheduler, SQLAlchemy
and alembic, ends in one sink that runs the formatted text (message and
traceback) through ``redact`` before it is written. In ``journal`` form each
physical line carries its syslog priority, so a traceback stays at ``err``
in ``journalctl -p err`` instead of falling back to ``info`` after line one.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import Callable, Iterable
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal, TextIO

import orjson
from loguru import logger

from stocksyncd.redact import redact, register_secrets

if TYPE_CHECKING:
    from loguru import Message, Record

LogFormat = Literal["journal", "text", "json"]

# syslog priorities (sd-daemon(3)); loguru's SUCCESS is a kind of info.
PRIORITY = {
    "TRACE": 7,
    "DEBUG": 7,
    "INFO": 6,
    "SUCCESS": 6,
    "WARNING": 4,
    "ERROR": 3,
    "CRITICAL": 2,
}

# Libraries that are chatty at INFO: their routine lines only show at DEBUG.
_QUIET_AT_INFO = ("apscheduler", "aiohttp.access", "sqlalchemy", "alembic", "aiosqlite")

_handler_id: int | None = None


def _context(record: Record) -> str:
    extra = record["extra"]
    if "integration" in extra:
        return "[{extra[integration]}] "
    return ""


def _journal_format(record: Record) -> str:
    # journald adds time, pid and unit itself.
    tail = "\n{exception}" if record["exception"] else ""
    return _context(record) + "{message}" + tail


def _text_format(record: Record) -> str:
    tail = "\n{exception}" if record["exception"] else ""
    return (
        "{time:YYYY-MM-DD HH:mm:ss.SSS} {level: <8} {name}: "
        + _context(record)
        + "{message}"
        + tail
    )


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


def _json_line(record: Record) -> str:
    obj: dict[str, Any] = {
        "time": record["time"].isoformat(),
        "level": record["level"].name,
        "message": redact(record["message"]),
        "logger": record["name"],
        "extra": _scrub(dict(record["extra"])),
    }
    exc = record["exception"]
    if exc is not None and exc.type is not None:
        text = "".join(traceback.format_exception(exc.type, exc.value, exc.traceback))
        obj["exception"] = redact(text.rstrip("\n"))
    return orjson.dumps(obj).decode()


def make_sink(fmt: LogFormat, stream: TextIO | None = None) -> Callable[[Message], None]:
    """A loguru sink writing ``fmt`` lines to ``stream`` (stderr, looked up per write)."""

    def write(text: str) -> None:
        out = stream if stream is not None else sys.stderr
        out.write(text)
        out.flush()

    if fmt == "json":

        def json_sink(message: Message) -> None:
            write(_json_line(message.record) + "\n")

        return json_sink

    if fmt == "journal":

        def journal_sink(message: Message) -> None:
            prio = PRIORITY.get(message.record["level"].name, 6)
            lines = redact(str(message)).rstrip("\n").split("\n")
            write("".join(f"<{prio}>{line}\n" for line in lines))

        return journal_sink

    def text_sink(message: Message) -> None:
        write(redact(str(message)).rstrip("\n") + "\n")

    return text_sink


class InterceptHandler(logging.Handler):
    """Send stdlib ``logging`` records to loguru (from the loguru README)."""

    def emit(self, record: logging.LogRecord) -> None:
        """Re-emit ``record`` through loguru at the same level, from the caller's frame."""
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        # From this frame up to the first one outside ``logging``: the caller. Never
        # hold this frame itself in a local (as ``logging.currentframe()`` returns it
        # since Python 3.11): that is a reference cycle keeping the frames, the record
        # and its arguments alive until a full collection, every stdlib record.
        frame: FrameType | None = sys._getframe(1)
        depth = 1
        while frame is not None and frame.f_code.co_filename == logging.__file__:
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def setup_logging(
    level: str = "INFO",
    fmt: LogFormat = "journal",
    *,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """(Re)configure logging; safe to call again on reload."""
    global _handler_id
    register_secrets(secrets)
    # Drop our previous handler, or on the first call loguru's default stderr
    # handler (id 0), which does not redact.
    with contextlib.suppress(ValueError):
        logger.remove(0 if _handler_id is None else _handler_id)
    formatter = {"journal": _journal_format, "text": _text_format}.get(fmt, "{message}")
    _handler_id = logger.add(
        make_sink(fmt, stream),
        level=level,
        format=formatter,
        colorize=False,
        # diagnose would print local variables, i.e. tokens, into tracebacks.
        backtrace=False,
        diagnose=False,
    )
    logging.basicConfig(handlers=[InterceptHandler()], level=0, force=True)
    quiet = logging.DEBUG if PRIORITY.get(level, 6) >= 7 else logging.WARNING
    for name in _QUIET_AT_INFO:
        logging.getLogger(name).setLevel(quiet)
