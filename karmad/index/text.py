"""The text pass: where each conversation line is, and what people and Claude wrote.

Separate from the aggregates pass so that numbers appear quickly after a first start
(the full-text index of a large history takes longer than its totals), and so the cost
of each can be measured on its own. For every user, assistant and system line it
records the line's place in its file (so `session.messages` can read the conversation
back in order without storing it twice) and, for the full-text index, the text of
prompts and answers. It also counts top-level fields that this karmad does not know,
per record type, which the aggregates pass skips for speed.
"""

from __future__ import annotations

from typing import Final

import msgspec

from karmad import codec
from karmad.index.parse import canonical_ts, decode_repaired, ts_ms
from karmad.index.reader import Chunk, Overlong
from karmad.index.records import (
    CONVERSATION_TYPES,
    KNOWN_FIELDS,
    NON_PROMPT_PREFIXES,
    TextMessage,
)
from karmad.index.repeats import entry_key

MAX_TEXT_CHARS: Final = 64 * 1024
"""Text indexed per line; longer answers are cut (search finds their beginning)."""


class EntryRecord(msgspec.Struct, rename="camel"):
    type: str = ""
    timestamp: str | None = None
    uuid: str | None = None
    is_sidechain: bool | None = False
    is_meta: bool | None = False
    is_compact_summary: bool | None = False
    agent_id: str | None = None
    message: TextMessage | None = None


class Entry(msgspec.Struct, array_like=True, gc=False):
    offset: int
    length: int
    line: int
    """1-based line number."""
    ts: int
    kind: str
    sidechain: bool
    agent_id: str
    uuid: str
    text: str
    """Searchable text of the line ("" for none)."""
    key: int = 0
    """What the line says (karmad.index.repeats): a line read again is shown once."""


class TextDelta(msgspec.Struct):
    entries: list[Entry]
    unknown_fields: dict[str, int]


_KEYS: Final = codec.Decoder(dict[str, msgspec.Raw])
_ENTRY: Final = codec.Decoder(EntryRecord)


def _text_of(record: EntryRecord) -> str:
    message = record.message
    if message is None or record.is_meta or record.is_compact_summary:
        return ""
    content = message.content
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "\n".join(b.text for b in content if b.type == "text" and b.text)
    else:
        return ""
    if record.type == "user" and text.startswith(NON_PROMPT_PREFIXES):
        return ""
    return text[:MAX_TEXT_CHARS]


def _identity(kind: str, keys: dict[str, msgspec.Raw]) -> int:
    """0 for a line without a time: nothing to tell two of them apart."""
    ts = keys.get("timestamp")
    if ts is None:
        return 0
    body = keys.get("message") if kind != "system" else None
    if body is None:
        body = keys.get("content") or msgspec.Raw(b"")
    subtype = keys.get("subtype")
    return entry_key(kind, bytes(ts) + (bytes(subtype) if subtype else b""), bytes(body))


class TextParser:
    def __init__(self, *, want_text: bool = True) -> None:
        self.want_text = want_text
        self.entries: list[Entry] = []
        self.unknown_fields: dict[str, int] = {}

    def feed(self, item: Chunk | Overlong) -> None:
        if isinstance(item, Overlong):
            return
        offset = item.offset
        number = item.line
        for raw in item.data.split(b"\n")[:-1]:
            number += 1
            line_offset = offset
            offset += len(raw) + 1
            if raw.strip():
                self._line(raw, line_offset, number)

    def _line(self, raw: bytes, offset: int, number: int) -> None:
        keys = decode_repaired(_KEYS, raw)
        if keys is None:
            return
        try:
            kind = codec.decode_json(bytes(keys["type"]), str) if "type" in keys else ""
        except Exception:  # InvalidData, or see `parse.unreadable`
            kind = ""
        known = KNOWN_FIELDS.get(kind)
        if known is not None:  # lines of unknown types are counted by the aggregates pass
            for key in keys.keys() - known:
                name = f"{kind}.{key}"
                self.unknown_fields[name] = self.unknown_fields.get(name, 0) + 1
        if kind not in CONVERSATION_TYPES:
            return
        record = decode_repaired(_ENTRY, raw) or EntryRecord(type=kind)
        self.entries.append(
            Entry(
                offset,
                len(raw) + 1,
                number,
                ts_ms(canonical_ts(record.timestamp or "")),
                kind,
                bool(record.is_sidechain),
                record.agent_id or "",
                record.uuid or "",
                _text_of(record) if self.want_text and kind != "system" else "",
                _identity(kind, keys),
            )
        )

    def delta(self) -> TextDelta:
        return TextDelta(self.entries, self.unknown_fields)
