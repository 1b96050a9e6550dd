"""`--member`: whose sessions or usage a command shows. Its own module so that `usage`
does not import the session views (and the protocol's types) to parse one option."""

from __future__ import annotations

MEMBER_HELP = "whose sessions: a user name (any of their machines) or a member tag (user.machine)"


def whose(member: str | None) -> dict[str, str | None]:
    """`--member` as the protocol's filters: a member tag names one machine, a user name
    (tags are `user.machine`, and user names have no dot) all of that user's."""
    if member is None:
        return {}
    return {"member": member} if "." in member else {"user": member}
