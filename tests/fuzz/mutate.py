"""Seeded mutations of upstream answers: hostile values, broken bodies, hostile statuses.

Every mutation makes an answer *malformed* (or refused), never a different
well-formed one: a job may fail or skip items on it, but must never write a
figure that differs from what the clean answer says.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import orjson

from stocksyncd.simulators.base import Fault

# Values no field of a stock answer may be read as a number or a key from.
HOSTILE: tuple[Any, ...] = (
    None, True, False, [], {}, "", " ", "1_000", "\u0661\u0662", "\uff11\uff12", "1e3",
    "0x1F", "NaN", "nan", "Infinity", "-Infinity", 1e300, -1e300, 10**20, -(10**20), 2**64,
    10**9, 1e9, -1e9, "abc", "12abc", "7,5", "\u00a07", {"a": 1}, [1], "null",
    "x" * 5000, "9" * 400, "+-3", "3.", ".5", "\u0000", "\ud7ff",
)

RETRY_AFTER = ("0", "1", "100000", "1e8", "-1", "nan", "soon", "99999999999999999999",
               "Wed, 21 Oct 2099 07:28:00 GMT", "Thu, 01 Jan 1970 00:00:00 GMT", "")

STATUSES = (400, 401, 403, 404, 405, 407, 409, 413, 415, 418, 422, 429, 500, 502, 503, 504)


def _nodes(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every value below the root."""
    found: list[tuple[Any, ...]] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            found.append((*path, key))
            found.extend(_nodes(value, (*path, key)))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found.append((*path, i))
            found.extend(_nodes(value, (*path, i)))
    return found


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        doc = doc[step]
    return doc


def mutate_document(doc: Any, rng: random.Random, *, list_edits: bool) -> Any:
    """A copy of ``doc`` with one to three values replaced or removed, and (with
    ``list_edits``, where a list item more or less is still an honest answer)
    list items repeated or dropped."""
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        nodes = _nodes(doc)
        if not nodes:
            return rng.choice(HOSTILE)
        path = rng.choice(nodes)
        parent = _parent(doc, path)
        key = path[-1]
        action = rng.random()
        if action < 0.15 and isinstance(parent, dict):
            del parent[key]
        elif action < 0.25 and isinstance(parent, list) and list_edits:
            parent.insert(key, copy.deepcopy(parent[key]))
        elif action < 0.3 and isinstance(parent, list) and list_edits:
            del parent[key]
        else:
            parent[key] = rng.choice(HOSTILE)
    return doc


def mutate_answer(clean: bytes, rng: random.Random, *, match: str, method: str = "",
                  list_edits: bool = True, cap: int = 1024 * 1024) -> tuple[str, Fault]:
    """A fault serving a malformed form of ``clean`` (or a hostile status) on ``match``.

    Returns a short description for failure messages.
    """
    times = rng.choice((1, 2, 6))  # 6 outlasts the transport's five attempts
    roll = rng.random()
    if roll < 0.55:
        doc = mutate_document(orjson.loads(clean), rng, list_edits=list_edits)
        body = json.dumps(doc).encode()  # json, not orjson: it writes 2**64 and 10**20
        return f"values {body[:1200]!r}", Fault(status=200, body=body, match=match,
                                               method=method, times=times)
    if roll < 0.7:
        broken = rng.choice((
            clean[: rng.randint(0, max(0, len(clean) - 1))],
            b"<html><body>502 Bad Gateway</body></html>",
            b"", b"null", b"{}", b"[]", b"\xff\xfe\x00garbage", b"[" * 5000,
            clean.replace(b"1", b"\xd9\xa1", 3),
        ))
        return f"body {broken[:80]!r}", Fault(status=200, body=broken, match=match,
                                              method=method, times=times)
    if roll < 0.8:
        padded = clean + b" " * (cap + 1)
        return "oversized body", Fault(status=200, body=padded, match=match, method=method,
                                       times=times)
    status = rng.choice(STATUSES)
    headers: dict[str, str] = {}
    if rng.random() < 0.6:
        headers[rng.choice(("Retry-After", "X-Lognex-Retry-After"))] = rng.choice(RETRY_AFTER)
    body = rng.choice((b"", b"<html>proxy</html>", b'{"errors": [{"code": 1049}]}',
                       b'{"errors": null}', b'{"errors": [{"code": 401}], "success": false}'))
    return (f"HTTP {status} {headers} {body!r}",
            Fault(status=status, body=body, headers=headers, match=match, method=method,
                  times=times))
