"""The daemon's own exception, carrying the protocol error it becomes on the wire.

Subsystems raise `KarmadError` with a code from `protocol.ErrorCode`; the RPC layer turns
it into a JSON-RPC error without knowing which subsystem spoke. Library exceptions never
travel this far: each library is translated at its own seam (codec, store, syncthing).
"""

from __future__ import annotations

from karmad.protocol import ERRORS, ErrorCode


class KarmadError(Exception):
    def __init__(self, code: ErrorCode, detail: str = "", *, field: str = "") -> None:
        self.code = code
        self.detail = detail
        self.field = field
        super().__init__(detail or ERRORS[code].message)

    @property
    def reason(self) -> str:
        return ERRORS[self.code].reason


def not_found(what: str, key: object) -> KarmadError:
    return KarmadError(ErrorCode.NOT_FOUND, f"no {what} {key!s}")


def invalid_argument(detail: str, *, field: str = "") -> KarmadError:
    return KarmadError(ErrorCode.INVALID_ARGUMENT, detail, field=field)
