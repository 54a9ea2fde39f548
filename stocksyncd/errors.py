"""The exception tree every layer speaks.

Branches are named after what the caller should do with a failure (retry it,
give up on the run, skip one item), not after where it came from. Clients
translate aiohttp and vendor errors into these at one boundary.
"""

from __future__ import annotations


class StockSyncError(Exception):
    """Root of every error stocksyncd raises on purpose."""


class ConfigError(StockSyncError):
    """The configuration is invalid; the message names the key and the problem."""


class ApiError(StockSyncError):
    """An upstream API call failed."""

    def __init__(self, api: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{api}: {message}")
        self.api = api
        self.status = status
        self.detail = message


class RetriableError(ApiError):
    """Worth trying again: 429, 5xx, timeouts, resets, truncated bodies."""

    def __init__(
        self,
        api: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(api, message, status=status)
        self.retry_after = retry_after


class RateLimitedError(RetriableError):
    """The upstream asked us to slow down (429, InSales 503 with Retry-After)."""


class TransientError(RetriableError):
    """A server fault, a timeout or a broken connection."""


class InvalidResponseError(RetriableError):
    """The body could not be parsed (truncated JSON, an HTML error page)."""


class FatalApiError(ApiError):
    """Retrying will not help (most 4xx)."""


class AuthError(FatalApiError):
    """Credentials were refused."""


class NotFoundError(FatalApiError):
    """The object does not exist upstream."""


class QuotaExhaustedError(ApiError):
    """A quota (e.g. Mouser's daily calls) is used up until ``resets_at`` (epoch seconds)."""

    def __init__(self, api: str, message: str, *, resets_at: float | None = None) -> None:
        super().__init__(api, message)
        self.resets_at = resets_at


class PayloadError(StockSyncError):
    """One item of an answer is malformed; skip that item, keep the run."""


class RunAborted(StockSyncError):
    """A safety rule stopped the run before it wrote anything."""


class WriteFenced(StockSyncError):
    """This replica may not write upstream now.

    Its lease is lost or would expire before the next batch could finish, or
    the state store cannot record what the batch would change (write-ahead
    audit). The writes stop before the batch, never after it.
    """


class HoldOffError(FatalApiError):
    """The upstream is to be left alone now: it asked for a wait longer than the cap,
    or too many of its rate-limit answers opened the circuit breaker. The run fails
    at once; the next scheduled run tries again."""


class ResponseTooLargeError(FatalApiError):
    """An answer was larger than the configured cap for its API; it was not read further."""
