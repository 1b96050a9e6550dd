"""A small blocking JSON-RPC client for karmad's socket.

Deliberately standard-library only (`json`, `_socket`): the commands people run most
(`karmactl status`) must start nearly as fast as a bare interpreter, and importing the
typed protocol costs more than the whole call. Commands that want typed results import
`karmad.protocol` themselves.

The socket comes from `_socket`, the C module `socket` wraps: `socket` adds enum
conversions and imports `selectors` (for `sendfile`), ~3 ms, a tenth of the whole
command, and this client uses nothing it adds (CPython and PyPy both have `_socket`).
"""

from __future__ import annotations

import itertools
import json
from _socket import AF_UNIX, SOCK_STREAM
from _socket import socket as _unix_socket

# The socket rule is shared with the daemon; it is standard library only, like this file.
from karmad.socket_rule import default_socket

# Type-only imports: `typing` and friends cost start-up time on every invocation.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Any

MAX_LINE = 64 << 20
"""Longest response line accepted (session pages can be large, never unbounded)."""


class ClientError(Exception):
    @property
    def reason(self) -> str:
        """Stable and machine-readable, like the daemon's error reasons."""
        return "client_error"


class CommandFailed(ClientError):
    """A command's own refusal, before or after talking to the daemon; `exit` is 1 for a
    failure and 2 for bad usage (README: exit status)."""

    def __init__(self, message: str, *, reason: str = "failed", exit: int = 1) -> None:
        super().__init__(message)
        self._reason = reason
        self.exit = exit

    @property
    def reason(self) -> str:
        return self._reason


class DaemonUnreachable(ClientError):
    @property
    def reason(self) -> str:
        return "unreachable"

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        self.why = why
        super().__init__(f"cannot reach karmad at {path}: {why}")


class RpcError(ClientError):
    """An error answer from the daemon."""

    def __init__(self, code: int, message: str, data: Any) -> None:
        self.code = code
        self.message = message
        self.data = data if isinstance(data, dict) else {}
        super().__init__(self.describe())

    @property
    def reason(self) -> str:
        return str(self.data.get("reason", ""))

    @property
    def detail(self) -> str:
        return str(self.data.get("detail", ""))

    def describe(self) -> str:
        field = self.data.get("field")
        where = f" (at {field})" if field else ""
        if self.detail and self.reason in SELF_CONTAINED:
            return f"{self.detail}{where}"
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.message}{detail}{where}"


SELF_CONTAINED = frozenset(
    ("not_leader", "not_found", "conflict", "invalid_transition", "already_exists")
)
"""Reasons whose `detail` says all the generic message does, and more: printing both reads
"Only the team leader can do this: only alice.desk (the leader) can do this"."""


class ProtocolViolation(ClientError):
    @property
    def reason(self) -> str:
        return "protocol_violation"


class _ClosedWhileIdle(Exception):
    pass


def _is_idle_notice(reply: Any) -> bool:
    """The line karmad sends before closing an idle connection (error `idle_timeout`)."""
    if not isinstance(reply, dict) or reply.get("id") is not None:
        return False
    data = (reply.get("error") or {}).get("data")
    return isinstance(data, dict) and data.get("reason") == "idle_timeout"


class Client:
    def __init__(self, path: str | None = None, timeout: float | None = 30.0) -> None:
        self.path = path or default_socket()
        self._timeout = timeout
        self._sock: _unix_socket | None = None
        self._buffer = bytearray()
        self._ids = itertools.count(1)
        self._pending_notes: list[dict[str, Any]] = []
        self._answered = False

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        sock = _unix_socket(AF_UNIX, SOCK_STREAM)
        sock.settimeout(self._timeout)
        try:
            sock.connect(self.path)
        except FileNotFoundError:
            sock.close()
            raise DaemonUnreachable(self.path, "no socket (karmad is not running)") from None
        except ConnectionRefusedError:
            sock.close()
            raise DaemonUnreachable(self.path, "connection refused (stale socket?)") from None
        except PermissionError:
            sock.close()
            raise DaemonUnreachable(self.path, "permission denied") from None
        except OSError as exc:
            sock.close()
            raise DaemonUnreachable(self.path, exc.strerror or str(exc)) from None
        self._sock = sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buffer.clear()
        self._answered = False

    def set_timeout(self, timeout: float | None) -> None:
        self._timeout = timeout
        if self._sock is not None:
            self._sock.settimeout(timeout)

    def _send(self, message: Any) -> None:
        if self._sock is None:
            self.connect()
        assert self._sock is not None
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise DaemonUnreachable(self.path, f"connection lost ({exc})") from None

    def _read_message(self) -> Any:
        assert self._sock is not None
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                if not line.strip():
                    continue
                try:
                    return json.loads(line)
                except ValueError as exc:
                    raise ProtocolViolation(f"daemon sent invalid JSON: {exc}") from None
            if len(self._buffer) > MAX_LINE:
                raise ProtocolViolation("daemon sent an oversized message")
            try:
                chunk = self._sock.recv(1 << 16)
            except TimeoutError:
                raise DaemonUnreachable(self.path, "timed out waiting for an answer") from None
            except OSError as exc:
                raise DaemonUnreachable(self.path, f"connection lost ({exc})") from None
            if not chunk:
                raise DaemonUnreachable(self.path, "the daemon closed the connection")
            self._buffer += chunk

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Send one request and return its result; notifications read meanwhile are kept.

        A connection the daemon closed as idle (`rpc.idle_timeout_s`, while a command
        waited for the user, say) is replaced once: the daemon reads nothing written
        after it gave up on a connection, so sending the request again is safe.
        """
        try:
            return self._call(method, params)
        except _ClosedWhileIdle:
            self.close()
            return self._call(method, params)

    def _call(self, method: str, params: Mapping[str, Any] | None) -> Any:
        ident = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": ident, "method": method}
        if params:
            message["params"] = {k: v for k, v in params.items() if v is not None}
        try:
            self._send(message)
        except DaemonUnreachable:
            if self._answered:  # it served this connection before: closed as idle since
                raise _ClosedWhileIdle from None
            raise
        while True:
            reply = self._read_message()
            if isinstance(reply, dict) and "method" in reply and "id" not in reply:
                self._pending_notes.append(reply)
                continue
            if _is_idle_notice(reply):
                raise _ClosedWhileIdle
            if not isinstance(reply, dict) or reply.get("id") != ident:
                raise ProtocolViolation(f"unexpected message from daemon: {reply!r:.200}")
            self._answered = True
            if "error" in reply:
                error = reply["error"]
                raise RpcError(
                    int(error.get("code", 0)), str(error.get("message", "")), error.get("data")
                )
            return reply.get("result")

    def notifications(self) -> Iterator[dict[str, Any]]:
        """Server-pushed notifications, in order, until the connection ends."""
        while self._pending_notes:
            yield self._pending_notes.pop(0)
        while True:
            try:
                message = self._read_message()
            except DaemonUnreachable:
                return
            if isinstance(message, dict) and "method" in message:
                yield message
