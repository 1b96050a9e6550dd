"""Records a session holds twice: each original record counts once.

Claude Code 1.x replays a resumed session's history into the same file (same message
ids, `tool_use` ids and timestamps, new `uuid`s); a session restored from karmad's
archive beside a materialised copy holds the same records in two files. Tokens are
de-duplicated by request (`usage.py`); the counts here are de-duplicated by what the
record is, never by its `uuid`:

- a tool use by its `tool_use` id;
- a failed tool result by the `tool_use` id it answers;
- a prompt by its timestamp and text.

A parser skips what it has seen in its own range and lists the identities it counted
(`Seen`); the writer drops those the session already holds (stored, or counted by
another range of the same batch) and subtracts what they added to the session's facts.
Keys are stored per session: those of the facts in `record_keys`, those of the
conversation lines in `entry_keys`, which a rebuild of the text pass clears with the
lines themselves (the facts are not read again then).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Protocol, TypeVar

import msgspec

from karmad.index.facts import Facts
from karmad.index.usage import request_key
from karmad.store import Store


class _Keyed(Protocol):
    @property
    def key(self) -> int: ...


_E = TypeVar("_E", bound=_Keyed)


class Seen(msgspec.Struct, array_like=True, gc=False):
    """The identities a range of lines counted, with what each added to the facts."""

    tools: list[tuple[int, str, str]] = msgspec.field(default_factory=list)
    """(key, tool name, subagent type or "")."""
    prompts: list[int] = msgspec.field(default_factory=list)
    errors: list[int] = msgspec.field(default_factory=list)


def tool_key(tool_use_id: str) -> int:
    return request_key("\x00tool_use", tool_use_id)


def error_key(tool_use_id: str) -> int:
    return request_key("\x00tool_error", tool_use_id)


def prompt_key(timestamp: str, text: str) -> int:
    return request_key("\x00prompt\x00" + timestamp, text)


def entry_key(kind: str, timestamp: bytes, body: bytes) -> int:
    """A conversation line by what it says: its type, time and message (or, for a system
    line, its whole text), not its uuid, session id or karmad's copy mark."""
    high = zlib.crc32(body, zlib.crc32(kind.encode() + b"\x00" + timestamp))
    low = zlib.crc32(body[::-1] if len(body) < 4096 else body[-4096:], high)
    return ((high << 32) | low) - (1 << 63)


def _less(counts: dict[str, int], name: str) -> None:
    left = counts.get(name, 0) - 1
    if left > 0:
        counts[name] = left
    else:
        counts.pop(name, None)


class _Keys:
    """One table of keys (`record_keys` or `entry_keys`) as a write batch sees it."""

    def __init__(self, store: Store, table: str) -> None:
        self.store = store
        self.table = table
        self.held: dict[int, set[int]] = {}
        self.rows: list[tuple[int, int]] = []

    def of(self, pk: int, fresh: bool, keys: list[int]) -> set[int]:
        """The keys the session holds, loaded for those of `keys` not loaded yet."""
        held = self.held.setdefault(pk, set())
        if fresh or not keys:
            return held
        for start in range(0, len(keys), 20000):
            part = keys[start : start + 20000]
            held.update(
                r[0]
                for r in self.store.query(
                    f"SELECT key FROM {self.table} WHERE session_pk = ? "  # noqa: S608
                    "AND key IN (SELECT value FROM json_each(?))",
                    (pk, "[" + ",".join(map(str, part)) + "]"),
                )
            )
        return held

    def first(self, pk: int, held: set[int], key: int) -> bool:
        if key in held:
            return False
        held.add(key)
        self.rows.append((pk, key))
        return True

    def write(self) -> None:
        if self.rows:
            self.store.executemany(
                f"INSERT OR IGNORE INTO {self.table} (session_pk, key) VALUES (?, ?)",  # noqa: S608
                self.rows,
            )
        self.rows = []
        self.held = {}


class Repeats:
    """One write batch's view of what each session has already counted."""

    def __init__(self, store: Store) -> None:
        self.records = _Keys(store, "record_keys")
        self.lines = _Keys(store, "entry_keys")

    def facts(self, pk: int, fresh: bool, facts: Facts, seen: list[Seen]) -> None:
        """Take out of `facts` what the session had already counted."""
        keys = [k for s in seen for k, _, _ in s.tools]
        keys += [k for s in seen for k in (*s.prompts, *s.errors)]
        records = self.records
        held = records.of(pk, fresh, keys)
        for s in seen:
            for key, name, subagent in s.tools:
                if not records.first(pk, held, key):
                    _less(facts.tools, name)
                    if subagent:
                        _less(facts.subagent_types, subagent)
            for key in s.prompts:
                if not records.first(pk, held, key):
                    facts.user_prompts -= 1
            for key in s.errors:
                if not records.first(pk, held, key):
                    facts.tool_errors -= 1

    def entries(self, pk: int, fresh: bool, entries: list[_E]) -> Iterator[_E]:
        """The conversation lines the session does not show yet (keys of 0: always)."""
        lines = self.lines
        held = lines.of(pk, fresh, [e.key for e in entries if e.key])
        for e in entries:
            if not e.key or lines.first(pk, held, e.key):
                yield e

    def write(self) -> None:
        """Store the keys (after the sessions' own rows exist)."""
        self.records.write()
        self.lines.write()
