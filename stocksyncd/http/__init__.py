"""HTTP plumbing shared by every client: one retry policy, rate limiters, a transport."""

from stocksyncd.http.ratelimit import RateLimiter, WindowLimiter
from stocksyncd.http.retry import RetryPolicy, call_with_retry
from stocksyncd.http.transport import ExchangeRecord, RequestObserver, Response, Transport

__all__ = [
    "ExchangeRecord",
    "RateLimiter",
    "RequestObserver",
    "Response",
    "RetryPolicy",
    "Transport",
    "WindowLimiter",
    "call_with_retry",
]
