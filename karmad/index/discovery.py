"""Which files under a root are transcripts, and of which session.

A *root* is a directory laid out like `~/.claude/projects`:

    <root>/<project-dir>/<session>.jsonl                    main transcript
    <root>/<project-dir>/<session>/subagents/agent-<id>.jsonl  subagent (Claude Code 2.x)
    <root>/<project-dir>/agent-<id>.jsonl                   subagent (older releases;
                                                             its session is in its lines)
    <root>/<project-dir>/<session>/tool-results/...         large tool outputs

The project directory's name is Claude Code's lossy encoding of a working directory; it
groups files but is never decoded into a path (the lines' `cwd` says where a session
ran). The local `$CLAUDE_CONFIG_DIR/projects` is one root; each teammate's inbox is
another, attributed to the member who sent it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Final, Literal

from karmad.archive import layout

SUFFIX: Final = ".jsonl"
AGENT_PREFIX: Final = "agent-"
SUBAGENTS: Final = "subagents"
TOOL_RESULTS: Final = "tool-results"

Origin = Literal["local", "remote"]
FileKind = Literal["main", "subagent", "agent"]


@dataclass(frozen=True, slots=True)
class Root:
    """A directory of sessions and who they come from."""

    path: Path
    origin: Origin = "local"
    member_tag: str = ""
    """`<user_id>.<machine_tag>` of the member whose sessions these are."""
    user_id: str = ""
    device_id: str = ""
    project: str = ""
    """A project identity already known for every session here (a received project
    folder); empty means "resolve from each session's working directory"."""
    confine_to: str = ""
    """Remote roots: the inbox folder every file must resolve inside (see `remote`)."""
    archive: Path | None = None
    """A directory with the same layout keeping this root's files after they are deleted
    (karmad's archive): a file gone from the root is read from there, as the same file."""

    @property
    def origin_key(self) -> str:
        """Sessions are unique per (origin_key, session id): the same session received
        from two devices is two rows, which views can reduce to one."""
        if self.origin == "local":
            return "local"
        return f"remote:{self.device_id or self.member_tag}"


@dataclass(frozen=True, slots=True)
class FileRef:
    path: str
    """Absolute path."""
    project_dir: str
    session_id: str
    """From the path; "" for an `agent-*.jsonl` beside the sessions (found in its lines)."""
    kind: FileKind
    agent_id: str = ""


def classify(root: Path, path: Path) -> FileRef | None:
    """What `path` is under `root`, or None when it is not a transcript."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return None
    if not parts or not parts[-1].endswith(SUFFIX):
        return None
    name = parts[-1][: -len(SUFFIX)]
    if not name or any(p.startswith(".") for p in parts):
        return None
    if len(parts) == 2:
        if name.startswith(AGENT_PREFIX):
            return FileRef(str(path), parts[0], "", "agent", name[len(AGENT_PREFIX) :])
        return FileRef(str(path), parts[0], name, "main")
    if len(parts) == 4 and parts[2] == SUBAGENTS and name.startswith(AGENT_PREFIX):
        return FileRef(str(path), parts[0], parts[1], "subagent", name[len(AGENT_PREFIX) :])
    return None


def locate(root: Root, path: Path) -> FileRef | None:
    """What `path` is under the root itself or in its archive (where it keeps the path
    of the live file it stands for: see `karmad.archive.layout`)."""
    ref = classify(root.path, path)
    if ref is not None or root.archive is None:
        return ref
    rel = layout.live_rel(root.archive, path)
    if rel is None:
        return None
    ref = classify(root.path, root.path.joinpath(*rel.parts))
    return None if ref is None else replace(ref, path=str(path))


def twin(root: Root, path: str) -> str | None:
    """The same file's other place: archived for a live path, live for an archived one."""
    if root.archive is None:
        return None
    where = Path(path)
    if root.path in where.parents:
        return str(layout.archived(root.archive, PurePosixPath(where.relative_to(root.path))))
    rel = layout.live_rel(root.archive, where)
    return None if rel is None else str(root.path.joinpath(*rel.parts))


def walk_archive(root: Root) -> Iterator[tuple[FileRef, os.stat_result]]:
    """The root's archived transcripts, as `walk` gives live ones (paths in the archive)."""
    if root.archive is None:
        return
    for path, rel, st in layout.walk(root.archive):
        ref = classify(root.path, root.path.joinpath(*rel.parts))
        if ref is not None:
            yield replace(ref, path=str(path)), st


def root_of(path: Path, kind: str) -> Path:
    """The root a transcript of this kind lies under: the inverse of `classify`."""
    return path.parents[3] if kind == "subagent" else path.parents[1]


def tool_results_session(root: Path, path: Path) -> tuple[str, str] | None:
    """(project dir, session) when `path` is in or is a session's tool-results folder."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return None
    if len(parts) >= 3 and parts[2] == TOOL_RESULTS:
        return parts[0], parts[1]
    return None


def list_dir(path: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as entries:
            return list(entries)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def walk(root: Path) -> Iterator[tuple[FileRef, os.stat_result]]:
    """Every transcript under `root` with its stat, without following symlinks.

    Builds the same references as `classify`, from the layout it walks. Entries that
    are not regular files (a named pipe called `<uuid>.jsonl`, say) are listed too, so
    that the indexer can say why it does not read them; it never opens them.
    """
    for project in list_dir(str(root)):
        if project.name.startswith(".") or not project.is_dir(follow_symlinks=False):
            continue
        for entry in list_dir(project.path):
            name = entry.name
            if name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                for agent in list_dir(os.path.join(entry.path, SUBAGENTS)):
                    stem = agent.name[: -len(SUFFIX)]
                    if (
                        agent.name.endswith(SUFFIX)
                        and stem.startswith(AGENT_PREFIX)
                        and not stem.startswith(".")
                        and (st := _lstat(agent)) is not None
                    ):
                        ref = FileRef(
                            agent.path, project.name, name, "subagent", stem[len(AGENT_PREFIX) :]
                        )
                        yield ref, st
            elif name.endswith(SUFFIX) and len(name) > len(SUFFIX):
                st = _lstat(entry)
                if st is None:
                    continue
                stem = name[: -len(SUFFIX)]
                if stem.startswith(AGENT_PREFIX):
                    ref = FileRef(entry.path, project.name, "", "agent", stem[len(AGENT_PREFIX) :])
                else:
                    ref = FileRef(entry.path, project.name, stem, "main")
                yield ref, st


def _lstat(entry: os.DirEntry[str]) -> os.stat_result | None:
    """The entry's own status; None for a symbolic link (never followed) or an entry
    gone since the directory was listed."""
    try:
        if entry.is_symlink() or entry.is_dir(follow_symlinks=False):
            return None
        return entry.stat(follow_symlinks=False)
    except OSError:
        return None


def tool_results(root: Path, project_dir: str, session_id: str) -> tuple[int, int]:
    """(files, bytes) of a session's tool-results folder."""
    files = 0
    size = 0
    stack = [str(root / project_dir / session_id / TOOL_RESULTS)]
    while stack:
        for entry in list_dir(stack.pop()):
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            elif entry.is_file(follow_symlinks=False) and (st := _lstat(entry)) is not None:
                files += 1
                size += st.st_size
    return files, size
