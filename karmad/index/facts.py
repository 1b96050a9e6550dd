"""Per-session aggregates that are not usage: counts, names, identity clues.

Every field merges associatively (sums, maxima, first/last, bounded ordered sets), so
the facts of a session are the merge of the facts of each byte range of each of its
files, in any grouping. That is what lets an append of N bytes update a session in
O(N): parse the new bytes, merge the result into what is stored.
"""

from __future__ import annotations

from typing import Final

import msgspec

MAX_VALUES: Final = 32
"""Distinct values kept per list (cwds, branches...); a session with more is unusual
and the first ones are the informative ones."""

PROMPT_CHARS: Final = 240


def _add_unique(target: list[str], values: list[str]) -> None:
    for value in values:
        if len(target) >= MAX_VALUES:
            return
        if value not in target:
            target.append(value)


def _add_counts(target: dict[str, int], values: dict[str, int]) -> None:
    for key, count in values.items():
        target[key] = target.get(key, 0) + count


class Facts(msgspec.Struct, omit_defaults=True):
    types: dict[str, int] = msgspec.field(default_factory=dict)
    """Lines per record type (every line, including unknown types)."""
    unknown_types: dict[str, int] = msgspec.field(default_factory=dict)
    unknown_fields: dict[str, int] = msgspec.field(default_factory=dict)
    """`type.field` names not known to this karmad (counted by the text pass)."""
    system: dict[str, int] = msgspec.field(default_factory=dict)
    """System lines per subtype."""
    tools: dict[str, int] = msgspec.field(default_factory=dict)
    tool_errors: int = 0
    subagent_types: dict[str, int] = msgspec.field(default_factory=dict)
    agents: list[str] = msgspec.field(default_factory=list)
    inline_sidechains: int = 0
    """Subagent conversations written into the main transcript (Claude Code 1.x)."""
    sidechain_lines: int = 0
    user_prompts: int = 0
    compactions: int = 0
    api_errors: int = 0
    active_ms: int = 0
    cwds: list[str] = msgspec.field(default_factory=list)
    branches: list[str] = msgspec.field(default_factory=list)
    versions: list[str] = msgspec.field(default_factory=list)
    entrypoints: list[str] = msgspec.field(default_factory=list)
    session_ids: list[str] = msgspec.field(default_factory=list)
    """`sessionId` values seen; attributes legacy `agent-*.jsonl` files to a session."""
    first_ts: str = ""
    last_ts: str = ""
    """Canonical UTC timestamps (`YYYY-MM-DDTHH:MM:SS.mmmZ`), which sort as text."""
    first_prompt: str = ""
    summary: str = ""
    custom_title: str = ""

    def merge(self, other: Facts) -> None:
        """Fold `other` (the facts of later bytes) into this."""
        _add_counts(self.types, other.types)
        _add_counts(self.unknown_types, other.unknown_types)
        _add_counts(self.unknown_fields, other.unknown_fields)
        _add_counts(self.system, other.system)
        _add_counts(self.tools, other.tools)
        _add_counts(self.subagent_types, other.subagent_types)
        self.tool_errors += other.tool_errors
        _add_unique(self.agents, other.agents)
        self.inline_sidechains += other.inline_sidechains
        self.sidechain_lines += other.sidechain_lines
        self.user_prompts += other.user_prompts
        self.compactions += other.compactions
        self.api_errors += other.api_errors
        self.active_ms += other.active_ms
        _add_unique(self.cwds, other.cwds)
        _add_unique(self.branches, other.branches)
        _add_unique(self.versions, other.versions)
        _add_unique(self.entrypoints, other.entrypoints)
        _add_unique(self.session_ids, other.session_ids)
        if other.first_ts and (not self.first_ts or other.first_ts < self.first_ts):
            self.first_ts = other.first_ts
            if other.first_prompt:
                self.first_prompt = other.first_prompt
        elif other.first_prompt and not self.first_prompt:
            self.first_prompt = other.first_prompt
        if other.last_ts and other.last_ts > self.last_ts:
            self.last_ts = other.last_ts
        if other.summary:
            self.summary = other.summary
        if other.custom_title:
            self.custom_title = other.custom_title

    @property
    def subagents(self) -> int:
        return len(self.agents) + self.inline_sidechains

    @property
    def title(self) -> str:
        return self.custom_title or self.summary or self.first_prompt


FACTS_JSON: Final = msgspec.json.Encoder()
"""Facts are stored as JSON in `sessions.facts`; our own output, decoded with the
typed decoder in `writer`."""
