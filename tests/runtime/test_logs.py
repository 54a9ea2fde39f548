"""Log formats, journald priorities on every line, stdlib interception, redaction."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest
from loguru import logger

from stocksyncd.runtime.logs import setup_logging
from tests.cycles import cyclic_garbage

PASSWORD = "hunter2-secret-pw"
TOKEN = "tok_9f8e7d6c5b4a"
APIKEY = "mouser-key-123456"


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    yield buf
    logger.remove()
    logging.basicConfig(handlers=[], force=True)


def _fail_with_url() -> None:
    try:
        raise ValueError(f"GET https://api.mouser.com/api/v1/search?apiKey={APIKEY} failed")
    except ValueError as exc:
        raise RuntimeError(f"login with password={PASSWORD} and token {TOKEN}") from exc


def test_journal_prefixes_every_line_of_a_traceback(out: io.StringIO) -> None:
    setup_logging("DEBUG", "journal", stream=out)
    logger.debug("dbg")
    logger.info("hello\nsecond line")
    logger.warning("careful")
    try:
        _fail_with_url()
    except RuntimeError:
        logger.exception("it broke")
    lines = out.getvalue().splitlines()
    assert lines[:4] == ["<7>dbg", "<6>hello", "<6>second line", "<4>careful"]
    error_lines = lines[4:]
    assert error_lines[0] == "<3>it broke"
    assert len(error_lines) > 5  # the traceback, line by line
    assert all(line.startswith("<3>") for line in error_lines)
    assert any("Traceback" in line for line in error_lines)
    assert not any(line[3:4].isdigit() and "-" in line[:12] for line in lines)  # no timestamps


def test_secrets_never_appear_in_any_format(out: io.StringIO) -> None:
    for fmt in ("journal", "text", "json"):
        setup_logging("INFO", fmt, secrets=[PASSWORD, TOKEN], stream=out)  # type: ignore[arg-type]
        try:
            _fail_with_url()
        except RuntimeError:
            logger.exception("sync failed for https://user:{}@x.example/?token={}",
                             PASSWORD, TOKEN)
        logger.bind(header=f"Bearer {TOKEN}").info("extra carries it")
    text = out.getvalue()
    assert "RuntimeError" in text and "ValueError" in text
    for secret in (PASSWORD, TOKEN, APIKEY):
        assert secret not in text


def test_text_format_has_timestamp_and_level(out: io.StringIO) -> None:
    setup_logging("INFO", "text", stream=out)
    logger.bind(integration="shop").info("ran")
    logger.debug("hidden")
    (line,) = out.getvalue().splitlines()
    assert line[:4].isdigit() and line[4] == "-"
    assert "INFO" in line and line.endswith("[shop] ran")


def test_json_format_one_object_per_line(out: io.StringIO) -> None:
    setup_logging("INFO", "json", secrets=[TOKEN], stream=out)
    logger.bind(integration="shop", run_id="r1", auth=TOKEN).warning("multi\nline")
    try:
        _fail_with_url()
    except RuntimeError:
        logger.exception("boom")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (orjson.loads(line) for line in lines)
    assert first["level"] == "WARNING" and first["message"] == "multi\nline"
    assert first["extra"] == {"integration": "shop", "run_id": "r1", "auth": "***"}
    assert "time" in first
    assert second["level"] == "ERROR" and "RuntimeError" in second["exception"]
    assert APIKEY not in lines[1] and PASSWORD not in lines[1]


def test_stdlib_loggers_go_through_the_sink(out: io.StringIO) -> None:
    setup_logging("INFO", "journal", secrets=[PASSWORD], stream=out)
    logging.getLogger("aiohttp.client").error("connect failed with %s", PASSWORD)
    logging.getLogger("apscheduler.scheduler").info("routine tick")  # quiet at INFO
    logging.getLogger("apscheduler.scheduler").warning("job missed")
    assert out.getvalue().splitlines() == ["<3>connect failed with ***", "<4>job missed"]


def test_reconfigure_replaces_the_handler(out: io.StringIO) -> None:
    setup_logging("INFO", "journal", stream=out)
    setup_logging("WARNING", "journal", stream=out)
    logger.info("dropped")
    logger.warning("kept")
    assert out.getvalue() == "<4>kept\n"


def test_stdlib_records_leave_no_reference_cycles(out: io.StringIO) -> None:
    # The daemon collects cycles rarely: every aiosqlite/aiohttp record kept its
    # frames, the record and its arguments until a full collection.
    setup_logging("DEBUG", "text", stream=out)
    library = logging.getLogger("aiohttp.client")
    library.warning("warm-up %s", 0)
    with cyclic_garbage() as cycles:
        for i in range(20):
            library.warning("connect failed %s", i)
            library.debug("executing %s", i)
    assert cycles.found == 0
    # Named for the module that logged (this one), not for ``logging``.
    assert out.getvalue().splitlines()[-1].endswith(f" {__name__}: executing 19")
