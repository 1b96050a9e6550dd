"""How people name a project: one rule for every command that takes one.

A project is named by its full identity (`host/owner/repo`, as `gitremote` normalises a
remote), a remote in any spelling, its key (`p-…`), a checkout path, or a short form
(`owner/repo`, `repo`, or the label a team shows) that matches exactly one project this
member knows of. A short form matching several is refused with the candidates listed, so
nothing (an unshare above all) acts on a guess; one matching none is never taken for a
new identity (`acme/app` is not a repository `app` on a host called `acme`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from karmad import gitremote
from karmad.domain import DomainError, is_project_key, project_key


@dataclass(frozen=True, slots=True)
class Known:
    """A project this member knows of: shared with a team, or seen in its sessions."""

    identity: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class Named:
    identity: str
    local_folder: bool = False
    """The identity is a local path: a folder with no git remote."""


def label_of(identity: str) -> str:
    return "/".join(identity.rstrip("/").split("/")[-2:])


def _looks_like_host(segment: str) -> bool:
    return "." in segment or ":" in segment or segment == "localhost"


def _looks_like_path(text: str) -> bool:
    return text.startswith(("/", "~", ".")) or os.path.isdir(os.path.expanduser(text))


def _hint() -> str:
    return "give its full identity (host/owner/repo, e.g. github.com/acme/app), a remote or a path"


def resolve(ref: str, known: Iterable[Known]) -> Named:
    """The project `ref` names, or a `DomainError` saying why it names none or several."""
    text = ref.strip()
    if not text:
        raise DomainError("invalid_argument", "no project given", field="project")
    projects = {k.identity: k for k in known}
    if text in projects:
        return Named(text, text.startswith("/"))
    if is_project_key(text):
        for identity in projects:
            if project_key(identity) == text:
                return Named(identity, identity.startswith("/"))
        raise DomainError("not_found", f"no known project has the key {text}", field="project")
    if "://" in text or (":" in text and not _looks_like_path(text)):
        remote = gitremote.normalise_remote(text)
        if remote is None:
            raise DomainError(
                "invalid_argument", f"{text!r} is not a git remote; {_hint()}", field="project"
            )
        return Named(remote)
    if _looks_like_path(text):
        path = Path(os.path.expanduser(text)).resolve()
        if not path.is_dir():
            raise DomainError("invalid_argument", f"{path} is not a directory", field="project")
        found = gitremote.identify(str(path))
        return Named(found.identity, found.source != "git")
    lowered = text.lower().strip("/")
    candidates = sorted(
        identity
        for identity, k in projects.items()
        if identity.lower() == lowered
        or identity.lower().endswith("/" + lowered)
        or (k.label and k.label.lower() == lowered)
    )
    if len(candidates) == 1:
        return Named(candidates[0], candidates[0].startswith("/"))
    if candidates:
        raise DomainError(
            "conflict",
            f"{text!r} names several projects: {', '.join(candidates)}; give the full identity",
            field="project",
        )
    parts = lowered.split("/")
    if len(parts) >= 3 and _looks_like_host(parts[0]):
        remote = gitremote.normalise_remote(f"https://{lowered}")
        if remote is not None:
            return Named(remote)
    raise DomainError("not_found", f"no known project {text!r}; {_hint()}", field="project")
