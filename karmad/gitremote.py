"""Project identity from git checkouts, without running git.

A shared project is identified by its normalised git remote (`host/owner/repo`), never by
a local path: every machine keeps its checkouts somewhere else. The session indexer
resolves the identity of each session's working directory here, and the team control
plane reuses the same functions to recognise a shared project on another machine, so
this module depends on the standard library only and never spawns `git` (a process per
session would dominate the cost of indexing a large history).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

# `[user@]host:path` with no scheme; a single letter before the colon is a Windows drive.
_SCP = re.compile(r"^(?:[^@/]+@)?(?P<host>[^/:]{2,}):(?P<path>.+)$")
_SECTION = re.compile(r'^\[\s*(?P<name>[A-Za-z0-9.-]+)(?:\s+"(?P<sub>(?:[^"\\]|\\.)*)")?\s*\]')

# Directories Claude Code and Claude Desktop create for worktrees, relative to the
# repository they belong to (or, for Desktop, to the home directory).
WORKTREE_MARKERS = ("/.claude/worktrees/", "/.worktrees/")
DESKTOP_WORKTREES = ".claude-worktrees"


def normalise_remote(url: str) -> str | None:
    """`host/owner/repo`, lowercase, for any spelling of one remote; None for local paths.

    ssh (`ssh://git@host:22/o/r.git`), scp-style (`git@host:o/r.git`) and https
    (`https://user:token@host/o/r`) forms of one remote give the same answer: scheme,
    user, password and port are dropped, as is a trailing `.git` or slash. Nested groups
    (`host/group/sub/repo`) are kept whole.
    """
    text = url.strip()
    if not text:
        return None
    host: str | None
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme.lower() == "file":
            return None
        netloc, _, path = rest.partition("/")
        if ":" in netloc.rpartition("@")[2] and not netloc.rpartition(":")[2].isdigit():
            # `ssh://git@host:owner/repo`: an scp path glued to a scheme; seen in the wild.
            path = netloc.rpartition(":")[2] + "/" + path
            netloc = netloc.rpartition(":")[0]
        try:
            host = urlsplit(f"//{netloc}").hostname
        except ValueError:
            return None
    else:
        match = _SCP.match(text)
        if match is None:
            return None
        host, path = match["host"], match["path"]
    parts = [p for p in path.split("/") if p and p != "."]
    if not host or not parts or ".." in parts:
        return None
    if parts[-1].lower().endswith(".git"):
        parts[-1] = parts[-1][:-4]
        if not parts[-1]:
            return None
    return "/".join([host, *parts]).lower()


def _unquote(value: str) -> str:
    """A git-config value: strip an inline comment and the quotes around quoted parts."""
    out: list[str] = []
    quoted = False
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append({"n": "\n", "t": "\t", "b": "\b"}.get(nxt, nxt))
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch in "#;" and not quoted:
            break
        else:
            out.append(ch)
        i += 1
    return "".join(out).strip()


def remote_urls(config_text: str) -> dict[str, str]:
    """`{remote name: url}` from a git config file, in file order (first url wins)."""
    urls: dict[str, str] = {}
    remote: str | None = None
    for raw in config_text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            match = _SECTION.match(line)
            remote = None
            if match is not None:
                name = match["name"].lower()
                if name == "remote" and match["sub"] is not None:
                    remote = match["sub"]
                elif name.startswith("remote."):
                    remote = match["name"][len("remote.") :]
            # A key may follow the header on the same line.
            line = line[match.end() :].strip() if match is not None else ""
            if not line:
                continue
        if remote is None:
            continue
        key, sep, value = line.partition("=")
        if sep and key.strip().lower() == "url" and remote not in urls:
            urls[remote] = _unquote(value)
    return urls


def git_dir_of(checkout: Path) -> Path | None:
    """The git directory of a checkout: `.git` itself, or where a `.git` file points.

    Worktrees and submodules have a `.git` *file* holding `gitdir: <path>`.
    """
    dot_git = checkout / ".git"
    try:
        if dot_git.is_dir():
            return dot_git
        text = dot_git.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("gitdir:"):
            target = Path(line[len("gitdir:") :].strip())
            return target if target.is_absolute() else (checkout / target)
    return None


def common_dir_of(git_dir: Path) -> Path:
    """Where a worktree's shared config lives (`commondir`), or the git dir itself."""
    try:
        text = (git_dir / "commondir").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return git_dir
    if not text:
        return git_dir
    target = Path(text)
    return target if target.is_absolute() else Path(os.path.normpath(git_dir / target))


def find_checkout(path: Path) -> Path | None:
    """The closest directory at or above `path` that has a `.git` entry."""
    current = path
    while True:
        if os.path.lexists(current / ".git"):
            return current
        if current.parent == current:
            return None
        current = current.parent


def read_remote(checkout: Path) -> str | None:
    """The raw url of `origin`, else of the first remote configured; None without one."""
    git_dir = git_dir_of(checkout)
    if git_dir is None:
        return None
    try:
        text = (common_dir_of(git_dir) / "config").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    urls = remote_urls(text)
    if "origin" in urls:
        return urls["origin"]
    return next(iter(urls.values()), None)


def repository_of_worktree(path: Path) -> Path | None:
    """The repository a worktree directory belongs to, or None if `path` is not one.

    `<repo>/.claude/worktrees/<name>` and `<repo>/.worktrees/<name>` are recognised by
    their shape, so sessions in a worktree that has since been removed still attach to
    their repository. Claude Desktop's `~/.claude-worktrees/<repo>/<name>` does not name
    the repository's location; it is found through the worktree's `.git` file while the
    worktree exists.
    """
    text = path.as_posix()
    for marker in WORKTREE_MARKERS:
        index = text.find(marker)
        if index > 0:
            rest = text[index + len(marker) :]
            if rest and not rest.startswith("/"):
                return Path(text[:index])
    parts = PurePosixPath(text).parts
    if DESKTOP_WORKTREES in parts:
        index = parts.index(DESKTOP_WORKTREES)
        if len(parts) >= index + 3:
            worktree = Path(*parts[: index + 3])
            git_dir = git_dir_of(worktree)
            if git_dir is not None and git_dir.parent.name == "worktrees":
                common = common_dir_of(git_dir)
                return common.parent if common.name == ".git" else common
    return None


@dataclass(frozen=True, slots=True)
class ProjectIdentity:
    identity: str
    """Normalised remote (`host/owner/repo`) when there is one, else `path`."""
    path: str
    """The checkout (or, without one, the working directory) the session ran in; a
    worktree is replaced by its repository."""
    source: str
    """`git` when `identity` is a remote, `path` otherwise."""
    remote: str = ""
    """The remote url as configured, credentials removed."""


def _strip_credentials(url: str) -> str:
    if "://" not in url:
        return url
    scheme, _, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = netloc.rpartition("@")[2]
    return f"{scheme}://{netloc}{slash}{path}"


def identify(cwd: str) -> ProjectIdentity:
    """The project a working directory belongs to, from what is on disk right now.

    `cwd` comes from a transcript, so it may not exist here (another machine, a removed
    checkout): then the path itself is the identity.
    """
    path = Path(cwd)
    repo = repository_of_worktree(path)
    base = repo if repo is not None else path
    checkout = find_checkout(base) if base.is_absolute() else None
    project_path = str(repo if repo is not None else (checkout or path))
    if checkout is not None:
        raw = read_remote(checkout)
        if raw is not None:
            identity = normalise_remote(raw)
            if identity is not None:
                return ProjectIdentity(
                    identity, str(repo or checkout), "git", _strip_credentials(raw)
                )
    return ProjectIdentity(project_path, project_path, "path")
