"""What redaction reports: per line, per chunk, and summed up per session.

Never the secret itself, not even a hash of it: only kinds, counts and places.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class LineReport:
    """What was redacted in one line: never the secret, only where and what kind."""

    line: int | None
    """0-based line number within the chunk or stream; None unless asked for (counting
    newlines costs as much as the prefilter itself)."""
    offset: int
    """Byte offset of the line in the input chunk or stream."""
    counts: dict[str, int]
    """Replacements per kind."""
    paths: tuple[str, ...]
    """JSON paths of the strings that changed (`$` for a line redacted as text); empty
    unless the caller asked for an explanation (previews do)."""
    json: bool
    """False when the line is not JSON and was redacted as text."""


@dataclass(slots=True)
class Tally:
    """Counts accumulated over chunks: what the packager keeps per session."""

    lines_redacted: int = 0
    text_lines: int = 0
    """Redacted lines that were not JSON (redacted as text)."""
    bytes_in: int = 0
    bytes_out: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def replacements(self) -> int:
        return sum(self.counts.values())

    def add(self, result: Redaction) -> None:
        self._add(result.bytes_in, len(result.data), result.reports)

    def _add(self, bytes_in: int, bytes_out: int, reports: Iterable[LineReport]) -> None:
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        for report in reports:
            self.lines_redacted += 1
            self.text_lines += not report.json
            self.counts.update(report.counts)

    def merge(self, other: Tally) -> None:
        self.lines_redacted += other.lines_redacted
        self.text_lines += other.text_lines
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out
        self.counts.update(other.counts)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tally:
        """The inverse of `as_dict`, to go on counting from a stored manifest."""
        return cls(
            lines_redacted=int(data.get("lines_redacted", 0)),
            text_lines=int(data.get("text_lines", 0)),
            bytes_in=int(data.get("bytes_in", 0)),
            bytes_out=int(data.get("bytes_out", 0)),
            counts=Counter({str(k): int(v) for k, v in dict(data.get("counts", {})).items()}),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines_redacted": self.lines_redacted,
            "text_lines": self.text_lines,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "counts": dict(sorted(self.counts.items())),
        }


@dataclass(frozen=True, slots=True)
class Redaction:
    """A redacted chunk of lines."""

    data: bytes
    """The output; the very input object when nothing was redacted."""
    bytes_in: int
    reports: list[LineReport]

    @property
    def counts(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for report in self.reports:
            total.update(report.counts)
        return total
