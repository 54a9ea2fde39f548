"""Access token, CSRF, allowed hosts and login throttling for the web app.

The session cookie holds its expiry and an HMAC of the token and that expiry
(keyed with a per-process secret), never the token itself, so a leaked cookie
does not reveal the token, stops working at its expiry and dies with the process.
CSRF tokens are stateless: a timestamp signed with the same secret and bound to
the session cookie, so one user's token is useless to another.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from collections import OrderedDict, deque
from urllib.parse import unquote, urlsplit

from aiohttp import web

from stocksyncd.config import WebConfig
from stocksyncd.netaddr import is_loopback

SESSION_COOKIE = "stocksyncd_session"
CSRF_FIELD = "csrf_token"
CSRF_MAX_AGE_S = 12 * 3600.0

# Random per process: restarting the daemon signs everyone out and voids old forms.
PROCESS_SECRET = secrets.token_bytes(32)


def _sign(secret: bytes, purpose: str, value: str) -> str:
    return hmac.new(secret, f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()


def session_value(token: str, expires: int, secret: bytes = PROCESS_SECRET) -> str:
    """What the session cookie holds for ``token`` until ``expires`` (Unix seconds)."""
    return f"{expires}.{_sign(secret, 'session', f'{expires}|{token}')}"


def token_matches(given: str, token: str) -> bool:
    """Constant-time comparison of a presented token with the configured one."""
    return hmac.compare_digest(given.encode(), token.encode())


def session_valid(cookie: str, token: str, now: float, secret: bytes = PROCESS_SECRET) -> bool:
    """True for a cookie this process issued for ``token`` that has not expired."""
    stamp, _, _ = cookie.partition(".")
    if not stamp.isdigit() or int(stamp) <= now:
        return False
    return hmac.compare_digest(cookie, session_value(token, int(stamp), secret))


def bearer(request: web.Request) -> str:
    """The token of an ``Authorization: Bearer`` header, or ""."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" else ""


def is_authenticated(request: web.Request, token: str, now: float,
                     secret: bytes = PROCESS_SECRET, *,
                     signed_out: SignedOut | None = None) -> bool:
    """True when no token is configured, or the request carries it (header or cookie)."""
    if not token:
        return True
    given = bearer(request)
    if given and token_matches(given, token):
        return True
    cookie = request.cookies.get(SESSION_COOKIE, "")
    if not cookie or (signed_out is not None and signed_out.has(cookie, now)):
        return False
    return session_valid(cookie, token, now, secret)


def is_https(request: web.Request, cfg: WebConfig) -> bool:
    """Served over TLS, or behind a trusted proxy that says the browser used https."""
    if request.secure:
        return True
    if not cfg.trust_proxy:
        return False
    proto = request.headers.get("X-Forwarded-Proto", "")
    return proto.split(",")[0].strip().lower() == "https"


def client_address(request: web.Request, cfg: WebConfig) -> str:
    """Who is asking: the peer, or behind a trusted proxy the address it forwarded.

    The last X-Forwarded-For entry is the one the proxy itself added; earlier
    ones come from the client and can be forged.
    """
    if cfg.trust_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return request.remote or "unknown"


def set_session_cookie(response: web.StreamResponse, request: web.Request, token: str, *,
                       cfg: WebConfig, now: float, secret: bytes = PROCESS_SECRET) -> None:
    """Sign the browser in until ``cfg.session_lifetime`` from ``now``."""
    lifetime = max(1, int(cfg.session_lifetime))
    response.set_cookie(SESSION_COOKIE, session_value(token, int(now) + lifetime, secret),
                        httponly=True, samesite="Strict", secure=is_https(request, cfg),
                        path="/", max_age=lifetime)


def clear_session_cookie(response: web.StreamResponse, request: web.Request,
                         cfg: WebConfig) -> None:
    """Sign the browser out."""
    response.del_cookie(SESSION_COOKIE, path="/", secure=is_https(request, cfg),
                        httponly=True, samesite="Strict")


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


# A path on this site: one slash, then no second slash or backslash, and only
# characters a URL path and query may hold literally. Browsers drop tabs and
# newlines from URLs ("/\t/evil" becomes "//evil"), so no whitespace either.
_LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*")


def safe_next(target: str | None) -> str:
    """A local path to go to after login; never an open redirect."""
    if not target or "\\" in target:
        return "/"
    # Decoded once more too: a proxy or browser that decodes "%09" or "%2F" must
    # not find a second slash either.
    if not _LOCAL_PATH.fullmatch(target) or not _LOCAL_PATH.fullmatch(unquote(target)):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def _host_name(header: str) -> str | None:
    """The host part of a Host header, lower case, without port or trailing dot."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[1:end], value[end + 1:]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        return host
    host, sep, port = value.partition(":")
    if sep and not port.isdigit():
        return None
    host = host.rstrip(".")
    if not host or any(c in host for c in "/\\@ \t"):
        return None
    return host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_host(request: web.Request, cfg: WebConfig) -> str | None:
    """None when the Host header names this daemon, else why it is refused.

    Against DNS rebinding: a page on a foreign name that resolves to this machine
    sends that name as Host, so only localhost, the listen address and the names
    in ``web.allowed_hosts`` are served. A wildcard listen address accepts any IP
    literal (each is an address of this machine); names must still be listed.
    """
    header = request.headers.get("Host")
    if header is None:
        return None  # HTTP/1.0 without Host: not a browser, so not a rebinding page
    host = _host_name(header)
    if host is None:
        return f"malformed Host header {header!r}"
    listen = cfg.host.lower()
    if (is_loopback(host) or host == listen or host in cfg.allowed_hosts
            or (listen in ("", "0.0.0.0", "::") and _is_ip(host))):
        return None
    return (f"host {host!r} is not served here; add it to web.allowed_hosts if this "
            "daemon should answer to it")


class LoginThrottle:
    """Wrong tokens per client in a sliding window; a client over the limit must wait.

    Memory is bounded: at most ``max_clients`` addresses are tracked, the least
    recently seen forgotten first.
    """

    def __init__(self, attempts: int, window: float, max_clients: int = 10000) -> None:
        self.attempts = attempts
        self.window = window
        self.max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, client: str, now: float) -> deque[float] | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        return failures

    def retry_after(self, client: str, now: float) -> float:
        """Seconds until ``client`` may try again; 0 when it may try now."""
        failures = self._recent(client, now)
        if failures is None or len(failures) < self.attempts:
            return 0.0
        return max(1.0, failures[-self.attempts] + self.window - now)

    def failed(self, client: str, now: float) -> None:
        """Record a wrong token."""
        failures = self._recent(client, now)
        if failures is None:
            failures = self._failures[client] = deque()
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)
        self._failures.move_to_end(client)
        failures.append(now)
        while len(failures) > self.attempts:
            failures.popleft()

    def succeeded(self, client: str) -> None:
        """A right token clears the client's record."""
        self._failures.pop(client, None)


class SignedOut:
    """Session cookies signed out before their expiry, refused until it passes.

    Cookies are stateless, so a copy taken before sign-out would otherwise keep
    working until it expires. Bounded: the oldest entries go first.
    """

    def __init__(self, max_entries: int = 10000) -> None:
        self.max_entries = max_entries
        self._until: OrderedDict[str, int] = OrderedDict()

    def add(self, cookie: str) -> None:
        """Refuse ``cookie`` from now on (a cookie without an expiry is never valid)."""
        stamp = cookie.partition(".")[0]
        if not stamp.isdigit():
            return
        self._until[cookie] = int(stamp)
        while len(self._until) > self.max_entries:
            self._until.popitem(last=False)

    def has(self, cookie: str, now: float) -> bool:
        """True when ``cookie`` was signed out and has not expired yet."""
        for old, until in list(self._until.items()):
            if until <= now:
                del self._until[old]
        return cookie in self._until
