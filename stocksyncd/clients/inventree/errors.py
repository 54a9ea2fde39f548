"""InvenTree (Django REST Framework) error bodies turned into readable errors."""

from __future__ import annotations

from typing import Any

import orjson

from stocksyncd.errors import AuthError, FatalApiError, NotFoundError
from stocksyncd.http.transport import Response, default_check

API = "inventree"


class InvenTreeValidationError(FatalApiError):
    """HTTP 400: the server refused the data; ``fields`` maps field -> messages."""

    def __init__(self, message: str, *, status: int, fields: dict[str, list[str]]) -> None:
        super().__init__(API, message, status=status)
        self.fields = fields

    @property
    def is_duplicate(self) -> bool:
        """The row clashes with a unique constraint (same SKU, same break quantity)."""
        return any(
            "unique" in msg or "already exists" in msg
            for messages in self.fields.values()
            for msg in messages
        )


def _messages(value: Any) -> list[str]:
    if isinstance(value, list):
        return [m for item in value for m in _messages(item)]
    if isinstance(value, dict):
        return [f"{k}: {m}" for k, v in value.items() for m in _messages(v)]
    return [str(value)]


def parse_error_body(body: bytes) -> tuple[str, dict[str, list[str]]]:
    """A one-line message and the per-field messages of a DRF error body."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:200].decode("utf-8", "replace").strip()
        return (text or "(empty body)"), {}
    if isinstance(data, dict):
        if isinstance(data.get("detail"), str) and len(data) == 1:
            return data["detail"], {}
        fields = {str(k): _messages(v) for k, v in data.items()}
        general = ("non_field_errors", "detail")
        parts = [
            "; ".join(msgs) if key in general else f"{key}: {'; '.join(msgs)}"
            for key, msgs in fields.items()
        ]
        return " | ".join(parts) or "(empty error)", fields
    return "; ".join(_messages(data)) or "(empty error)", {}


def inventree_check(response: Response) -> None:
    """Classify an answer: 5xx/429 as the shared policy says, 4xx with the server's words."""
    status = response.status
    if 200 <= status < 300:
        return
    if status >= 500 or status == 429:
        default_check(response)
    message, fields = parse_error_body(response.body)
    where = response.url
    if status in (401, 403):
        what = "token refused" if status == 401 else "permission denied"
        raise AuthError(API, f"{what} (HTTP {status}) at {where}: {message}", status=status)
    if status == 404:
        raise NotFoundError(API, f"not found: {where}: {message}", status=status)
    if status == 400:
        raise InvenTreeValidationError(
            f"rejected by the server at {where}: {message}", status=status, fields=fields
        )
    raise FatalApiError(API, f"HTTP {status} at {where}: {message}", status=status)
