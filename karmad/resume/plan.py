"""What a resume writes where: the session's id here, the places its paths move between.

Pure functions of what the index and the filesystem said; `service` gathers those and
`writer` acts on the answer.
"""

from __future__ import annotations

import re
import uuid
from pathlib import PurePosixPath
from typing import Final

from karmad.gitremote import DESKTOP_WORKTREES, WORKTREE_MARKERS

RESUME_NAMESPACE: Final = uuid.UUID("5b1d6f3e-8a57-4c1e-9d0b-6a1f0e4c2b77")
"""Namespace of the ids karmad gives other members' sessions (uuid5): part of the
contract, so the same session resumed on the same member always gets the same id."""
COPY_FIELD: Final = "karmadCopyOf"
"""Top-level field of every line a resume wrote: the session the line is a copy of.
What Claude Code appends afterwards has no such field (docs/index.md)."""

_HOME = re.compile(r"^(/home/[^/]+|/Users/[^/]+|/root)(?=/|$)")


def derived_id(session_id: str, member: str) -> str:
    """The id another member's session gets on this member: never the original's, the
    same every time."""
    return str(uuid.uuid5(RESUME_NAMESPACE, f"{session_id}\n{member}"))


def worktree_root(cwd: str) -> tuple[str, str | None] | None:
    """(worktree root, its repository if the path says) for a directory in a worktree
    Claude Code or Claude Desktop made; None for any other directory."""
    for marker in WORKTREE_MARKERS:
        index = cwd.find(marker)
        if index > 0:
            rest = cwd[index + len(marker) :]
            name = rest.split("/", 1)[0]
            if name:
                return cwd[: index + len(marker)] + name, cwd[:index]
    parts = PurePosixPath(cwd).parts
    if DESKTOP_WORKTREES in parts:
        index = parts.index(DESKTOP_WORKTREES)
        if len(parts) >= index + 3:
            return str(PurePosixPath(*parts[: index + 3])), None
    return None


def sender_roots(cwds: list[str], checkout: str) -> tuple[str, ...]:
    """Every checkout root the session's paths can start with: its worktrees (longest
    first), then the repository `checkout`."""
    worktrees = []
    for cwd in cwds:
        found = worktree_root(cwd)
        if found is not None and found[0] not in worktrees:
            worktrees.append(found[0])
    worktrees.sort(key=len, reverse=True)
    return (*worktrees, checkout)


def sender_checkout(cwd: str, known: str = "") -> str:
    """The checkout a received session ran in: what the sender said, else the
    repository of a worktree, else the directory it started in."""
    if known:
        return known
    found = worktree_root(cwd)
    if found is not None and found[1]:
        return found[1]
    return cwd


def start_directory(cwd: str, roots: tuple[str, ...], local_root: str) -> str:
    """The local directory matching the one the session started in: the same
    subdirectory of the local checkout (it may not exist here: see `usable`)."""
    for root in roots:
        if cwd == root:
            return local_root
        if cwd.startswith(root + "/"):
            return local_root + cwd[len(root) :]
    return local_root


def sender_home(cwds: list[str], config: str | None) -> str | None:
    """The sender's home, from where its Claude Code config lives or from the shape of
    the directories the session ran in."""
    if config and config.endswith("/.claude"):
        return config[: -len("/.claude")] or None
    for cwd in cwds:
        match = _HOME.match(cwd)
        if match:
            return match.group(1)
    return None


def sender_config(head: bytes, project_dir: str) -> str | None:
    """The sender's Claude Code config directory, from a path that names the session's
    project directory (the memory directory in the replayed system prompt, saved tool
    results): `<config>/projects/<project dir>`."""
    pattern = re.compile(rb"(/[^\s\"'`\\]*?)/projects/" + re.escape(project_dir.encode()))
    match = pattern.search(head)
    if match is None:
        return None
    try:
        return match.group(1).decode()
    except UnicodeDecodeError:
        return None
