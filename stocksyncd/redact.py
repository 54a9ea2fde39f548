"""Keep secrets out of logs, error messages, debug dumps and the web page.

Two layers: URLs lose their credentials and secret-looking query values,
and every secret value the config holds is registered so that any text can
be scrubbed of it wherever it appears.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

from yarl import URL

MASK = "***"

# Query parameters that carry credentials in the APIs we speak (Mouser's
# apiKey travels in the URL) and in common conventions.
SECRET_PARAMS = frozenset(
    {"apikey", "api_key", "key", "token", "access_token", "password", "passwd", "secret",
     "auth", "signature", "sig"}
)

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None

# Secrets shorter than this are too likely to occur in normal text.
_MIN_SECRET_LEN = 4


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember secret values so that ``redact`` removes them from any text."""
    global _pattern
    with _lock:
        changed = False
        for value in values:
            if value and len(value) >= _MIN_SECRET_LEN and value not in _secrets:
                _secrets.add(value)
                changed = True
        if changed:
            ordered = sorted(_secrets, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def forget_secrets(values: Iterable[str | None]) -> None:
    """Stop redacting values no longer in use (a replaced token), so the set stays bounded."""
    global _pattern
    with _lock:
        gone = {v for v in values if v} & _secrets
        if gone:
            _secrets.difference_update(gone)
            ordered = sorted(_secrets, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None


def clear_secrets() -> None:
    """Forget registered secrets (tests)."""
    global _pattern
    with _lock:
        _secrets.clear()
        _pattern = None


_URL_RE = re.compile(r"https?://[^\s'\"<>]+")
_BEARER_RE = re.compile(r"(?i)\b(bearer|token|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_KV_RE = re.compile(
    r"(?i)([\"']?(?:password|passwd|api_key|apikey|token|access_token|secret)[\"']?\s*[:=]\s*[\"']?)"
    r"([^\"'&\s,}]+)"
)


def redact_url(url: str) -> str:
    """Drop user:password and mask secret query values of one URL."""
    try:
        parsed = URL(url, encoded=True)
    except ValueError:
        return redact(url)
    if parsed.user or parsed.password:
        parsed = parsed.with_user(None)
    if parsed.query:
        query = [(k, MASK if k.lower() in SECRET_PARAMS else v) for k, v in parsed.query.items()]
        parsed = parsed.with_query(query)
    return redact_known(str(parsed))


def redact_known(text: str) -> str:
    """Replace every registered secret value in ``text``."""
    pattern = _pattern
    if pattern is None:
        return text
    return pattern.sub(MASK, text)


def redact(text: str) -> str:
    """Scrub URLs, auth headers, key=value pairs and registered secrets from ``text``."""
    text = redact_known(text)
    text = _URL_RE.sub(lambda m: redact_url(m.group(0)), text)
    text = _BEARER_RE.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _KV_RE.sub(lambda m: f"{m.group(1)}{MASK}", text)
