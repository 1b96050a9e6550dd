"""The shapes of Claude Code transcript lines, as far as the index reads them.

Decoding is typed and selective: each struct names only the fields the index uses, so
msgspec skips everything else (tool outputs, file snapshots, images) without building
Python objects for it. That is what makes a full index of a large history cost little
more than scanning its bytes. Fields are optional with neutral defaults because
transcripts written by different Claude Code versions differ; a line whose shape still
does not fit is handled by the tolerant path in `parse`, never dropped silently.
"""

from __future__ import annotations

from typing import Final

import msgspec

# ---------------------------------------------------------------------------- usage pass


class ToolInput(msgspec.Struct):
    """Only what identifies a subagent; every other tool input is skipped."""

    subagent_type: str | None = None


class Block(msgspec.Struct):
    """One content block of a user or assistant message."""

    type: str = ""
    name: str | None = None
    text: str | None = None
    is_error: bool | None = None
    input: ToolInput | None = None
    id: str | None = None
    """A tool use's id: what it is, whichever line holds it (karmad.index.repeats)."""
    tool_use_id: str | None = None


class CacheCreation(msgspec.Struct):
    ephemeral_5m_input_tokens: int | None = 0
    ephemeral_1h_input_tokens: int | None = 0


class ServerToolUse(msgspec.Struct):
    web_search_requests: int | None = 0
    web_fetch_requests: int | None = 0


class Usage(msgspec.Struct):
    input_tokens: int | None = 0
    output_tokens: int | None = 0
    cache_creation_input_tokens: int | None = 0
    cache_read_input_tokens: int | None = 0
    cache_creation: CacheCreation | None = None
    server_tool_use: ServerToolUse | None = None
    speed: str | None = None


class Message(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    stop_reason: str | None = None
    usage: Usage | None = None
    content: str | list[Block] | None = None


class Record(msgspec.Struct, rename="camel"):
    """One transcript line, for the aggregates (usage, counts, identity)."""

    type: str = ""
    subtype: str | None = None
    timestamp: str | None = None
    uuid: str | None = None
    parent_uuid: str | None = None
    session_id: str | None = None
    cwd: str | None = None
    git_branch: str | None = None
    version: str | None = None
    entrypoint: str | None = None
    is_sidechain: bool | None = False
    is_meta: bool | None = False
    is_compact_summary: bool | None = False
    agent_id: str | None = None
    request_id: str | None = None
    message: Message | None = None
    summary: str | None = None
    custom_title: str | None = None
    duration_ms: float | None = None
    karmad_copy_of: str | None = None
    """The session a line was copied from by `session.resume` (docs/index.md)."""


# --------------------------------------------------------------------------- content pass


class TextBlock(msgspec.Struct):
    type: str = ""
    text: str | None = None


class TextMessage(msgspec.Struct):
    content: str | list[TextBlock] | None = None


# ---------------------------------------------------------------------------- known shapes

KNOWN_TYPES: Final = frozenset(
    {
        "user",
        "assistant",
        "system",
        "summary",
        "custom-title",
        "file-history-snapshot",
        "queue-operation",
        "progress",
        "attachment",
    }
)
"""Record types seen in real transcripts; any other is counted as unknown."""

CONVERSATION_TYPES: Final = frozenset({"user", "assistant", "system"})
"""Record types that are part of the conversation `session.messages` shows."""

_COMMON: Final = frozenset(
    {
        "type",
        "uuid",
        "parentUuid",
        "logicalParentUuid",
        "isSidechain",
        "userType",
        "cwd",
        "sessionId",
        "version",
        "gitBranch",
        "timestamp",
        "slug",
        "agentId",
        "entrypoint",
        "teamName",
        "forkedFrom",
        "isMeta",
    }
)

_FIELDS: Final[dict[str, frozenset[str]]] = {
    "user": _COMMON
    | {
        "message",
        "toolUseResult",
        "sourceToolAssistantUUID",
        "sourceToolUseID",
        "thinkingMetadata",
        "todos",
        "permissionMode",
        "isCompactSummary",
        "isVisibleInTranscriptOnly",
        "imagePasteIds",
        "promptId",
        "promptSource",
        "mcpMeta",
    },
    "assistant": _COMMON | {"message", "requestId", "isApiErrorMessage", "error", "apiError"},
    "system": _COMMON
    | {
        "subtype",
        "content",
        "level",
        "cause",
        "error",
        "retryInMs",
        "retryAttempt",
        "maxRetries",
        "durationMs",
        "compactMetadata",
        "toolUseID",
        "hookCount",
        "hookInfos",
        "hookErrors",
        "preventedContinuation",
        "stopReason",
        "hasOutput",
    },
    "summary": frozenset({"type", "summary", "leafUuid"}),
    "custom-title": frozenset({"type", "customTitle", "sessionId"}),
    "file-history-snapshot": frozenset({"type", "messageId", "snapshot", "isSnapshotUpdate"}),
    "queue-operation": frozenset({"type", "operation", "timestamp", "sessionId", "content"}),
    "progress": _COMMON | {"data", "toolUseID", "parentToolUseID"},
    "attachment": _COMMON | {"attachment"},
}
KNOWN_FIELDS: Final = {kind: fields | {"karmadCopyOf"} for kind, fields in _FIELDS.items()}
"""Top-level fields per known type; others are counted as unknown fields. Every line
karmad copies for a resume says so (`karmadCopyOf`), whatever its type."""

NON_PROMPT_PREFIXES: Final = (
    "<local-command-",
    "<bash-stdout>",
    "<bash-stderr>",
    "<task-notification>",
    "[Request interrupted",
    "Caveat: The messages below",
)
"""User-role text that Claude Code writes itself rather than the person typing."""
