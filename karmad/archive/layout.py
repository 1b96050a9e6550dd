"""Where the archive keeps each file of Claude Code's projects folder.

One directory per project directory, like `~/.claude/projects`; main transcripts (and
older `agent-*.jsonl` files) keep their names. A session's own files, which Claude Code
keeps in per-session directories (`<session>/subagents/agent-<id>.jsonl`,
`<session>/tool-results/...`), are kept beside them under one flat name, their path
with `/` written `%2F` (and `%` itself `%25`): a directory costs a block of disk per
session, which for a history of small sessions would be most of what the archive
costs, while a name costs a few bytes of its project's directory. A name too long for
the filesystem keeps the nested layout. Main transcript names never hold `%`, so the
two kinds cannot be confused. Standard library only: the index reads archived files too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Final
from urllib.parse import quote, unquote

FLAT: Final = "%2F"
MAX_NAME: Final = 255


def archived(archive: Path, rel: PurePosixPath) -> Path:
    """The archived place of the live file at `rel` (relative to the projects folder)."""
    parts = rel.parts
    if len(parts) <= 2:
        return archive.joinpath(*parts)
    name = quote("/".join(parts[1:]), safe="")
    if len(name.encode()) > MAX_NAME:
        return archive.joinpath(*parts)
    return archive / parts[0] / name


def live_rel(archive: Path, path: Path) -> PurePosixPath | None:
    """The live relative path of an archived file; None outside the archive."""
    try:
        parts = path.relative_to(archive).parts
    except ValueError:
        return None
    if len(parts) == 2 and FLAT in parts[1]:
        return PurePosixPath(parts[0], *unquote(parts[1]).split("/"))
    return PurePosixPath(*parts) if parts else None


def side_files(archive: Path, project_dir: str, session_id: str) -> Iterator[tuple[Path, str]]:
    """(archived path, path under the session's directory) of a session's own files."""
    folder = archive / project_dir
    prefix = quote(f"{session_id}/", safe="")
    try:
        with os.scandir(folder) as entries:
            flat = sorted(e.name for e in entries if e.name.startswith(prefix))
    except (FileNotFoundError, NotADirectoryError):
        flat = []
    for name in flat:
        yield folder / name, unquote(name)[len(session_id) + 1 :]
    nested = folder / session_id
    for dirpath, _dirs, names in os.walk(nested, followlinks=False):
        for name in sorted(names):
            if not name.startswith("."):
                path = Path(dirpath) / name
                yield path, path.relative_to(nested).as_posix()


def walk(archive: Path) -> Iterator[tuple[Path, PurePosixPath, os.stat_result]]:
    """Every archived file: (archived path, live relative path, stat), hidden files
    (being written) left out."""
    for dirpath, dirs, names in os.walk(archive, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            rel = live_rel(archive, path)
            if rel is None:
                continue
            try:
                st = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if os.path.isfile(path) and not os.path.islink(path):
                yield path, rel, st
