"""The per-session manifest written beside packaged sessions.

One JSON file per session at `projects/<key>/manifests/<session>.json`: for each packaged
file its size, sha256 and line count, the CLI versions seen, and what redaction did
(the rules version and counts per kind — never a secret). Receivers can check what
arrived against it; people can see what left.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from karmad import codec

MANIFESTS = "manifests"
FORMAT = 1


class FileEntry(msgspec.Struct, kw_only=True):
    size: int
    sha256: str
    lines: int
    dropped_lines: int = 0
    """Lines of the source that were not JSON objects and were not sent."""


class Redaction(msgspec.Struct, kw_only=True):
    rules_version: int | str
    replacements: int
    counts: dict[str, int]


class Manifest(msgspec.Struct, kw_only=True):
    format: int = FORMAT
    session_id: str
    project_key: str
    project: str
    """The project identity the session belongs to (`host/owner/repo`)."""
    checkout: str = ""
    """The checkout root the session ran in on the sender's machine (a worktree's
    repository): what a receiver that continues the session maps to its own checkout."""
    member_tag: str
    updated_at: datetime
    cli_versions: list[str] = msgspec.field(default_factory=list)
    files: dict[str, FileEntry] = msgspec.field(default_factory=dict)
    """Path relative to `projects/<key>/` -> what was written there."""
    redaction: Redaction


def encode(manifest: Manifest) -> bytes:
    return codec.encode_json(manifest) + b"\n"


def decode(data: bytes) -> Manifest:
    return codec.decode_json(data, Manifest)
