"""The aiohttp application: health, metrics, the status page and the Mouser review page."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web
from loguru import logger

from stocksyncd.clock import SYSTEM_CLOCK, Clock
from stocksyncd.config import WebConfig
from stocksyncd.errors import StockSyncError
from stocksyncd.i18n import _
from stocksyncd.runtime.view import DaemonView
from stocksyncd.runtime.web import collect, history, pages, review, security
from stocksyncd.runtime.web.health import HEALTH_TIMEOUT

STATIC = Path(__file__).parent / "static"
FLASH_COOKIE = "stocksyncd_flash"
RUN_PAGE_SIZE = 500
REVIEW_LIMIT = 500
OPEN_PATHS = ("/healthz", "/login", "/static/")

VIEW: web.AppKey[DaemonView] = web.AppKey("view", DaemonView)
CLOCK: web.AppKey[Clock] = web.AppKey("clock", Clock)
SECRET: web.AppKey[bytes] = web.AppKey("secret", bytes)
THROTTLE: web.AppKey[security.LoginThrottle] = web.AppKey("throttle", security.LoginThrottle)
SIGNED_OUT: web.AppKey[security.SignedOut] = web.AppKey("signed_out", security.SignedOut)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _view(request: web.Request) -> DaemonView:
    return request.app[VIEW]


def _token(request: web.Request) -> str:
    return _view(request).config.web.token.get_secret_value()


def _web(request: web.Request) -> WebConfig:
    return _view(request).config.web


def _throttle(request: web.Request) -> security.LoginThrottle:
    """The login limiter, following the current config (a reload may change it)."""
    throttle, cfg = request.app[THROTTLE], _web(request)
    throttle.attempts, throttle.window = cfg.login_attempts, cfg.login_window
    return throttle


def _signed_in(request: web.Request) -> bool:
    return security.is_authenticated(request, _token(request), request.app[CLOCK].time(),
                                     request.app[SECRET], signed_out=request.app[SIGNED_OUT])


def _csrf(request: web.Request) -> str:
    return security.csrf_token(request, request.app[CLOCK].time(), request.app[SECRET])


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


# -- flash messages: a signed cookie read once by the page the POST redirects to ----------


def _flash_sig(secret: bytes, payload: str) -> str:
    return hmac.new(secret, b"flash\x00" + payload.encode(), hashlib.sha256).hexdigest()[:32]


def see_other(location: str) -> web.Response:
    """A 303 redirect, returned (aiohttp deprecates returning HTTPException objects)."""
    return web.Response(status=303, headers={"Location": location})


def redirect_with_flash(request: web.Request, location: str, kind: str,
                        text: str) -> web.Response:
    """303 to ``location`` carrying a one-time message."""
    payload = base64.urlsafe_b64encode(orjson.dumps([kind, text[:600]])).decode()
    response = see_other(location)
    response.set_cookie(FLASH_COOKIE, f"{payload}.{_flash_sig(request.app[SECRET], payload)}",
                        httponly=True, samesite="Strict", path="/",
                        secure=security.is_https(request, _web(request)))
    return response


def take_flash(request: web.Request, response: web.StreamResponse) -> tuple[str, str] | None:
    """The pending message, if validly signed; clears it."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    response.del_cookie(FLASH_COOKIE, path="/")
    payload, _, sig = raw.rpartition(".")
    if not hmac.compare_digest(sig, _flash_sig(request.app[SECRET], payload)):
        return None
    try:
        kind, text = orjson.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, TypeError):
        return None
    return str(kind), str(text)


def _page(request: web.Request, render: Callable[[tuple[str, str] | None], str]) -> web.Response:
    response = _html("")
    response.text = render(take_flash(request, response))
    return response


# -- middleware ------------------------------------------------------------------------


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Allowed hosts everywhere; the token on every route but the open ones; CSRF and
    origin checks on every POST."""
    refused = security.check_host(request, _web(request))
    if refused is not None:
        logger.debug("web request refused: {}", refused)
        raise web.HTTPMisdirectedRequest(text=f"421 Misdirected Request: {refused}\n")
    path = request.path
    if not path.startswith(OPEN_PATHS) and _token(request) and security.bearer(request):
        # Guessing through the Authorization header counts against the same limit
        # as the login form, and a client over it is refused even the right token.
        throttle, now = _throttle(request), request.app[CLOCK].time()
        client = security.client_address(request, _web(request))
        wait = throttle.retry_after(client, now)
        if wait > 0:
            raise web.HTTPTooManyRequests(
                text=f"too many wrong tokens; try again in {wait:.0f} s\n",
                headers={"Retry-After": str(math.ceil(wait))})
        if not _signed_in(request):
            throttle.failed(client, now)
            logger.warning("web request with a wrong token refused from {}", client)
    if not path.startswith(OPEN_PATHS) and not _signed_in(request):
        if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
            raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
        raise web.HTTPUnauthorized(
            text="authentication required: send 'Authorization: Bearer <web.token>' "
                 "or sign in at /login\n",
            headers={"WWW-Authenticate": 'Bearer realm="stocksyncd"'},
        )
    if request.method == "POST":
        problem = security.check_origin(request)
        if problem is None:
            form = await request.post()
            given = form.get(security.CSRF_FIELD)
            problem = security.check_csrf_token(
                request, given if isinstance(given, str) else "", request.app[CLOCK].time(),
                request.app[SECRET])
        if problem is not None:
            raise web.HTTPForbidden(text=f"403 Forbidden: CSRF check failed: {problem}\n")
    return await handler(request)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """No framing, no sniffing, no foreign resources."""
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.path != "/metrics" and not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")


# -- handlers ---------------------------------------------------------------------------


# Health checks given up on, kept referenced until their cancellation is over.
_ABANDONED: set[asyncio.Future[Any]] = set()


def _forget(task: asyncio.Future[Any]) -> None:
    _ABANDONED.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: no "never retrieved" warning


async def healthz(request: web.Request) -> web.Response:
    """200 while healthy, 503 with reasons otherwise."""
    view = _view(request)
    check = asyncio.ensure_future(collect.health(view, request.app[CLOCK].now()))
    try:
        await asyncio.wait({check}, timeout=HEALTH_TIMEOUT)
        if not check.done():
            # Not awaited: undoing a query a frozen server never answers can itself
            # take seconds, and the answer must not wait for that.
            check.cancel()
            _ABANDONED.add(check)
            check.add_done_callback(_forget)
            raise TimeoutError
        report, leases = check.result()
    except TimeoutError:
        late: dict[str, Any] = {
            "status": "unhealthy", "replica": view.replica,
            "reasons": [f"state store did not answer within {HEALTH_TIMEOUT:g}s"],
            "integrations": {}, "leases": []}
        return web.json_response(late, status=503, dumps=lambda o: orjson.dumps(o).decode())
    except Exception as exc:  # noqa: BLE001 - a broken state store is itself unhealthy
        logger.opt(exception=exc).warning("health check could not read the state store")
        body: dict[str, Any] = {"status": "unhealthy", "replica": view.replica,
                                "reasons": [f"state store unavailable: {exc}"],
                                "integrations": {}, "leases": []}
        return web.json_response(body, status=503, dumps=lambda o: orjson.dumps(o).decode())
    body = collect.health_json(view, report, leases)
    return web.json_response(body, status=200 if report.healthy else 503,
                             dumps=lambda o: orjson.dumps(o).decode())


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition."""
    body, content_type = _view(request).metrics.render()
    return web.Response(body=body, headers={"Content-Type": content_type})


async def status(request: web.Request) -> web.Response:
    """``GET /``."""
    view = _view(request)
    data = await collect.status_data(view, request.app[CLOCK].now())
    csrf = _csrf(request)
    return _page(request, lambda flash: pages.status_page(data, csrf, flash))


async def run_detail(request: web.Request) -> web.Response:
    """``GET /runs/{run_id}``."""
    view = _view(request)
    run = await view.state.get_run(request.match_info["run_id"])
    if run is None:
        return _html(pages.error_page("Run not found", "No run with this id is stored.",
                                      replica=view.replica), status=404)
    run = await history.with_skip_list(view.state, run)
    try:
        page = int(request.query.get("page", "1"))
    except ValueError:
        page = 1
    return _html(pages.run_page(run, page=page, per_page=RUN_PAGE_SIZE, replica=view.replica))


async def trigger(request: web.Request) -> web.StreamResponse:
    """``POST /integrations/{name}/run``."""
    name = request.match_info["name"]
    try:
        run_id = await _view(request).trigger(name)
    except KeyError:
        return redirect_with_flash(request, "/", "error",
                                   _("{name}: no such enabled integration").format(name=name))
    logger.info("run of {} started from the web page ({})", name, run_id)
    return redirect_with_flash(request, "/", "ok",
                               _("{name}: run {run_id} started").format(name=name, run_id=run_id))


def _part_urls(view: DaemonView) -> dict[str, str]:
    urls: dict[str, str] = {}
    for name, cfg in view.config.integrations.items():
        url = getattr(cfg, "inventree_url", None)
        if isinstance(url, str):
            urls[name] = url
    return urls


async def _quota_left(view: DaemonView) -> dict[str, tuple[int, int]]:
    """Mouser calls left today, per integration that keeps a call ledger."""
    out: dict[str, tuple[int, int]] = {}
    for name, cfg in view.config.integrations.items():
        left = getattr(view.integration(name), "quota_left", None)
        per_day = getattr(cfg, "calls_per_day", None)
        if callable(left) and isinstance(per_day, int):
            value = await left()
            if isinstance(value, int):
                out[name] = (value, per_day)
    return out


async def review_list(request: web.Request) -> web.Response:
    """``GET /review`` (``?kind=`` filters by kind)."""
    view = _view(request)
    kind = request.query.get("kind") or None
    if kind not in review.FILTERS:
        kind = None
    entries = await view.state.list_reviews(kind=kind, limit=REVIEW_LIMIT)
    csrf = _csrf(request)
    urls = _part_urls(view)
    quota = await _quota_left(view)
    return _page(request, lambda flash: review.review_page(
        entries, csrf=csrf, flash=flash, replica=view.replica, part_urls=urls, kind=kind,
        quota=quota))


def _entry_id(request: web.Request) -> int:
    try:
        return int(request.match_info["entry_id"])
    except ValueError:
        raise web.HTTPNotFound(text="no such review entry\n") from None


async def review_delete(request: web.Request) -> web.StreamResponse:
    """``POST /review/{id}/delete``."""
    entry_id = _entry_id(request)
    if await _view(request).state.delete_review(entry_id):
        return redirect_with_flash(request, "/review", "ok",
                                   _("Entry {id} deleted.").format(id=entry_id))
    return redirect_with_flash(request, "/review", "error",
                               _("Entry {id} was already gone.").format(id=entry_id))


async def review_bulk_delete(request: web.Request) -> web.StreamResponse:
    """``POST /review/delete``: the ticked entries, or (``scope=shown``) every one shown."""
    form = await request.post()
    if form.get("scope") == "shown":
        raw = [x for x in str(form.get("shown", "")).split(",") if x]
    else:
        raw = [str(x) for x in form.getall("entry", [])]
    try:
        ids = sorted({int(x) for x in raw})
    except ValueError:
        return redirect_with_flash(request, "/review", "error", _("Unknown entries."))
    if not ids:
        return redirect_with_flash(request, "/review", "error", _("No entry was selected."))
    state = _view(request).state
    gone = sum([await state.delete_review(i) for i in ids])
    return redirect_with_flash(request, "/review", "ok",
                               _("{n} entries deleted.").format(n=gone))


async def review_ignore(request: web.Request) -> web.StreamResponse:
    """``POST /review/part/{integration}/{pk}/ignore``: exclude the part in InvenTree."""
    view = _view(request)
    name = request.match_info["integration"]
    try:
        pk = int(request.match_info["pk"])
    except ValueError:
        raise web.HTTPNotFound(text="no such part\n") from None
    ignore = getattr(view.integration(name), "ignore_part", None)
    if not callable(ignore):
        return redirect_with_flash(request, "/review", "error",
                                   _("{name}: not running or cannot ignore parts.").format(
                                       name=name))
    try:
        message = await ignore(pk)
    except StockSyncError as exc:
        return redirect_with_flash(request, "/review", "error", str(exc))
    except Exception as exc:  # noqa: BLE001 - an upstream failure is shown, not a 500
        logger.opt(exception=exc).error("ignoring part {} of {} failed", pk, name)
        return redirect_with_flash(request, "/review", "error",
                                   _("Ignoring the part failed: {error}").format(error=exc))
    logger.info("{}: {} (review page)", name, message)
    return redirect_with_flash(request, "/review", "ok", str(message))


async def review_create(request: web.Request) -> web.StreamResponse:
    """``POST /review/{id}/create/{hit}``: create the supplier part from one hit."""
    view = _view(request)
    entry_id = _entry_id(request)
    try:
        hit = int(request.match_info["hit"])
    except ValueError:
        raise web.HTTPNotFound(text="no such hit\n") from None
    entry = await view.state.get_review(entry_id)
    if entry is None:
        return redirect_with_flash(request, "/review", "error",
                                   _("Entry {id} no longer exists.").format(id=entry_id))
    if not review.can_create(entry, hit):
        return redirect_with_flash(request, "/review", "error",
                                   _("Hit {hit} of entry {id} cannot be created (no Mouser "
                                     "part number, already created, or unknown).").format(
                                       hit=hit, id=entry_id))
    integration = view.integration(entry.integration)
    create = getattr(integration, "create_supplier_part", None)
    if not callable(create):
        return redirect_with_flash(request, "/review", "error",
                                   _("{name}: not running or cannot create supplier "
                                     "parts.").format(name=entry.integration))
    try:
        message = await create(entry_id, hit)
    except StockSyncError as exc:
        return redirect_with_flash(request, "/review", "error", str(exc))
    except Exception as exc:  # noqa: BLE001 - an upstream failure is shown, not a 500
        logger.opt(exception=exc).error("creating a supplier part for entry {} failed", entry_id)
        return redirect_with_flash(request, "/review", "error",
                                   _("Creating the supplier part failed: {error}").format(
                                       error=exc))
    logger.info("supplier part created from review entry {} hit {}: {}", entry_id, hit, message)
    return redirect_with_flash(request, "/review", "ok", str(message))


async def login_form(request: web.Request) -> web.StreamResponse:
    """``GET /login``."""
    view = _view(request)
    next_path = security.safe_next(request.query.get("next"))
    if not _token(request) or _signed_in(request):
        raise web.HTTPSeeOther(next_path)
    return _html(pages.login_page(_csrf(request), next_path=next_path, error=None,
                                  replica=view.replica))


async def login_submit(request: web.Request) -> web.StreamResponse:
    """``POST /login`` (the CSRF check already passed in the middleware)."""
    view = _view(request)
    cfg = view.config.web
    form = await request.post()
    next_path = security.safe_next(str(form.get("next") or "/"))
    token = _token(request)
    given = form.get("token")
    if not token:
        raise web.HTTPSeeOther(next_path)
    throttle = _throttle(request)
    client = security.client_address(request, cfg)
    now = request.app[CLOCK].time()
    # Checked before the token: over the limit, even the right token must wait.
    wait = throttle.retry_after(client, now)
    if wait > 0:
        # DEBUG: the wrong tokens that led here were logged; a locked-out client
        # hammering on must not flood the log.
        logger.debug("web login from {} refused: too many wrong tokens", client)
        response = _html(pages.login_page(
            _csrf(request), next_path=next_path, replica=view.replica,
            error=f"Too many wrong tokens; try again in {wait:.0f} s."), status=429)
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    if not isinstance(given, str) or not security.token_matches(given, token):
        throttle.failed(client, now)
        logger.warning("web login refused from {}", client)
        return _html(pages.login_page(_csrf(request), next_path=next_path,
                                      error="That token is not right.", replica=view.replica),
                     status=401)
    throttle.succeeded(client)
    response = see_other(next_path)
    security.set_session_cookie(response, request, token, cfg=cfg, now=now,
                                secret=request.app[SECRET])
    return response


async def logout_form(request: web.Request) -> web.StreamResponse:
    """``GET /logout``: a sign-out button (signing out changes state, so it is a POST)."""
    view = _view(request)
    body = ('<section class="card login"><h1>Sign out</h1>'
            + pages.post_button("/logout", "Sign out", _csrf(request), "primary")
            + "</section>")
    return _html(pages.layout("Sign out", body, active="", replica=view.replica))


async def logout_submit(request: web.Request) -> web.StreamResponse:
    """``POST /logout``: forget the session cookie."""
    response = see_other("/login" if _token(request) else "/")
    cookie = request.cookies.get(security.SESSION_COOKIE, "")
    if cookie:
        request.app[SIGNED_OUT].add(cookie)
    security.clear_session_cookie(response, request, _web(request))
    return response


async def not_found(request: web.Request) -> web.Response:
    """Unknown paths."""
    raise web.HTTPNotFound(text="404 Not Found\n")


def create_app(view: DaemonView, *, clock: Clock = SYSTEM_CLOCK,
               secret: bytes = security.PROCESS_SECRET) -> web.Application:
    """The web application for ``view``; the daemon serves it with an ``AppRunner``."""
    app = web.Application(middlewares=[guard], client_max_size=64 * 1024)
    app[VIEW] = view
    app[CLOCK] = clock
    app[SECRET] = secret
    web_cfg = view.config.web
    app[THROTTLE] = security.LoginThrottle(web_cfg.login_attempts, web_cfg.login_window)
    app[SIGNED_OUT] = security.SignedOut()
    app.on_response_prepare.append(security_headers)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/", status)
    app.router.add_get("/runs/{run_id}", run_detail)
    app.router.add_post("/integrations/{name}/run", trigger)
    app.router.add_get("/review", review_list)
    app.router.add_post("/review/delete", review_bulk_delete)
    app.router.add_post("/review/{entry_id}/delete", review_delete)
    app.router.add_post("/review/part/{integration}/{pk}/ignore", review_ignore)
    app.router.add_post("/review/{entry_id}/create/{hit}", review_create)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login_submit)
    app.router.add_get("/logout", logout_form)
    app.router.add_post("/logout", logout_submit)
    history.install(app, view)  # the history pages and each request's language
    app.router.add_static("/static/", STATIC, show_index=False)
    return app
