"""Catalogues in step with the code, language choice, times and durations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stocksyncd.i18n import _, negotiate, ngettext, translations, using
from stocksyncd.i18n import catalogue as tool
from stocksyncd.i18n.formats import day_start, fmt_duration, fmt_time, set_timezone
from stocksyncd.i18n.summary import run_summary


def test_every_marked_string_is_translated_and_compiled(capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    # Fails when a new _() string lacks a Russian translation, or the committed
    # .mo was not compiled from the .po (python -m stocksyncd.i18n.catalogue).
    assert tool.main(["check"]) == 0, capsys.readouterr().err
    assert "Runs" in {m.id for m in tool.template()}  # the f-string pass finds nav labels


def test_the_compiled_catalogue_ships_with_the_package() -> None:
    assert translations("ru").gettext("Runs") == "Запуски"


@pytest.mark.parametrize(("header", "configured", "expected"), [
    ("ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7", "auto", "ru"),
    ("en-US,en;q=0.9,ru;q=0.8", "auto", "en"),
    ("de-DE,ru;q=0.5", "auto", "ru"),
    ("fr", "auto", "en"),
    (None, "auto", "en"),
    ("ru", "en", "en"),
    ("en", "ru", "ru"),
    ("en;q=0.1, ru;q=0.9", "auto", "ru"),
    ("ru;q=bad, en", "auto", "en"),
])
def test_language_choice(header: str | None, configured: str, expected: str) -> None:
    assert negotiate(header, configured) == expected


def test_russian_plurals() -> None:
    with using("ru"):
        assert [ngettext("{n} run", "{n} runs", n).format(n=n) for n in (1, 3, 5, 21, 11)] == [
            "1 запуск", "3 запуска", "5 запусков", "21 запуск", "11 запусков"]
    assert _("Runs") == "Runs"


@pytest.mark.parametrize(("seconds", "en", "ru"), [
    (0.021, "21 ms", "21 мс"),
    (0.0004, "0 ms", "0 мс"),
    (2.345, "2.3 s", "2.3 с"),
    (42.4, "42 s", "42 с"),
    (90, "1 min 30 s", "1 мин 30 с"),
    (120, "2 min", "2 мин"),
    (3720, "1 h 2 min", "1 ч 2 мин"),
    (7200, "2 h", "2 ч"),
])
def test_durations_keep_a_sensible_precision(seconds: float, en: str, ru: str) -> None:
    assert fmt_duration(seconds) == en
    with using("ru"):
        assert fmt_duration(seconds) == ru


def test_times_in_the_configured_zone() -> None:
    at = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
    try:
        set_timezone("Europe/Moscow")
        assert fmt_time(at) == "2026-07-01 12:00:00 MSK"
        assert day_start(at.date()).isoformat() == "2026-07-01T00:00:00+03:00"
        set_timezone("UTC")
        assert fmt_time(at) == "2026-07-01 09:00:00 UTC"
    finally:
        set_timezone("")


def test_run_summaries_from_the_numbers() -> None:
    stock = {"index_mode": "full", "zeroing": 6}
    counts = {"changed": 10, "written": 9, "matched": 10}
    assert run_summary("failed", False, counts, stock) == "9 of 10 written; 1 refused"
    assert run_summary("aborted", False, counts, stock) == (
        "Stopped by the zero guard: 6 of 10 matched variants would drop to 0; nothing written")
    assert run_summary("ok", True, {"changed": 3}, stock) == (
        "Dry run: 3 changes planned, nothing written")
    assert run_summary("ok", False, {"changed": 0}, stock) == "Nothing to change"
    assert run_summary("ok", False, counts, {}) is None  # not a stock run: its own message
    with using("ru"):
        assert run_summary("failed", False, counts, stock) == "Записано 9 из 10; отклонено 1"
        assert run_summary("ok", False, {"changed": 2, "written": 2}, stock) == (
            "Записано 2 изменения")


def test_mouser_run_summaries_from_the_numbers() -> None:
    mouser = {"mouser_quota_left": 950}
    counts = {"source": 10, "written": 3}
    assert run_summary("ok", False, counts, mouser) == (
        "10 parts checked; 3 changes written · 950 Mouser calls left today")
    assert run_summary("failed", False, counts, mouser) == "Failed after 3 changes were written"
    assert run_summary("aborted", False, {}, {**mouser, "quota_resets_at": 1.0}) == (
        "Mouser call quota used up; waiting for the reset · 950 Mouser calls left today")
    with using("ru"):
        assert run_summary("ok", False, {"source": 1, "written": 5}, mouser) == (
            "Проверена 1 деталь; Записано 5 изменений · запросов к Mouser на сегодня "
            "осталось: 950")
        assert run_summary("failed", False, {"written": 0}, mouser) == (
            "Ошибка; ничего не записано")
