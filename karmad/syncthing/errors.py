"""The small exception tree every Syncthing failure becomes.

Only the REST client raises these for transport and HTTP failures (it is the one seam
where httpx's exceptions are caught); validation raises `Rejected` before anything is
sent. Callers decide by kind: retry later (`Unreachable`), tell the user to fix the key
(`AuthFailed`), or report Syncthing's own message (`Rejected`).
"""

from __future__ import annotations


class SyncthingError(Exception):
    pass


class Unreachable(SyncthingError):
    """No answer: not running, starting, stopped, or too slow."""


class AuthFailed(SyncthingError):
    """Syncthing refused karmad's API key."""


class Rejected(SyncthingError):
    """Syncthing (or karmad's validation, before sending) refused a request.

    `status` is Syncthing's HTTP status, or None when karmad refused to send it.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.message = message
        self.status = status
        super().__init__(message)


class BadResponse(SyncthingError):
    """An answer that does not have the shape this Syncthing version should give."""
