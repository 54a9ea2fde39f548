"""Sections of docs/benchmarks.md between HTML-comment markers, each kept by its own command."""

from __future__ import annotations


def marked(text: str, begin: str, end: str) -> str | None:
    """What ``text`` holds between ``begin`` and ``end`` (markers excluded), or None."""
    if begin in text and end in text:
        return text.split(begin, 1)[1].split(end, 1)[0]
    return None


def splice(text: str, begin: str, end: str, body: str) -> str:
    """``text`` with ``body`` between the markers; the marked block is appended if missing."""
    block = f"{begin}{body}{end}\n"
    if marked(text, begin, end) is None:
        return text.rstrip("\n") + "\n\n" + block
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1].lstrip("\n")
    return head + block + ("\n" + tail if tail else "")
