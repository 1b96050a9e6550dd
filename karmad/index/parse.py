"""The aggregates pass: usage rows and facts from a range of transcript lines.

Tolerant by design. A chunk of complete lines is decoded in one call; if any line in it
does not fit, the chunk is redone line by line so that only that line is affected:
- valid JSON of an unexpected shape keeps every field that does fit (the misfits are
  counted as unknown fields), so a new Claude Code version never costs a usage row;
- invalid UTF-8 and the unpaired surrogate escapes JavaScript writes for broken strings
  are repaired (and recorded) rather than losing the line;
- anything else (not JSON, truncated, NUL bytes) is recorded with its line number and
  reason, and skipped.

Everything here is pure computation on bytes, so it runs equally in the daemon's worker
thread or in a parser process.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

import msgspec

from karmad import codec
from karmad.index.facts import MAX_VALUES, PROMPT_CHARS, Facts
from karmad.index.reader import Chunk, Overlong
from karmad.index.records import KNOWN_TYPES, NON_PROMPT_PREFIXES, Message, Record, Usage
from karmad.index.repeats import Seen, error_key, prompt_key, tool_key
from karmad.index.usage import UsageRow, kept, line_key, request_key, split_cache_writes

_T = TypeVar("_T")

MAX_ERRORS_KEPT: Final = 50
"""Errors stored per file and pass; beyond that they are only counted."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
_RECORDS: Final = codec.Decoder(Record)
_ESCAPE: Final = re.compile(rb"\\+u[dD][89a-fA-F][0-9a-fA-F]{2}")


class LineError(msgspec.Struct, array_like=True):
    line: int
    """1-based line number."""
    offset: int
    reason: str
    sample: str
    repaired: bool = False
    """The line was used after a repair (its data is in the index)."""


class UsageDelta(msgspec.Struct):
    """What a byte range of one file contributes to its session."""

    facts: Facts
    usage: dict[int, UsageRow]
    records: int
    errors: list[LineError]
    bad_lines: int
    """Lines skipped (all of them, also beyond `errors`)."""
    seen: Seen = msgspec.field(default_factory=Seen)
    """The records counted, by identity: the writer drops those the session holds."""


def canonical_ts(value: str) -> str:
    """Any ISO-8601 timestamp as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC), or "" if unreadable.

    Claude Code writes exactly that form, which sorts as text; anything else is
    normalised here so that comparisons stay correct.
    """
    if len(value) == 24 and value[-1] == "Z" and value[10] == "T":
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def ts_ms(value: str) -> int:
    """Milliseconds since the epoch of a canonical timestamp; 0 for "" or nonsense.

    `canonical_ts` takes text of the canonical shape as it is (the common case, and the
    hot path), so a line may still carry something like `2026-13-45T99:…Z`.
    """
    if not value:
        return 0
    try:
        return (datetime.fromisoformat(value) - _EPOCH) // _MS
    except ValueError:
        return 0


def fix_surrogates(line: bytes) -> bytes | None:
    """Replace unpaired UTF-16 surrogate escapes with U+FFFD; None if there are none.

    JavaScript strings may hold half of a surrogate pair (a string cut in the middle of
    an emoji) and `JSON.stringify` writes it as a `\\udXXX` escape, which strict JSON
    decoders refuse.
    """
    matches = [m for m in _ESCAPE.finditer(line) if (len(m.group()) - 5) % 2 == 1]
    if not matches:
        return None
    out: list[bytes] = []
    last = 0
    changed = False
    i = 0
    while i < len(matches):
        m = matches[i]
        unit = int(m.group()[-4:], 16)
        start = m.end() - 6
        if unit <= 0xDBFF and i + 1 < len(matches):
            nxt = matches[i + 1]
            if (
                nxt.end() - 6 == m.end()
                and len(nxt.group()) == 6
                and int(nxt.group()[-4:], 16) >= 0xDC00
            ):
                i += 2
                continue
        out.append(line[last:start])
        out.append(b"\\ufffd")
        last = m.end()
        changed = True
        i += 1
    if not changed:
        return None
    out.append(line[last:])
    return b"".join(out)


def decode_repaired(decoder: codec.Decoder[_T], raw: bytes) -> _T | None:
    """Decode a line, repairing invalid UTF-8 and broken surrogates as the aggregates
    pass does (it records the repair); None when the line is unusable anyway."""
    data = raw
    for _ in range(3):
        try:
            return decoder.decode(data)
        except codec.MalformedData as exc:
            fixed = fix_surrogates(data)
            if fixed is not None:
                data = fixed
            elif isinstance(exc, codec.InvalidUtf8):
                data = data.decode("utf-8", "replace").encode()
            else:
                return None
        except codec.InvalidData:
            return None
        except Exception:  # see `unreadable`
            return None
    return None


def unreadable(exc: Exception) -> str:
    """The reason recorded for a line whose decoding raised something other than
    `codec.InvalidData` (walking a very deep value here raises RecursionError, which the
    codec turns into `TooDeep` when it decodes): whatever a decoder does with one line,
    it costs that line only."""
    if isinstance(exc, RecursionError):
        return "malformed: nested too deep to decode"  # as the codec says it
    return f"unreadable: {type(exc).__name__}: {exc}"


def _parse_path(path: str) -> list[str | int]:
    """`$.message.content[0].input` -> ["message", "content", 0, "input"]."""
    tokens: list[str | int] = []
    for part in re.findall(r"\.([^.\[\]]+)|\[(\d+)\]", path.removeprefix("$")):
        key, index = part
        tokens.append(int(index) if index else key)
    return tokens


def _drop(obj: Any, path: list[str | int]) -> bool:
    """Remove the value at `path` from nested dicts/lists; False if it is not there."""
    if not path:
        return False
    parent = obj
    for token in path[:-1]:
        try:
            parent = parent[token]
        except (KeyError, IndexError, TypeError):
            return False
    last = path[-1]
    if isinstance(parent, dict) and isinstance(last, str) and last in parent:
        del parent[last]
        return True
    if isinstance(parent, list) and isinstance(last, int) and last < len(parent):
        del parent[last]
        return True
    return False


def lenient_record(obj: dict[str, Any]) -> tuple[Record, list[str]]:
    """The record with every field that fits, and the paths of those that did not."""
    dropped: list[str] = []
    for _ in range(32):
        try:
            return codec.convert(obj, Record), dropped
        except codec.InvalidData as exc:
            path = _parse_path(exc.path)
            if not _drop(obj, path):
                break
            dropped.append(".".join(str(p) for p in path if isinstance(p, str)))
    kind = obj.get("type")
    return Record(type=kind if isinstance(kind, str) else ""), dropped


def _squeezed(text: str, limit: int) -> str:
    """The first `limit` characters of `text` with runs of whitespace made one space.

    Prompts can be pasted files of megabytes; splitting them whole for 240 characters
    cost more than the rest of their line. The words of a prefix give the same start,
    unless it has too few (then the whole text is split); its last word, maybe cut, is
    left out.
    """
    if len(text) > limit * 4:
        words = text[: limit * 4].split()[:-1]
        head = " ".join(words)
        if len(head) >= limit:
            return head[:limit]
    return " ".join(text.split())[:limit]


_REMEMBERED: Final = 32
"""Distinct clue tuples a parser remembers having taken (see `_clues`)."""


def _clues(
    values: tuple[str | None, ...],
    targets: tuple[list[str], ...],
    taken: set[tuple[str | None, ...]],
) -> None:
    """Add each value not seen yet to its list of distinct values (cwds, branches...).

    Taking the same values twice changes nothing, so the tuples taken are remembered
    (up to `_REMEMBERED`) and the caller skips them: lines alternate between a few
    combinations (a field only some kinds of line carry), which then cost a set lookup.
    """
    if len(taken) < _REMEMBERED:
        taken.add(values)
    for value, target in zip(values, targets, strict=True):
        if value and value not in target and len(target) < MAX_VALUES:
            target.append(value)


def _utf8(line: bytes) -> bool:
    if line.isascii():
        return True
    try:
        line.decode()
    except UnicodeDecodeError:
        return False
    return True


def _sample(line: bytes) -> str:
    return line[:120].decode("utf-8", "replace")


class UsageParser:
    """Accumulates the aggregates of consecutive chunks of one file."""

    def __init__(self, *, file_key: str, main: bool, records_before: int = 0) -> None:
        self.file_key = file_key
        self.main = main
        self.facts = Facts()
        self.usage: dict[int, UsageRow] = {}
        self.records = records_before
        self.errors: list[LineError] = []
        self.bad_lines = 0
        self._started = records_before
        self._places: set[tuple[str | None, ...]] = set()
        """(cwd, branch, version, entrypoint) of conversation lines, already taken."""
        self._owners: set[tuple[str | None, ...]] = set()
        """(session id, agent id) of lines, already taken."""
        self._last_message = ""
        self._last_request = ""
        self._last_key = 0
        self.seen = Seen()
        self._seen_keys: set[int] = set()

    # ------------------------------------------------------------------ input

    def feed(self, item: Chunk | Overlong) -> None:
        if isinstance(item, Overlong):
            self._error(item.line + 1, item.offset, f"line of {item.length} bytes is too long", b"")
            return
        try:
            records = _RECORDS.decode_lines(item.data)
        except Exception:  # InvalidData, or see `unreadable`
            records = self._line_by_line(item)
        self._consume(records)

    def delta(self) -> UsageDelta:
        return UsageDelta(
            facts=self.facts,
            usage=self.usage,
            records=self.records - self._started,
            errors=self.errors,
            bad_lines=self.bad_lines,
            seen=self.seen,
        )

    # ------------------------------------------------------------------ errors

    def _error(
        self, line: int, offset: int, reason: str, raw: bytes, *, repaired: bool = False
    ) -> None:
        if not repaired:
            self.bad_lines += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(LineError(line, offset, reason, _sample(raw), repaired))

    def _line_by_line(self, chunk: Chunk) -> list[Record]:
        records: list[Record] = []
        offset = chunk.offset
        number = chunk.line
        for raw in chunk.data.split(b"\n")[:-1]:
            number += 1
            line_offset = offset
            offset += len(raw) + 1
            if not raw.strip():
                continue
            # Most lines of the chunk are sound: the typed decode reads them as the
            # chunk's decode would have, at a fraction of the cost of a decode to dicts.
            # It skips unread fields without checking their UTF-8, which the tolerant
            # path repairs and records, so a line it takes must be valid UTF-8.
            try:
                typed = _RECORDS.decode(raw)
            except Exception:  # noqa: S110 - the tolerant path says why
                pass
            else:
                if _utf8(raw):
                    records.append(typed)
                    continue
            record = self._decode_tolerantly(raw, number, line_offset)
            if record is not None:
                records.append(record)
        return records

    def _decode_tolerantly(self, raw: bytes, number: int, offset: int) -> Record | None:
        data = raw
        repairs: list[str] = []
        for attempt in range(3):
            try:
                values = codec.decode_any(data)
            except codec.MalformedData as exc:
                if attempt == 0 and (fixed := fix_surrogates(data)) is not None:
                    data = fixed
                    repairs.append("unpaired surrogate escapes replaced")
                    continue
                if isinstance(exc, codec.InvalidUtf8) and not any("UTF-8" in r for r in repairs):
                    data = data.decode("utf-8", "replace").encode()
                    repairs.append("invalid UTF-8 replaced")
                    continue
                self._error(number, offset, str(exc), raw)
                return None
            except Exception as exc:  # see `unreadable`
                self._error(number, offset, unreadable(exc), raw)
                return None
            break
        else:  # pragma: no cover - three attempts always end in break or return
            return None
        if not isinstance(values, dict):
            self._error(number, offset, f"not a JSON object ({type(values).__name__})", raw)
            return None
        try:
            record, dropped = lenient_record(values)
        except Exception as exc:  # see `unreadable`
            self._error(number, offset, unreadable(exc), raw)
            return None
        for path in dropped:
            key = f"{record.type}.{path}:shape"
            self.facts.unknown_fields[key] = self.facts.unknown_fields.get(key, 0) + 1
        if repairs:
            self._error(number, offset, "repaired: " + "; ".join(repairs), raw, repaired=True)
        return record

    # ------------------------------------------------------------------ aggregation

    def _consume(self, records: list[Record]) -> None:
        # One pass per chunk over every line: the loop is the hot path of a full index,
        # so what it reads often is held in locals, and what is rare (system lines,
        # subagent launches, identity clues not seen yet) is left to functions.
        f = self.facts
        types = f.types
        tools = f.tools
        first = f.first_ts
        last = f.last_ts
        usage = self.usage
        places = self._places
        owners = self._owners
        number = self.records
        for r in records:
            number += 1
            t = r.type
            types[t] = types.get(t, 0) + 1
            ts = r.timestamp or ""
            if ts:
                if len(ts) != 24 or ts[-1] != "Z":
                    ts = canonical_ts(ts)
                if ts:
                    if not first or ts < first:
                        first = ts
                    if ts > last:  # noqa: PLR1730 - a comparison is cheaper than max()
                        last = ts
            if t == "assistant" or t == "user":  # noqa: PLR1714
                m = r.message
                if m is not None:
                    if t == "user":
                        self._user(r, m.content)
                    else:
                        u = m.usage
                        if u is not None:
                            row = self._usage_row(r, m, u, number)
                            old = usage.get(row.key)
                            if old is None or kept(row, old)[1]:
                                row.ts = ts_ms(ts)
                                usage[row.key] = row
                        c = m.content
                        if type(c) is list:
                            for b in c:
                                bt = b.type
                                if bt == "tool_use" or bt == "server_tool_use":  # noqa: PLR1714
                                    name = b.name or "?"
                                    ti = b.input
                                    agent = (ti.subagent_type or "") if ti is not None else ""
                                    if b.id and not self._first_time(
                                        tool_key(b.id), self.seen.tools, (name, agent)
                                    ):
                                        continue
                                    tools[name] = tools.get(name, 0) + 1
                                    if agent:
                                        self._subagent(agent)
                # Identity clues change rarely; they are on every conversation line.
                where = (r.cwd, r.git_branch, r.version, r.entrypoint)
                if where not in places:
                    _clues(where, (f.cwds, f.branches, f.versions, f.entrypoints), places)
            elif t == "system":
                self._system(r)
            elif t == "summary":
                if r.summary:
                    f.summary = r.summary
            elif t == "custom-title":
                if r.custom_title:
                    f.custom_title = r.custom_title
            elif t not in KNOWN_TYPES:
                f.unknown_types[t] = f.unknown_types.get(t, 0) + 1
            if r.is_sidechain:
                f.sidechain_lines += 1
                if self.main and r.parent_uuid is None and t == "user":
                    f.inline_sidechains += 1
            who = (r.session_id, r.agent_id)
            if who not in owners:
                _clues(who, (f.session_ids, f.agents), owners)
        self.records = number
        f.first_ts = first
        f.last_ts = last

    def _subagent(self, kind: str) -> None:
        sat = self.facts.subagent_types
        sat[kind] = sat.get(kind, 0) + 1

    def _system(self, r: Record) -> None:
        f = self.facts
        sub = r.subtype or ""
        f.system[sub] = f.system.get(sub, 0) + 1
        if sub == "compact_boundary":
            f.compactions += 1
        elif sub == "api_error":
            f.api_errors += 1
        elif sub == "turn_duration" and r.duration_ms:
            f.active_ms += int(r.duration_ms)

    def _first_time(
        self, key: int, counted: list[Any], what: tuple[str, str] | None = None
    ) -> bool:
        """Whether this range has not counted the record yet; lists it if so."""
        if key in self._seen_keys:
            return False
        self._seen_keys.add(key)
        counted.append(key if what is None else (key, *what))
        return True

    def _usage_row(self, r: Record, m: Message, u: Usage, number: int) -> UsageRow:
        """The usage a line reports; `number` is its record number in the file."""
        message_id = m.id
        if message_id:
            request_id = r.request_id or ""
            # The lines of one streamed answer come together: one key computed for all.
            if message_id == self._last_message and request_id == self._last_request:
                key = self._last_key
            else:
                key = request_key(message_id, request_id)
                self._last_message = message_id
                self._last_request = request_id
                self._last_key = key
        else:
            key = line_key(self.file_key, r.uuid or f"#{number}")
        cc = u.cache_creation
        if cc is not None and cc.ephemeral_1h_input_tokens:
            cw5, cw1h = split_cache_writes(
                u.cache_creation_input_tokens or 0,
                cc.ephemeral_5m_input_tokens or 0,
                cc.ephemeral_1h_input_tokens or 0,
                True,
            )
        else:
            cw5 = u.cache_creation_input_tokens or 0
            if not cw5 and cc is not None:
                cw5 = cc.ephemeral_5m_input_tokens or 0
            cw1h = 0
        stu = u.server_tool_use
        return UsageRow(
            key,
            m.model or "",
            0,
            u.input_tokens or 0,
            u.output_tokens or 0,
            cw5,
            cw1h,
            u.cache_read_input_tokens or 0,
            m.stop_reason is not None,
            u.speed or "",
            (stu.web_search_requests or 0) if stu is not None else 0,
            (stu.web_fetch_requests or 0) if stu is not None else 0,
            r.karmad_copy_of is not None,
        )

    def _user(self, r: Record, content: Any) -> None:
        f = self.facts
        text: str | None = None
        typed = False
        if type(content) is str:
            text = content
            typed = True
        elif type(content) is list:
            results = False
            for b in content:
                bt = b.type
                if bt == "tool_result":
                    results = True
                    if b.is_error and (
                        not b.tool_use_id
                        or self._first_time(error_key(b.tool_use_id), self.seen.errors)
                    ):
                        f.tool_errors += 1
                elif bt == "text":
                    if text is None:
                        text = b.text or ""
                    typed = True
                elif bt == "image":
                    typed = True
            typed = typed and not results
        if not typed or r.is_sidechain or r.is_meta or r.is_compact_summary:
            return
        if text and text.startswith(NON_PROMPT_PREFIXES):
            return
        if r.timestamp and not self._first_time(
            prompt_key(r.timestamp, text or ""), self.seen.prompts
        ):
            return
        f.user_prompts += 1
        if not f.first_prompt and text:
            f.first_prompt = _squeezed(text, PROMPT_CHARS)
