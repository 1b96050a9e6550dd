"""What a redaction rule is: a regex for decoded strings, anchors for raw bytes.

Each rule pairs a Python regex, run on *decoded* JSON string values (or on the raw text
of a line that is not JSON), with one or more *anchors*, prefilter patterns run on the
*raw* bytes of a line. The contract that keeps the fast path honest: whenever a rule's
regex matches inside a decoded string, one of its anchors matches inside that string's
canonical JSON encoding (as JSON.stringify or msgspec write it). Strings that use
non-canonical escapes are caught separately by the prefilter and always get every rule.
`tests/test_redact_prefilter.py` checks the contract with generated lines.

Anchors are Hyperscan syntax over bytes. Characters a JSON encoder may escape (quotes,
backslashes, control characters, anything written as a `\\uXXXX` escape) are allowed
for in them; everything else appears in the raw line exactly as decoded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

PLACEHOLDER_PREFIX = "[REDACTED:"
PLACEHOLDER_RE = re.compile(r"\[REDACTED:[a-z0-9][a-z0-9-]*\]")
KIND_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


def placeholder(kind: str) -> str:
    return f"{PLACEHOLDER_PREFIX}{kind}]"


@dataclass(frozen=True, slots=True)
class Hit:
    """One secret found in a string: the span to replace and the kind it is."""

    start: int
    end: int
    kind: str


@dataclass(frozen=True, slots=True)
class Anchor:
    """A prefilter pattern: Hyperscan syntax over the raw bytes of a line."""

    pattern: bytes
    caseless: bool = False


Classifier = Callable[[re.Match[str], str], "Hit | None"]
"""Decides on one match; gets the original text, as the match may be on a lowercased copy."""
Finder = Callable[[str], Iterator["Hit"]]


@dataclass(frozen=True, slots=True)
class Rule:
    """A redaction rule.

    `pattern` finds candidates; the span replaced is the `secret` group when the pattern
    has one (so names, users and hosts around a secret stay readable), else the whole
    match. `classify`, when set, decides per match (and may name the kind, for rules
    that produce more than one).
    """

    kinds: tuple[str, ...]
    pattern: re.Pattern[str]
    anchors: tuple[Anchor, ...]
    classify: Classifier | None = None
    finder: Finder | None = field(default=None)
    """Replaces the pattern search entirely, for rules a single regex cannot find fast."""
    any_case: re.Pattern[str] | None = field(default=None)
    """For a case-insensitive rule: `pattern` is written in lowercase and searched in
    lowercased ASCII text (several times faster than `re.IGNORECASE`); this is the same
    pattern with IGNORECASE (ASCII only), for text that is not ASCII."""

    def hits(self, text: str) -> list[Hit]:
        """Secrets this rule finds in `text` (a list: most calls find none, cheaply)."""
        if self.finder is not None:
            return list(self.finder(text))
        haystack, pattern = text, self.pattern
        if self.any_case is not None:
            # Only ASCII text is lowercased: `str.lower` maps some other characters to
            # ASCII letters (KELVIN SIGN to `k`) or to two characters (`İ`).
            if text.isascii():
                haystack = text.lower()
            else:
                pattern = self.any_case
        match = pattern.search(haystack)
        if match is None:
            return []
        found: list[Hit] = []
        classify = self.classify
        if classify is None:
            kind = self.kinds[0]
            group = "secret" if "secret" in pattern.groupindex else 0
            while match is not None:
                start, end = match.span(group)
                if end > start:
                    found.append(Hit(start, end, kind))
                match = pattern.search(haystack, max(match.end(), match.start() + 1))
            return found
        while match is not None:
            hit = classify(match, text)
            if hit is not None and hit.end > hit.start:
                found.append(hit)
                pos = max(match.end(), match.start() + 1)
            else:
                # A rejected candidate must not swallow the start of a real one:
                # in `deploy: apiKey: x`, `apiKey: x` begins inside the first match.
                pos = match.start() + 1
            match = pattern.search(haystack, pos)
        return found


# ---- raw-byte building blocks for anchors

RAW_QUOTE = rb"(?:\*\*|\\{0,3}[\"'`])?"
"""An optional quote closing a key name, possibly escaped once or twice."""


def raw_anchor(pattern: bytes, *, caseless: bool = False) -> Anchor:
    return Anchor(pattern, caseless)


def any_case_rule(
    kinds: tuple[str, ...],
    regex: str,
    anchors: tuple[Anchor, ...],
    classify: Classifier | None = None,
) -> Rule:
    """A case-insensitive rule, its regex written in lowercase (see `Rule.any_case`)."""
    return Rule(
        kinds,
        re.compile(regex, re.ASCII),
        anchors,
        classify=classify,
        any_case=re.compile(regex, re.ASCII | re.IGNORECASE),
    )


def span_text(match: re.Match[str], text: str, group: str) -> str:
    return text[match.start(group) : match.end(group)]
