"""The language of the pages and notifications: gettext catalogues made with Babel.

Strings in code are English and marked with ``_()``; ``locale/<lang>/LC_MESSAGES/
stocksyncd.po`` holds the translations and the compiled ``.mo`` next to it is what
runs (committed, so a plain ``pip install`` has it; a test checks it matches the
``.po``). The language of the current request or message is a context variable,
so concurrent requests in different languages do not mix.
"""

from __future__ import annotations

import gettext
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "stocksyncd"
LANGUAGES = ("en", "ru")
DEFAULT = "en"

_language: ContextVar[str] = ContextVar("stocksyncd_language", default=DEFAULT)


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalogue of ``language``; English is the text in code."""
    if language == DEFAULT:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[language])


def current() -> str:
    """The language in effect here."""
    return _language.get()


def _(message: str) -> str:
    """``message`` in the current language ("" stays "": gettext would give the
    catalogue's header for it)."""
    if not message:
        return message
    return translations(_language.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form of ``singular``/``plural`` for ``n`` in the current language."""
    return translations(_language.get()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark ``message`` for extraction without translating it now."""
    return message


@contextmanager
def using(language: str) -> Iterator[None]:
    """Run a block in ``language`` (unknown languages fall back to English)."""
    token = _language.set(language if language in LANGUAGES else DEFAULT)
    try:
        yield
    finally:
        _language.reset(token)


def set_language(language: str) -> None:
    """Use ``language`` for the rest of the current task (a web request)."""
    _language.set(language if language in LANGUAGES else DEFAULT)


def negotiate(accept_language: str | None, configured: str = "auto") -> str:
    """``web.language`` when set, else the browser's first supported choice, else English.

    ``Accept-Language: ru-RU,ru;q=0.9,en;q=0.8`` -> ``ru``.
    """
    if configured in LANGUAGES:
        return configured
    best, best_q = DEFAULT, 0.0
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _sep, params = part.strip().partition(";")
        lang = tag.strip().lower().split("-")[0]
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        # Earlier entries win ties, as browsers list them in preference order.
        q -= position * 1e-6
        if lang in LANGUAGES and q > best_q:
            best, best_q = lang, q
    return best
