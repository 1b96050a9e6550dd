"""The Unix-socket transport: newline-delimited JSON-RPC, one task per client.

What a line means is `dispatch.py`'s business. This file decides who is served and
cuts the byte stream into lines:

- Admission: only our own uid (kernel credentials), at most `rpc.max_clients`
  connections (`too_many_clients`).
- Framing: a line longer than `rpc.max_message_bytes` is answered `message_too_large`
  and the connection closed, since the rest of it cannot be framed. A client that
  accepts nothing we write for `WRITE_TIMEOUT_S` is dropped.

Requests on one connection are answered in order; connections are served at once.
Handlers run synchronously on the event loop (they never block), so the only awaits
here are socket I/O: a client that stops reading stalls its own connection only.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from pathlib import Path

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskGroup, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream

from karmad import codec, logs
from karmad.bus import Bus, Subscription
from karmad.config import RpcConfig
from karmad.peercred import PeerCredentials, PeerCredentialsUnavailable, peer_credentials
from karmad.protocol import NOTIFY_EVENT, NOTIFY_OVERFLOW, ErrorCode, Overflow
from karmad.rpc.call import Call
from karmad.rpc.dispatch import Dispatcher, error_line

log = logs.get("karmad.rpc")

WRITE_TIMEOUT_S = 10.0
"""A client that accepts nothing for this long is disconnected."""

_GONE = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    anyio.IncompleteRead,
    OSError,
)
"""How a socket says the peer has gone (or the connection is being torn down)."""


class Connection:
    """One client's connection; handlers see it as a `call.Channel`."""

    def __init__(
        self,
        ident: int,
        stream: SocketStream,
        peer: PeerCredentials,
        bus: Bus,
        tg: TaskGroup,
        client_buffer: int,
    ) -> None:
        self.id = ident
        self.peer = peer
        self._stream = stream
        self._bus = bus
        self._tg = tg
        self._client_buffer = client_buffer
        self._lock = anyio.Lock()
        self.subscriptions: list[Subscription] = []

    async def send(self, line: bytes) -> None:
        async with self._lock:
            with anyio.fail_after(WRITE_TIMEOUT_S):
                await self._stream.send(line + b"\n")

    async def send_quietly(self, line: bytes) -> bool:
        """Send; False if the client is gone or stopped reading."""
        try:
            await self.send(line)
        except (*_GONE, TimeoutError):
            return False
        return True

    def close(self) -> None:
        self._tg.cancel_scope.cancel()

    def subscribe(self, topics: list[str], since: int | None, call: Call) -> Subscription:
        """Buffer matching events from now on; deliver them once `call` is answered.

        Starting the forwarder only after the response keeps the order clients expect:
        the subscription's id first, then its events.
        """
        sub = self._bus.subscribe(topics, self._client_buffer, since=since)
        self.subscriptions.append(sub)

        def start() -> None:
            self._tg.start_soon(self._forward, sub)

        call.after_response(start)
        return sub

    async def _forward(self, sub: Subscription) -> None:
        try:
            async with sub.receive:
                async for event in sub.receive:
                    note = {"jsonrpc": "2.0", "method": NOTIFY_EVENT, "params": event}
                    await self.send(codec.encode_json(note))
            if sub.overflowed:
                log.warning("client_overflow", connection=self.id, buffer=sub.buffer)
                overflow = Overflow(
                    subscription=sub.id, dropped_after=sub.last_seq, buffer=sub.buffer
                )
                note = {"jsonrpc": "2.0", "method": NOTIFY_OVERFLOW, "params": overflow}
                await self.send(codec.encode_json(note))
                self.close()
        except (*_GONE, TimeoutError):
            self.close()
        finally:
            self._bus.unsubscribe(sub)


class RpcServer:
    def __init__(
        self,
        path: Path,
        dispatcher: Dispatcher,
        bus: Bus,
        config: RpcConfig,
        *,
        allowed_uid: int | None = None,
    ) -> None:
        self.path = path
        self._dispatcher = dispatcher
        self._bus = bus
        self._config = config
        self._uid = os.getuid() if allowed_uid is None else allowed_uid
        self._ids = itertools.count(1)
        self._active = 0
        self._inode: int | None = None

    @property
    def active_connections(self) -> int:
        return self._active

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        # Any file here is stale: the caller holds the single-instance lock for this path.
        try:
            listener = await anyio.create_unix_listener(self.path, mode=0o600)
        except OSError as exc:  # "AF_UNIX path too long" names no path: say which one
            raise OSError(exc.errno, exc.strerror or str(exc), str(self.path)) from exc
        self._inode = self.path.stat().st_ino
        log.info("listening", socket=str(self.path))
        try:
            async with listener, anyio.create_task_group() as tg:
                task_status.started()
                await listener.serve(self._handle, task_group=tg)
        finally:
            self._remove_socket()

    def _remove_socket(self) -> None:
        """Unlink the socket only if it is still ours (not a successor's)."""
        try:
            if self._inode is not None and self.path.stat().st_ino == self._inode:
                self.path.unlink()
        except FileNotFoundError:
            pass

    async def _handle(self, stream: SocketStream) -> None:
        ident = next(self._ids)
        async with stream:
            try:
                peer = peer_credentials(stream.extra(SocketAttribute.raw_socket))
            except (OSError, PeerCredentialsUnavailable) as exc:
                log.warning("peer_unknown", connection=ident, error=str(exc))
                return
            if peer.uid != self._uid:
                log.warning("peer_refused", connection=ident, uid=peer.uid, pid=peer.pid)
                return
            if refusal := self._refusal(peer):
                log.warning("too_many_clients", connection=ident, pid=peer.pid, detail=refusal)
                with anyio.move_on_after(1), contextlib.suppress(*_GONE):
                    await stream.send(error_line(ErrorCode.TOO_MANY_CLIENTS, refusal) + b"\n")
                return
            self._admit(peer, +1)
            self._bus.publish(
                "rpc.client.connected", {"connection": ident, "pid": peer.pid}, remember=False
            )
            try:
                async with anyio.create_task_group() as tg:
                    conn = Connection(
                        ident, stream, peer, self._bus, tg, self._config.client_buffer
                    )
                    await self._read_loop(conn, stream)
                    tg.cancel_scope.cancel()
            except Exception:
                # One connection's failure is a bug to fix, never a reason to stop serving.
                log.exception("connection_failed", connection=ident, pid=peer.pid)
            finally:
                self._admit(peer, -1)
                self._bus.publish("rpc.client.disconnected", {"connection": ident}, remember=False)

    def _refusal(self, peer: PeerCredentials) -> str:
        """Why this peer may not connect now; empty when it may."""
        limit = self._config.max_clients
        if self._active >= limit:
            return f"karmad serves at most {limit} connections at once (rpc.max_clients)"
        return ""

    def _admit(self, peer: PeerCredentials, delta: int) -> None:
        self._active += delta

    async def _read_loop(self, conn: Connection, stream: SocketStream) -> None:
        reader = BufferedByteReceiveStream(stream)
        limit = self._config.max_message_bytes
        while True:
            try:
                line = await reader.receive_until(b"\n", limit + 1)
            except anyio.DelimiterNotFound:
                line = None
            except _GONE:
                return
            # A newline anywhere in what was buffered ends a line, however far.
            if line is None or len(line) > limit:
                log.warning("message_too_large", connection=conn.id, limit=limit)
                detail = f"a message may be at most {limit} bytes"
                await conn.send_quietly(error_line(ErrorCode.MESSAGE_TOO_LARGE, detail))
                return
            line = line.rstrip(b"\r")
            if not line.strip():
                continue
            call = Call(conn)
            response = self._dispatcher.dispatch(line, call)
            if response is not None and not await conn.send_quietly(response):
                return
            call.answered()
