"""Access token and CSRF protection for the web app.

The session cookie holds an HMAC of the token (keyed with a per-process secret),
never the token itself, so a leaked cookie does not reveal the token and dies
with the process. CSRF tokens are stateless: a timestamp signed with the same
secret and bound to the session cookie, so one user's token is useless to another.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from aiohttp import web

SESSION_COOKIE = "stocksyncd_session"
CSRF_FIELD = "csrf_token"
CSRF_MAX_AGE_S = 12 * 3600.0

# Random per process: restarting the daemon signs everyone out and voids old forms.
PROCESS_SECRET = secrets.token_bytes(32)


def _sign(secret: bytes, purpose: str, value: str) -> str:
    return hmac.new(secret, f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()


def session_value(token: str, secret: bytes = PROCESS_SECRET) -> str:
    """What the session cookie holds for ``token``."""
    return _sign(secret, "session", token)


def token_matches(given: str, token: str) -> bool:
    """Constant-time comparison of a presented token with the configured one."""
    return hmac.compare_digest(given.encode(), token.encode())


def is_authenticated(request: web.Request, token: str, secret: bytes = PROCESS_SECRET) -> bool:
    """True when no token is configured, or the request carries it (header or cookie)."""
    if not token:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and given and token_matches(given.strip(), token):
        return True
    cookie = request.cookies.get(SESSION_COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie, session_value(token, secret))


def set_session_cookie(response: web.StreamResponse, request: web.Request, token: str,
                       secret: bytes = PROCESS_SECRET) -> None:
    """Sign the browser in."""
    response.set_cookie(SESSION_COOKIE, session_value(token, secret), httponly=True,
                        samesite="Strict", secure=request.secure, path="/")


def clear_session_cookie(response: web.StreamResponse) -> None:
    """Sign the browser out."""
    response.del_cookie(SESSION_COOKIE, path="/")


def csrf_token(request: web.Request, now: float, secret: bytes = PROCESS_SECRET) -> str:
    """A token for the hidden form field, bound to this browser's session cookie."""
    stamp = str(int(now))
    binding = request.cookies.get(SESSION_COOKIE, "")
    return f"{stamp}.{_sign(secret, 'csrf', stamp + '|' + binding)}"


def check_csrf_token(request: web.Request, given: str, now: float,
                     secret: bytes = PROCESS_SECRET) -> str | None:
    """None when ``given`` is valid for this request, else why not."""
    stamp, _, signature = given.partition(".")
    if not stamp.isdigit() or not signature:
        return "the form has no valid CSRF token; reload the page and try again"
    binding = request.cookies.get(SESSION_COOKIE, "")
    expected = _sign(secret, "csrf", stamp + "|" + binding)
    if not hmac.compare_digest(signature, expected):
        return "the CSRF token is not valid (was the daemon restarted?); reload the page"
    if not 0 <= now - int(stamp) <= CSRF_MAX_AGE_S:
        return "the CSRF token has expired; reload the page and try again"
    return None


def check_origin(request: web.Request) -> str | None:
    """None when Origin (or, failing that, Referer) names this host or is absent."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if source is None:
        return None
    host = request.headers.get("Host", "")
    try:
        netloc = urlsplit(source).netloc
    except ValueError:
        netloc = ""
    if not netloc or netloc.lower() != host.lower():
        return f"cross-origin request refused (from {source!r}, this site is {host!r})"
    return None


def safe_next(target: str | None) -> str:
    """A local path to go to after login; never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
