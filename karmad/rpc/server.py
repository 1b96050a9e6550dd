"""The Unix-socket transport: newline-delimited JSON-RPC, one task per client.

Requests on one connection are answered in order; many connections are served at once.
Handlers run synchronously on the event loop (they never block, by contract), so the
only awaits here are socket I/O — a client that stops reading can stall its own
connection and nothing else.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskGroup, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream

from karmad import codec, logs
from karmad.bus import Bus, Subscription
from karmad.config import RpcConfig
from karmad.peercred import PeerCredentials, PeerCredentialsUnavailable, peer_credentials
from karmad.protocol import NOTIFY_EVENT, NOTIFY_OVERFLOW, ErrorCode, Overflow
from karmad.rpc.dispatch import Dispatcher, error_response

log = logs.get("karmad.rpc")

WRITE_TIMEOUT_S = 10.0
"""A client that accepts nothing for this long is disconnected."""


@dataclass
class Call:
    """What a handler may know and do about the connection its request came from."""

    connection: Connection
    _after: list[Callable[[], None]] = field(default_factory=list)

    @property
    def peer(self) -> PeerCredentials:
        return self.connection.peer

    def after_response(self, fn: Callable[[], None]) -> None:
        """Run `fn` once the response has been written (e.g. shut down after saying so)."""
        self._after.append(fn)


class Connection:
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
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, TimeoutError):
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
            if self._active >= self._config.max_clients:
                log.warning("too_many_clients", connection=ident, limit=self._config.max_clients)
                refusal = error_response(ErrorCode.SHUTTING_DOWN, "too many clients")
                refusal["error"]["data"]["reason"] = "too_many_clients"
                with anyio.move_on_after(1):
                    await stream.send(codec.encode_json(refusal) + b"\n")
                return
            self._active += 1
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
            finally:
                self._active -= 1
                self._bus.publish("rpc.client.disconnected", {"connection": ident}, remember=False)

    async def _read_loop(self, conn: Connection, stream: SocketStream) -> None:
        reader = BufferedByteReceiveStream(stream)
        limit = self._config.max_message_bytes
        while True:
            try:
                line = await reader.receive_until(b"\n", limit + 1)
            except anyio.DelimiterNotFound:
                log.warning("message_too_large", connection=conn.id, limit=limit)
                answer = error_response(
                    ErrorCode.MESSAGE_TOO_LARGE, f"a message may be at most {limit} bytes"
                )
                await self._send_quietly(conn, codec.encode_json(answer))
                return
            except (
                anyio.IncompleteRead,
                anyio.EndOfStream,
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
                OSError,
            ):
                return
            if len(line) > limit:
                answer = error_response(
                    ErrorCode.MESSAGE_TOO_LARGE, f"a message may be at most {limit} bytes"
                )
                await self._send_quietly(conn, codec.encode_json(answer))
                return
            line = line.rstrip(b"\r")
            if not line.strip():
                continue
            call = Call(conn)
            response = self._dispatcher.dispatch(line, call)
            if response is not None and not await self._send_quietly(conn, response):
                return
            for fn in call._after:
                fn()

    @staticmethod
    async def _send_quietly(conn: Connection, line: bytes) -> bool:
        try:
            await conn.send(line)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError, TimeoutError):
            return False
        return True
