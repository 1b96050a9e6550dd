"""The redactor: lines of JSON in, the same lines with secrets replaced out.

Every string value inside a line's JSON goes through the rules; the line stays valid
JSON with the same structure, only the redacted strings differ, each secret replaced by
`[REDACTED:<kind>]`, and every other byte of the line stays as it was. Object keys are
never changed (in transcripts they are field names and file paths, and rewriting one
could merge two entries), but a key that names a secret (`"password"`, `"apiKey"`)
makes its string value one.

A line that is not valid JSON is redacted as text, with the same rules, and reported as
such; it stays as invalid as it was.

Fast path: the prefilter flags the few lines worth a look, and in them the strings and
rules worth running; everything else is copied without being decoded.
`redact_line(..., prefilter=False)` looks at every string with every rule: the
reference the fast path is tested against.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from karmad import codec
from karmad.redact.context import ASSIGNMENT, not_a_secret, secret_name_kind
from karmad.redact.custom import UserPattern, check_disable, raw_safe_run, user_rules
from karmad.redact.prefilter import ESCAPED_ASCII, ESCAPED_NON_ASCII, Prefilter
from karmad.redact.report import LineReport, Redaction, Tally
from karmad.redact.rule import PLACEHOLDER_PREFIX, PLACEHOLDER_RE, Anchor, Rule, placeholder
from karmad.redact.rules import BUILTIN_RULES, RULES_VERSION

CHUNK_SIZE = 1 << 20
MIN_MATCH = 3
"""No rule matches fewer characters (user literals and anchors have at least 3)."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STRING_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
"""A JSON string token. Searched from the start of a valid JSON line, it finds exactly
the line's strings: outside them a JSON text has no quote."""
_STRUCTURE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]')
_JSON_SPACE = frozenset(b" \t\r\n")
_COLON = ord(":")
_STR = codec.Decoder(str)


def _json_paths(body: bytes, starts: Sequence[int]) -> tuple[str, ...]:
    """The JSON paths (`$.message.content[1].input.command`) of the strings at `starts`."""
    wanted = set(starts)
    paths: list[str] = []
    frames: list[list[Any]] = []  # [is_object, key or index]
    last_string = b'""'
    for token in _STRUCTURE.finditer(body):
        first = token.group()[:1]
        if first == b'"':
            if token.start() in wanted:
                paths.append(_format_path(frames))
                if len(paths) == len(wanted):
                    break
            last_string = token.group()
        elif first == b"{":
            frames.append([True, ""])
        elif first == b"[":
            frames.append([False, 0])
        elif first in (b"}", b"]"):
            frames.pop()
        elif first == b":":
            frames[-1][1] = _STR.decode(last_string)
        elif first == b"," and not frames[-1][0]:
            frames[-1][1] += 1
    return tuple(paths)


def _format_path(frames: list[list[Any]]) -> str:
    parts = ["$"]
    for is_object, key in frames:
        if not is_object:
            parts.append(f"[{key}]")
        elif _IDENTIFIER.fullmatch(key):
            parts.append(f".{key}")
        else:
            parts.append(f"[{codec.encode_json(key).decode()}]")
    return "".join(parts)


@dataclass(slots=True)
class _StringResult:
    text: str
    counts: Counter[str]


class Redactor:
    """A compiled rule set. Thread-safe; build one per configuration and keep it."""

    def __init__(
        self,
        *,
        disable: Iterable[str] = (),
        patterns: Sequence[UserPattern] = (),
        literals: Sequence[str] = (),
    ) -> None:
        """Raises `custom.RuleError` for an unknown kind or an unusable user rule."""
        disabled = frozenset(disable)
        check_disable(disabled)
        builtin = [r for r in BUILTIN_RULES if set(r.kinds) - disabled]
        rules = (*builtin, *user_rules(patterns, literals))
        self._rules: tuple[Rule, ...] = rules
        self._priority = {id(rule): i for i, rule in enumerate(rules)}
        self._disabled = disabled
        self._all = (1 << len(rules)) - 1
        self._key_names = ASSIGNMENT in builtin
        self._assignment_bit = 1 << rules.index(ASSIGNMENT) if self._key_names else 0
        self._rules_by_mask: dict[int, list[Rule]] = {}
        anchors: list[tuple[Anchor, int]] = [
            (anchor, 1 << i) for i, rule in enumerate(rules) for anchor in rule.anchors
        ]
        anchors.append((Anchor(ESCAPED_ASCII), self._all))
        user_anchor_text = [*(raw_safe_run(lit) for lit in literals)]
        user_anchor_text += [a for p in patterns for a in p.anchors] + [p.regex for p in patterns]
        if any(not text.isascii() for text in user_anchor_text):
            anchors.append((Anchor(ESCAPED_NON_ASCII), self._all))
        self._prefilter = Prefilter(anchors, all_rules=self._all)
        self.kinds: tuple[str, ...] = tuple(
            dict.fromkeys(k for r in rules for k in r.kinds if k not in disabled)
        )
        """The kinds this redactor can produce."""

    rules_version = RULES_VERSION
    """Version of the built-in rules; recorded in manifests."""

    # ---- strings

    def _redact_string(
        self, text: str, rules: Sequence[Rule], key_kind: str | None
    ) -> _StringResult | None:
        """Replace until nothing matches, so that redacting the output changes nothing.

        One pass is almost always enough. A second finds what a replacement uncovered:
        a rule that needs a word boundary before its match sees one once the word in
        front has become a placeholder. Every pass turns text into placeholders and no
        match may touch a placeholder, so the loop ends.
        """
        result = self._redact_once(text, rules, key_kind)
        if result is None:
            return None
        while (again := self._redact_once(result.text, rules, None)) is not None:
            result.text = again.text
            result.counts.update(again.counts)
        return result

    def _redact_once(
        self, text: str, rules: Sequence[Rule], key_kind: str | None
    ) -> _StringResult | None:
        found: list[tuple[int, int, int, str]] = []
        if key_kind is not None and not not_a_secret(text):
            found.append((0, len(text), self._priority[id(ASSIGNMENT)], key_kind))
        if len(text) >= MIN_MATCH:
            for rule in rules:
                hits = rule.hits(text)
                if hits:
                    priority = self._priority[id(rule)]
                    found.extend((h.start, h.end, priority, h.kind) for h in hits)
        if not found:
            return None
        disabled = self._disabled
        if disabled:
            found = [f for f in found if f[3] not in disabled]
        if PLACEHOLDER_PREFIX in text:
            existing = [m.span() for m in PLACEHOLDER_RE.finditer(text)]
            found = [f for f in found if not any(f[0] < e and s < f[1] for s, e in existing)]
        if not found:
            return None
        found.sort()
        # Overlapping matches become one replacement named by the highest-priority rule
        # among them: the union of every rule's opinion is what leaves.
        merged: list[list[Any]] = []
        for start, end, priority, kind in found:
            if merged and start < merged[-1][1]:
                last = merged[-1]
                last[1] = max(last[1], end)
                if priority < last[2]:
                    last[2], last[3] = priority, kind
            else:
                merged.append([start, end, priority, kind])
        parts: list[str] = []
        counts: Counter[str] = Counter()
        pos = 0
        for start, end, _priority, kind in merged:
            parts.append(text[pos:start])
            parts.append(placeholder(kind))
            counts[kind] += 1
            pos = end
        parts.append(text[pos:])
        return _StringResult("".join(parts), counts)

    def redact_string(self, text: str) -> tuple[str, Counter[str]]:
        """Apply every rule to one string (for previews and single values)."""
        result = self._redact_string(text, self._rules, None)
        if result is None:
            return text, Counter()
        return result.text, result.counts

    # ---- lines

    def _rules_in(self, mask: int) -> list[Rule]:
        rules = self._rules_by_mask.get(mask)
        if rules is None:
            rules = [rule for i, rule in enumerate(self._rules) if mask >> i & 1]
            self._rules_by_mask[mask] = rules
        return rules

    def _key_kind(self, raw_key: bytes) -> str | None:
        """The secret kind a raw JSON key token names, if any."""
        try:
            key = _STR.decode(raw_key)
        except codec.InvalidData:
            return None
        return secret_name_kind(key)

    def _inspect(
        self,
        line: bytes,
        mask: int,
        hits: Sequence[tuple[int, int]] | None,
        number: int | None,
        offset: int,
        *,
        explain: bool = False,
    ) -> tuple[bytes, LineReport | None]:
        """Redact one line. `hits` says which bytes the prefilter flagged (None: all).

        The line's JSON string tokens are found in the raw bytes, and only the values
        that can hold a secret (a flagged byte inside, or a flagged key naming a secret
        before them) are decoded, redacted and re-encoded in place. Everything else,
        keys, numbers, spacing and escapes, is left exactly as it was. `explain` fills
        in the JSON paths of the redacted strings.
        """
        if line.endswith(b"\n"):
            body, end = (line[:-2], b"\r\n") if line.endswith(b"\r\n") else (line[:-1], b"\n")
        else:
            body, end = line, b""
        try:
            codec.decode_any(body)
        except codec.InvalidData:
            return self._inspect_text(line, body, end, mask, number, offset)
        spans = [token.span() for token in _STRING_TOKEN.finditer(body)]
        targets = self._targets(body, spans, mask, hits)
        parts: list[bytes] = []
        counts: Counter[str] = Counter()
        changed: list[int] = []
        pos = 0
        for index in sorted(targets):
            start, stop = spans[index]
            token_mask, key_index = targets[index]
            key_kind = None
            if key_index is not None and self._key_names:
                key_kind = self._key_kind(body[slice(*spans[key_index])])
            if not token_mask and key_kind is None:
                continue
            result = self._redact_string(
                _STR.decode(body[start:stop]), self._rules_in(token_mask), key_kind
            )
            if result is None:
                continue
            parts.append(body[pos:start])
            parts.append(codec.encode_json(result.text))
            pos = stop
            counts.update(result.counts)
            changed.append(start)
        if not counts:
            return line, None
        parts.append(body[pos:])
        parts.append(end)
        paths = _json_paths(body, changed) if explain else ()
        return b"".join(parts), LineReport(number, offset, dict(counts), paths, json=True)

    def _targets(
        self,
        body: bytes,
        spans: list[tuple[int, int]],
        mask: int,
        hits: Sequence[tuple[int, int]] | None,
    ) -> dict[int, list[Any]]:
        """The value tokens to inspect: index -> [rule mask, index of its key or None].

        A key token (followed by `:`) is never a target, but a flagged key, or a flag on
        the `:` after it (where an anchor such as `apiKey":` ends), makes its string
        value one, to be checked against the key's name.
        """
        size = len(body)

        def skip_space(at: int) -> int:
            while at < size and body[at] in _JSON_SPACE:
                at += 1
            return at

        def is_key(index: int) -> bool:
            after = skip_space(spans[index][1])
            return after < size and body[after] == _COLON

        def value_after(key: int) -> int | None:
            """The string value of key token `key`, if its value is a string."""
            after = skip_space(skip_space(spans[key][1]) + 1)  # past the colon
            if key + 1 < len(spans) and spans[key + 1][0] == after:
                return key + 1
            return None

        targets: dict[int, list[Any]] = {}
        if hits is None:
            for index in range(len(spans)):
                if is_key(index):
                    value = value_after(index)
                    if value is not None:
                        targets.setdefault(value, [mask, None])[1] = index
                else:
                    targets.setdefault(index, [mask, None])
            return targets
        starts = [start for start, _ in spans]
        for where, bits in hits:
            index = bisect.bisect_right(starts, where) - 1
            if index < 0:
                continue
            inside = where < spans[index][1]
            if is_key(index):
                value = value_after(index)
                if value is not None:
                    targets.setdefault(value, [0, None])[1] = index
            elif inside:
                targets.setdefault(index, [0, None])[0] |= bits
        return targets

    def _inspect_text(
        self, line: bytes, body: bytes, end: bytes, mask: int, number: int | None, offset: int
    ) -> tuple[bytes, LineReport | None]:
        text = body.decode("utf-8", "surrogateescape")
        result = self._redact_string(text, self._rules_in(mask), None)
        if result is None:
            return line, None
        report = LineReport(number, offset, dict(result.counts), ("$",), json=False)
        return result.text.encode("utf-8", "surrogateescape") + end, report

    def redact_line(
        self, line: bytes, *, prefilter: bool = True
    ) -> tuple[bytes, LineReport | None]:
        """Redact one line (with or without its newline); the report is None if unchanged.

        `prefilter=False` inspects the line whatever the prefilter says: the slow,
        obviously complete path that the fast path must always agree with.
        """
        if not prefilter:
            return self._inspect(line, self._all, None, 0, 0, explain=True)
        candidates = self._prefilter.candidates(line)
        if not candidates:
            return line, None
        if len(candidates) == 1:
            candidate = candidates[0]
            return self._inspect(line, candidate.rules, candidate.hits, 0, 0, explain=True)
        # not one line after all: inspect all of it with every rule flagged anywhere
        mask = 0
        for candidate in candidates:
            mask |= candidate.rules
        return self._inspect(line, mask, None, 0, 0, explain=True)

    def redact_lines(self, lines: Iterable[bytes]) -> Iterator[tuple[bytes, LineReport | None]]:
        """Line by line, for previews; `redact_chunk` is the fast way through many lines."""
        offset = 0
        for number, line in enumerate(lines):
            out, report = self.redact_line(line)
            if report is not None:
                report = LineReport(number, offset, report.counts, report.paths, json=report.json)
            yield out, report
            offset += len(line)

    # ---- chunks and streams

    def _region(
        self, buf: bytes, start: int, end: int, *, explain: bool = False
    ) -> tuple[list[bytes | memoryview], list[LineReport]]:
        """Redact the whole lines of `buf[start:end]` without copying the clean parts.

        Returns the output as pieces (views into `buf` between redacted lines) and the
        reports, offsets relative to `start`. No reports: the region is unchanged.
        """
        parts: list[bytes | memoryview] = []
        reports: list[LineReport] = []
        pos = start
        view = memoryview(buf)
        for candidate in self._prefilter.candidates(buf, start, end):
            line = buf[candidate.start : candidate.end]
            out, report = self._inspect(
                line,
                candidate.rules,
                candidate.hits,
                None,
                candidate.start - start,
                explain=explain,
            )
            if report is None:
                continue
            parts.append(view[pos : candidate.start])
            parts.append(out)
            reports.append(report)
            pos = candidate.end
        if reports:
            parts.append(view[pos:end])
        return parts, reports

    def redact_chunk(self, data: bytes, *, explain: bool = False) -> Redaction:
        """Redact a run of lines (normally complete lines, each ending in a newline).

        When nothing is found the returned `data` is the input object itself. `explain`
        gives the reports line numbers and JSON paths (for previews; it costs a second
        look at each redacted line and a count of the newlines before it).
        """
        parts, reports = self._region(data, 0, len(data), explain=explain)
        if not reports:
            return Redaction(data, len(data), [])
        if explain:
            reports = [
                LineReport(n, r.offset, r.counts, r.paths, r.json)
                for n, r in _numbered(data, 0, reports, 0)
            ]
        return Redaction(b"".join(parts), len(data), reports)

    def redact_stream(
        self,
        src: IO[bytes],
        dst: IO[bytes],
        *,
        chunk_size: int = CHUNK_SIZE,
        on_report: Callable[[LineReport], None] | None = None,
    ) -> Tally:
        """Copy `src` to `dst` redacted, reading `chunk_size` bytes at a time.

        Memory stays around `chunk_size` plus the longest line. Clean stretches are
        written straight from the read buffer. A last line without a newline is redacted
        and written like the others; callers that must not pass a half-written line (the
        packager) give only complete lines. `on_report` sees each redacted line's report,
        numbered and placed from the start of `src`.
        """
        stream = _Stream(self, dst, on_report)
        carry: list[bytes] = []
        while block := src.read(chunk_size):
            first = block.find(b"\n")
            if first < 0:
                carry.append(block)
                continue
            begin = 0
            if carry:
                # The line that straddles two reads: the only bytes copied on the way.
                carry.append(block[: first + 1])
                joined = b"".join(carry)
                stream.write(joined, 0, len(joined))
                carry = []
                begin = first + 1
            last = block.rfind(b"\n") + 1
            stream.write(block, begin, last)
            if last < len(block):
                carry.append(block[last:])
        if carry:
            joined = b"".join(carry)
            stream.write(joined, 0, len(joined))
        return stream.tally


def _numbered(
    buf: bytes, start: int, reports: list[LineReport], first_line: int
) -> Iterator[tuple[int, LineReport]]:
    """Each report with its line number, counting newlines only as far as needed."""
    line, counted = first_line, start
    for r in reports:
        line += buf.count(b"\n", counted, start + r.offset)
        counted = start + r.offset
        yield line, r


class _Stream:
    """The writing side of `redact_stream`: output, counts, and positions so far."""

    def __init__(
        self,
        redactor: Redactor,
        dst: IO[bytes],
        on_report: Callable[[LineReport], None] | None,
    ) -> None:
        self.redactor = redactor
        self.dst = dst
        self.on_report = on_report
        self.tally = Tally()
        self.lines = 0

    def write(self, buf: bytes, start: int, end: int) -> None:
        if end <= start:
            return
        explain = self.on_report is not None
        parts, reports = self.redactor._region(buf, start, end, explain=explain)
        if not reports:
            with memoryview(buf) as view:
                self.dst.write(view[start:end])
            out = end - start
        else:
            out = 0
            for part in parts:
                self.dst.write(part)
                out += len(part)
        if self.on_report is not None:
            offset = self.tally.bytes_in
            for n, r in _numbered(buf, start, reports, self.lines):
                self.on_report(LineReport(n, r.offset + offset, r.counts, r.paths, r.json))
            self.lines += buf.count(b"\n", start, end)
        self.tally._add(end - start, out, reports)
