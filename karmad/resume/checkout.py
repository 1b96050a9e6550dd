"""Which local checkout a session is continued in.

A project is the same everywhere by its identity (the normalised git remote); where it
is checked out differs per machine. karmad knows this machine's checkouts from the
sessions Claude Code ran here; the one used most recently wins. A checkout given by
hand must be a checkout of the same remote, or for a project without a remote, the same
directory: continuing a session in another project's files would only mislead.
"""

from __future__ import annotations

import os
from pathlib import Path

from karmad import gitremote
from karmad.errors import KarmadError, invalid_argument
from karmad.protocol import ErrorCode


def _checkout_root(path: Path) -> Path:
    """The checkout (or worktree) directory holding `path`, or `path` itself."""
    found = gitremote.find_checkout(path)
    return found if found is not None else path


def check(given: str, identity: str, by_remote: bool) -> str:
    """The checkout root for a directory the user named; raises when it is not one of
    the session's project."""
    path = Path(os.path.realpath(os.path.expanduser(given)))
    if not path.is_dir():
        raise invalid_argument(f"{given} is not a directory", field="checkout")
    found = gitremote.identify(str(path))
    if by_remote:
        if found.source != "git":
            raise invalid_argument(
                f"{path} is not a checkout with a git remote; the session belongs to {identity}",
                field="checkout",
            )
        if found.identity != identity:
            raise invalid_argument(
                f"{path} is a checkout of {found.identity}, not of {identity}",
                field="checkout",
            )
        return str(_checkout_root(path))
    if os.path.realpath(found.path) != os.path.realpath(identity):
        raise invalid_argument(
            f"the session's project has no git remote: it can only continue in {identity}, "
            f"not in {path}",
            field="checkout",
        )
    return os.path.realpath(found.path)


def choose(candidates: list[str], identity: str, by_remote: bool) -> str:
    """The first of this machine's known checkouts (most recent first) that still is
    one of the project; raises when there is none."""
    if not by_remote:
        candidates = [identity]
    for candidate in candidates:
        path = Path(candidate)
        if not path.is_dir():
            continue
        found = gitremote.identify(candidate)
        if by_remote and found.source == "git" and found.identity == identity:
            return os.path.realpath(candidate)
        if not by_remote and os.path.realpath(found.path) == os.path.realpath(identity):
            return os.path.realpath(found.path)
    raise KarmadError(
        ErrorCode.NOT_FOUND,
        f"no local checkout of {identity} is known: karmad learns checkouts from the "
        "sessions Claude Code runs in them; give one with --checkout PATH",
        field="checkout",
    )
