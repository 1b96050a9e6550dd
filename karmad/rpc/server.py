"""The Unix-socket transport: newline-delimited JSON-RPC, one task per client.

What a line means is `dispatch.py`'s business. This file decides who is served and
for how long, and cuts the byte stream into lines:

- Admission: only our own uid (kernel credentials), at most `rpc.max_clients`
  connections, and at most `rpc.max_clients_per_process` of them from one process (by
  the peer's pid), so a client that leaks connections cannot lock the others out.
- Framing: a line longer than `rpc.max_message_bytes` is answered `message_too_large`
  and the connection closed, since the rest of it cannot be framed.
- Idleness: a connection that completes no request for `rpc.idle_timeout_s` and holds
  no event subscription is told `idle_timeout` and closed; one that accepts nothing we
  write for `WRITE_TIMEOUT_S` is dropped.

Requests on one connection are answered in order; connections are served at once.
Handlers run synchronously on the event loop (they never block) and a batch yields
between its items, so a slow or greedy client delays only itself.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import anyio
import anyio.lowlevel
from anyio.abc import SocketAttribute, SocketStream, TaskGroup, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream

from karmad import codec, logs
from karmad.bus import Bus, Subscription
from karmad.config import RpcConfig
from karmad.peercred import PeerCredentials, PeerCredentialsUnavailable, peer_credentials
from karmad.protocol import ERRORS, NOTIFY_EVENT, NOTIFY_OVERFLOW, ErrorCode, Overflow
from karmad.rpc.call import Call
from karmad.rpc.dispatch import Dispatcher, error_line

log = logs.get("karmad.rpc")

WRITE_TIMEOUT_S = 10.0
"""A client that accepts nothing for this long is disconnected."""

WRITE_PIECE = 1 << 16
"""Long answers are written in pieces of this size, each a chance for other clients to
be served, and none piling up in the event loop's write buffer."""

_GONE = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    anyio.IncompleteRead,
    OSError,
)
"""How a socket says the peer has gone (or the connection is being torn down)."""


def _pieces(parts: Sequence[bytes]) -> Iterator[bytes]:
    """`parts` and a newline, re-cut into pieces of at most `WRITE_PIECE` bytes."""
    buffer = bytearray()
    for part in parts:
        view = memoryview(part)
        while len(buffer) + len(view) >= WRITE_PIECE:
            cut = WRITE_PIECE - len(buffer)
            buffer += view[:cut]
            view = view[cut:]
            yield bytes(buffer)
            buffer.clear()
        buffer += view
    buffer += b"\n"
    yield bytes(buffer)


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

    async def send(self, *parts: bytes) -> None:
        """Write one line: `parts` joined, and a newline."""
        async with self._lock:
            for piece in _pieces(parts):
                with anyio.fail_after(WRITE_TIMEOUT_S):
                    await self._stream.send(piece)

    async def send_quietly(self, *parts: bytes) -> bool:
        """Send; False if the client is gone or stopped reading."""
        try:
            await self.send(*parts)
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
        self._per_process: dict[int, int] = {}
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
        per_process = self._config.max_clients_per_process
        if peer.pid is not None and self._per_process.get(peer.pid, 0) >= per_process:
            return (
                f"process {peer.pid} already holds {per_process} connections "
                "(rpc.max_clients_per_process)"
            )
        return ""

    def _admit(self, peer: PeerCredentials, delta: int) -> None:
        self._active += delta
        if peer.pid is not None:
            held = self._per_process.get(peer.pid, 0) + delta
            if held:
                self._per_process[peer.pid] = held
            else:
                del self._per_process[peer.pid]

    async def _read_loop(self, conn: Connection, stream: SocketStream) -> None:
        reader = BufferedByteReceiveStream(stream)
        while True:
            idle = math.inf if conn.subscriptions else self._config.idle_timeout_s
            line = await self._receive(reader, idle)
            if line is None:
                return
            if isinstance(line, ErrorCode):
                await conn.send_quietly(error_line(line, self._why(line, idle)))
                log.warning(ERRORS[line].reason, connection=conn.id, pid=conn.peer.pid)
                return
            line = line.rstrip(b"\r")
            if not line.strip():
                continue
            call = Call(conn)
            response = await self._dispatcher.dispatch(line, call)
            if response is None:
                await anyio.lowlevel.checkpoint()  # a stream of notifications yields too
            elif not await conn.send_quietly(*response):
                return
            call.answered()

    async def _receive(
        self, reader: BufferedByteReceiveStream, idle: float
    ) -> bytes | ErrorCode | None:
        """The next line; the error that ends the connection; None once the client is gone."""
        limit = self._config.max_message_bytes
        with anyio.move_on_after(idle):
            try:
                line = await reader.receive_until(b"\n", limit + 1)
            except anyio.DelimiterNotFound:
                return ErrorCode.MESSAGE_TOO_LARGE
            except _GONE:
                return None
            # A newline anywhere in what was buffered ends a line, however far.
            return line if len(line) <= limit else ErrorCode.MESSAGE_TOO_LARGE
        return ErrorCode.IDLE_TIMEOUT

    def _why(self, code: ErrorCode, idle: float) -> str:
        if code == ErrorCode.IDLE_TIMEOUT:
            return f"no request for {idle:g} s (rpc.idle_timeout_s)"
        return f"a message may be at most {self._config.max_message_bytes} bytes"
