"""Decoding large JSON answers into only the fields a caller reads.

Listings such as InSales' products or MoySklad's entity/product carry dozens
of fields per item that a sync never reads. A msgspec decoder typed with the
wanted fields (TypedDicts, or Structs when the caller wants objects rather
than dicts) skips the rest without building them; an answer of any other
shape is parsed in full instead, so the caller's own checks see it and
report it as before. A malformed body raises ``ValueError``, which the
transport treats as a cut-off answer and retries.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from stocksyncd.http.transport import Decoder


def selective(shape: Any, *, strict: bool = True) -> Decoder:
    """A body decoder that reads ``shape`` (TypedDicts or Structs naming the wanted fields).

    ``strict=False`` lets numbers arrive as numeric strings (msgspec's lax mode).
    """
    typed = msgspec.json.Decoder(shape, strict=strict)

    def decode(body: bytes) -> Any:
        try:
            return typed.decode(body)
        except msgspec.ValidationError:
            return orjson.loads(body)
        except msgspec.DecodeError as exc:
            raise ValueError(str(exc)) from exc

    return decode
