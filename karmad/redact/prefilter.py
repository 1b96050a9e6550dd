"""Finding the few lines that need a closer look, in one pass over raw bytes.

Most transcript lines contain no secret, and decoding every line to check would make
packaging many times slower than copying. Hyperscan matches every rule's anchors (and
the escape forms that could hide them) in a single pass at memory speed; only the lines
it flags are decoded and run through the rules, and only through the rules it flagged.
Python's `re` and substring checks were measured at a tenth of the speed needed for the
same anchor set (see `bench/redact_throughput.py`).

This module is the one seam for Hyperscan: its exceptions become `PrefilterError`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import hyperscan

from karmad.redact.rule import Anchor

_ODD_BACKSLASH = rb"(?:^|[^\\])(?:\\\\)*\\"
ESCAPED_ASCII = _ODD_BACKSLASH + rb"(?:/|u00[2-7][0-9a-fA-F])"
"""`\\/` and `\\u0041`-style escapes of printable ASCII: no canonical encoder writes them,
and an anchor spelled with them would be invisible in the raw bytes."""
ESCAPED_NON_ASCII = (
    _ODD_BACKSLASH
    + rb"u(?:00[89a-fA-F][0-9a-fA-F]|0[1-9a-fA-F][0-9a-fA-F]{2}|[1-9a-fA-F][0-9a-fA-F]{3})"
)
"""`\\u00e9`-style escapes, which ASCII-only encoders write for every non-ASCII
character. Only needed when a user anchor contains non-ASCII text."""


class PrefilterError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Candidate:
    """A line to inspect: its byte span (newline included) and the rules that may match."""

    start: int
    end: int
    rules: int
    """Bit i set: rule i may match somewhere in the line."""
    hits: tuple[tuple[int, int], ...]
    """Where: (offset in the line of the last byte of a match, its rule mask), in order.
    A rule can only match in a JSON string whose raw bytes hold one of its hits."""


class Prefilter:
    """Compiled once per rule set; safe to share between threads (scratch is per thread)."""

    def __init__(self, anchors: Sequence[tuple[Anchor, int]], *, all_rules: int) -> None:
        """`anchors`: each anchor with the rule mask a match of it flags.

        `all_rules` is the mask flagged by a non-canonical escape, which may hide any
        anchor. Every pattern must be unable to match a newline, so that a match always
        lies inside the line it flags.
        """
        expressions = [a.pattern for a, _ in anchors]
        flags = [hyperscan.HS_FLAG_CASELESS if a.caseless else 0 for a, _ in anchors]
        self._masks = [mask for _, mask in anchors]
        self._all = all_rules
        try:
            self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            self._db.compile(
                expressions=expressions,
                ids=list(range(len(expressions))),
                elements=len(expressions),
                flags=[f | hyperscan.HS_FLAG_MULTILINE for f in flags],
            )
        except hyperscan.error as exc:
            raise PrefilterError(f"cannot compile the prefilter: {exc}") from None
        self._local = threading.local()

    def _scratch(self) -> hyperscan.Scratch:
        scratch: hyperscan.Scratch | None = getattr(self._local, "scratch", None)
        if scratch is None:
            try:
                scratch = hyperscan.Scratch(self._db)
            except hyperscan.error as exc:
                raise PrefilterError(f"cannot allocate prefilter scratch: {exc}") from None
            self._local.scratch = scratch
        return scratch

    def candidates(self, data: bytes, start: int = 0, end: int | None = None) -> list[Candidate]:
        """The lines of `data[start:end]` that need inspection, in order, each once.

        Offsets are into `data`; `start` must be at a line start. Scanning a range of a
        larger buffer saves copying it.
        """
        stop = len(data) if end is None else end
        if stop <= start:
            return []
        hits: dict[int, int] = {}
        masks = self._masks

        def on_match(ident: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
            hits[to] = hits.get(to, 0) | masks[ident]

        view = memoryview(data)[start:stop]
        try:
            # The extension scans any buffer; its stub only admits str and bytes.
            self._db.scan(cast(bytes, view), match_event_handler=on_match, scratch=self._scratch())
        except hyperscan.error as exc:
            raise PrefilterError(f"prefilter scan failed: {exc}") from None
        finally:
            view.release()
        if not hits:
            return []
        found: list[Candidate] = []
        line_start, line_end, mask = -1, -1, 0
        where: list[tuple[int, int]] = []
        for to in sorted(hits):
            # A match never contains a newline, so its last byte is in its line.
            last = start + to - 1
            if last >= line_end:
                if mask:
                    found.append(Candidate(line_start, line_end, mask, tuple(where)))
                line_start = data.rfind(b"\n", start, last) + 1 or start
                newline = data.find(b"\n", last, stop)
                line_end = stop if newline < 0 else newline + 1
                mask = 0
                where = []
            mask |= hits[to]
            where.append((last - line_start, hits[to]))
        found.append(Candidate(line_start, line_end, mask, tuple(where)))
        return found

    @property
    def all_rules(self) -> int:
        return self._all
