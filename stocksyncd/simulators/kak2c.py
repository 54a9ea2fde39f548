"""A Kak2c API lite stand-in: JWT login, the product list in both shapes.

Tokens are real HS256 JWTs whose ``exp`` comes from the simulator's clock, so
a test moves a FakeClock past ``exp`` and sees the documented expiry answer:
``{"errors":[{"code":401,"message":"JWT expired at ..."}],"success":false}``.
Product fields beyond ``variants[].id`` and ``variants[].stock[].stockTotal``
follow the documented shape of sibling endpoints (barcodes as
``[{"value", "isDefault", "type"}]``, ``stockAvailable``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from aiohttp import web

from stocksyncd.clock import SYSTEM_CLOCK, Clock
from stocksyncd.simulators.base import Simulator, json_response

PREFIX = "/api/lite"
Shape = Literal["grouped", "single", "mixed"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(message: str, code: int = 401) -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message}], "success": False}


class Kak2cSimulator(Simulator):
    """Products with variants; ``products`` is the exact JSON served, in order."""

    api = "kak2c"

    def __init__(
        self,
        *,
        login: str = "user@example.com",
        password: str = "secret",
        clock: Clock = SYSTEM_CLOCK,
        latency: float = 0.0,
        token_ttl: float = 14400.0,
        expired_status: int = 401,
    ) -> None:
        self.login = login
        self.password = password
        self.token_ttl = token_ttl
        self.expired_status = expired_status  # the doc only says "non-2xx"; tests vary it
        # Kak2c documents no page-size cap; a test sets one to see the client cope.
        self.max_page_size: int | None = None
        self.products: list[dict[str, Any]] = []
        self.variants: dict[str, dict[str, Any]] = {}  # variant id -> the served dict
        self.logins = 0
        self.min_jti = 0  # tokens numbered below this are refused (revocation)
        self._key = b"kak2c-simulator-signing-key"
        self._next_id = 1000
        super().__init__(clock=clock, latency=latency)

    @property
    def base_url(self) -> str:
        """The URL to configure as ``base_url``."""
        return self.url + PREFIX

    # -- tokens ----------------------------------------------------------------
    def issue_token(self, ttl: float | None = None) -> str:
        """A signed JWT valid for ``ttl`` seconds from the simulator's clock."""
        now = self.clock.time()
        header = _b64(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
        claims = {"sub": self.login, "iat": now,
                  "exp": int(now + (self.token_ttl if ttl is None else ttl)),
                  "jti": self.logins}
        payload = _b64(orjson.dumps(claims))
        signature = hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}"

    def revoke_tokens(self) -> None:
        """Refuse every token issued so far."""
        self.min_jti = self.logins + 1

    def _token_problem(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return "Full authentication is required to access this resource"
        parts = auth.removeprefix("Bearer ").split(".")
        if len(parts) != 3:
            return "JWT strings must contain exactly 2 period characters"
        expected = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(_b64(expected), parts[2]):
            return "JWT signature does not match locally computed signature"
        claims = orjson.loads(_unb64(parts[1]))
        now = self.clock.time()
        if claims["jti"] < self.min_jti:
            return "JWT has been revoked"
        if now >= claims["exp"]:
            diff = int((now - claims["exp"]) * 1000)
            return (f"JWT expired at {_iso(claims['exp'])}. Current time: {_iso(now)}, a "
                    f"difference of {diff} milliseconds.  Allowed clock skew: 0 milliseconds.")
        return None

    # -- data ------------------------------------------------------------------
    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def make_variant(
        self, barcode: str | None, stock: Any = 0, *, available: Any = None,
        id: str | None = None,
    ) -> dict[str, Any]:
        """A variant dict in the served shape (not yet added)."""
        vid = id or self._new_id()
        barcodes = ([{"value": barcode, "isDefault": True, "type": "COMMON"}]
                    if barcode is not None else [])
        return {"id": vid, "barcodes": barcodes,
                "stock": [{"stockTotal": stock,
                           "stockAvailable": stock if available is None else available}]}

    def add_product(
        self, variants: Sequence[dict[str, Any]], *, article: str | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Add a product holding ``variants`` (dicts from ``make_variant``)."""
        pid = self._new_id()
        product = {"id": pid, "article": article or f"ART-{pid}",
                   "shortName": name or f"Product {pid}", "variants": list(variants)}
        self.products.append(product)
        for variant in variants:
            self.variants[str(variant["id"])] = variant
        return product

    def add_item(self, barcode: str | None, stock: Any = 0) -> dict[str, Any]:
        """"One variant = one product": add a product with a single variant; returns it."""
        variant = self.make_variant(barcode, stock)
        self.add_product([variant])
        return variant

    def set_stock(self, variant_id: str, total: Any, available: Any = None) -> None:
        """Replace a variant's stock."""
        self.variants[variant_id]["stock"] = [
            {"stockTotal": total, "stockAvailable": total if available is None else available}
        ]

    def by_barcode(self, barcode: str) -> dict[str, Any]:
        """The first variant carrying ``barcode``."""
        return next(v for v in self.variants.values()
                    if any(b.get("value") == barcode for b in v.get("barcodes") or []))

    def catalogue(
        self,
        n: int,
        seed: int = 0,
        *,
        keys: Sequence[str] | None = None,
        shape: Shape = "mixed",
        max_variants: int = 5,
        max_stock: int = 30,
    ) -> list[str]:
        """Add ``n`` variants deterministically; returns their barcodes in order.

        ``keys`` supplies barcodes to use first (e.g. an InSales catalogue's
        barcodes, so the two overlap); the rest are generated EAN-13-like digits.
        ``shape``: ``grouped`` (several variants per product), ``single`` (one
        variant per product) or ``mixed`` (half and half).
        """
        rng = random.Random(seed)
        given = list(keys or [])
        out: list[str] = []
        i = 0
        while i < n:
            single = shape == "single" or (shape == "mixed" and rng.random() < 0.5)
            size = 1 if single else min(n - i, rng.randint(2, max(2, max_variants)))
            variants = []
            for _ in range(size):
                barcode = given[i] if i < len(given) else f"46{seed % 1000:03d}{i:08d}"
                variants.append(self.make_variant(barcode, rng.randint(0, max_stock)))
                out.append(barcode)
                i += 1
            self.add_product(variants)
        return out

    # -- HTTP ------------------------------------------------------------------
    def setup_routes(self, app: web.Application) -> None:
        """Login, account info and products."""
        app.router.add_post(PREFIX + "/auth", self._auth)
        app.router.add_get(PREFIX + "/account_info", self._account_info)
        app.router.add_get(PREFIX + "/products", self._products)

    def _answer(self, request: web.Request, data: Any, status: int = 200) -> web.Response:
        gz = "gzip" in request.headers.get("Accept-Encoding", "").lower()
        return json_response(data, status=status, gzip_body=gz)

    async def _auth(self, request: web.Request) -> web.StreamResponse:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self._answer(request, _error("Malformed JSON", 400), 400)
        if (not isinstance(body, dict) or body.get("login") != self.login
                or body.get("password") != self.password):
            return self._answer(request, _error("Bad credentials"), 401)
        self.logins += 1
        return self._answer(request, {"access_token": self.issue_token()})

    async def _account_info(self, request: web.Request) -> web.StreamResponse:
        if (problem := self._token_problem(request)) is not None:
            return self._answer(request, _error(problem), self.expired_status)
        return self._answer(request, {"login": self.login, "success": True})

    async def _products(self, request: web.Request) -> web.StreamResponse:
        if (problem := self._token_problem(request)) is not None:
            return self._answer(request, _error(problem), self.expired_status)
        try:
            page = int(request.query.get("page", "0"))
            size = int(request.query.get("size", "100"))
        except ValueError:
            return self._answer(request, _error("page and size must be numbers", 400), 400)
        if page < 0 or size < 1:
            return self._answer(request, _error("page must be >= 0 and size >= 1", 400), 400)
        if self.max_page_size is not None:
            size = min(size, self.max_page_size)
        start = page * size
        return self._answer(request, {"products": self.products[start:start + size],
                                      "recordsTotal": len(self.products)})
