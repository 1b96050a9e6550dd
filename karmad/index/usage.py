"""Token usage per API request, and the rule that de-duplicates it.

Claude Code writes one transcript line per content block of a streamed answer, and each
line repeats the request's `usage` as it stood when the line was written: the first lines
carry a partial count (output_tokens of 1 to a few dozen), the line with a `stop_reason`
the complete one. The same request can also appear in several files of a session
(main transcript and subagent files) and, when a session is resumed or forked, in
another session. So usage is keyed by (message.id, requestId) and only one row per key
counts; see docs/index.md for how that compares with other tools.
"""

from __future__ import annotations

import zlib

import msgspec


class UsageRow(msgspec.Struct, array_like=True, gc=False):
    """The usage of one API request, as the best line for it reported it."""

    key: int
    model: str
    ts: int
    """Milliseconds since the epoch (UTC) of the chosen line; 0 when unknown."""
    input: int
    output: int
    cache_write_5m: int
    cache_write_1h: int
    cache_read: int
    complete: bool
    """The line had a `stop_reason`: the request had finished streaming."""
    speed: str = ""
    web_search: int = 0
    web_fetch: int = 0
    copied: bool = False
    """Every line of the request that was read is a copy karmad made for a resume
    (`karmadCopyOf`): it never counts while a line not copied holds the request."""

    @property
    def input_side(self) -> int:
        return self.input + self.cache_write_5m + self.cache_write_1h + self.cache_read


def better(new: UsageRow, old: UsageRow) -> bool:
    """True when `new` should replace `old` as the row counted for their request.

    The complete row (with a stop_reason) wins; between rows equally (in)complete the
    one with the larger counters wins (output first, then input side); on a tie the row
    seen first stays, so re-reading a file never changes the answer.
    """
    if new.complete != old.complete:
        return new.complete
    return (new.output, new.input_side) > (old.output, old.input_side)


def kept(new: UsageRow, old: UsageRow) -> tuple[UsageRow, bool]:
    """The row of a request seen again in one session, and whether it is `new`: the
    `better` one, a copy only when both were."""
    row, replaced = (new, True) if better(new, old) else (old, False)
    if row.copied and not (new.copied and old.copied):
        row.copied = False
    return row, replaced


def _key(first: str, second: str) -> int:
    # Two CRC-32s side by side: a stable 64-bit key (unlike hash(), the same in every
    # process and run) that costs far less than a cryptographic digest per line. Ids are
    # random, so collisions are as unlikely as for any 64-bit hash.
    high = zlib.crc32(first.encode())
    low = zlib.crc32(second.encode(), high)
    return ((high << 32) | low) - (1 << 63)


def request_key(message_id: str, request_id: str) -> int:
    """The stable 64-bit key of (message.id, requestId)."""
    return _key(message_id, request_id)


def line_key(file_key: str, ident: str) -> int:
    """Key of a usage line without a message id: never merged with any other line."""
    return _key("\x00line\x00" + file_key, ident)


def split_cache_writes(
    total: int, five_minutes: int, one_hour: int, has_split: bool
) -> tuple[int, int]:
    """(5-minute, 1-hour) cache-write tokens that add up to the reported total.

    `cache_creation_input_tokens` is the authority for how many tokens were written
    (it is what every tool reports); the `cache_creation` breakdown, present since the
    1-hour cache exists, says how many of them were 1-hour writes. Without it, all are
    5-minute writes, the only kind that existed.
    """
    if not has_split:
        if total == 0 and five_minutes + one_hour > 0:
            total = five_minutes + one_hour
        return total, 0
    if total == 0:
        return five_minutes, one_hour
    hour = min(max(one_hour, 0), total)
    return total - hour, hour
