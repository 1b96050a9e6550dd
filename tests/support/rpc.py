"""An async raw JSON-RPC client for tests: sends exactly the bytes a test gives it."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream


class RawClient:
    def __init__(self, stream: SocketStream) -> None:
        self.stream = stream
        self._reader = BufferedByteReceiveStream(stream)
        self._ids = itertools.count(1)

    @classmethod
    async def connect(cls, path: Path) -> RawClient:
        return cls(await anyio.connect_unix(path))

    async def send_line(self, data: bytes) -> None:
        await self.stream.send(data + b"\n")

    async def send(self, message: Any) -> None:
        await self.send_line(json.dumps(message, separators=(",", ":")).encode())

    async def receive(self, timeout: float = 10) -> Any:
        with anyio.fail_after(timeout):
            line = await self._reader.receive_until(b"\n", 64 << 20)
        return json.loads(line)

    async def at_eof(self, timeout: float = 10) -> bool:
        """True when the daemon closed the connection (nothing more to read)."""
        with anyio.fail_after(timeout):
            try:
                await self._reader.receive_until(b"\n", 64 << 20)
            except (anyio.IncompleteRead, anyio.EndOfStream, anyio.BrokenResourceError):
                return True
            except OSError:
                return True
        return False

    async def call(self, method: str, params: Any = None, timeout: float = 10) -> Any:
        ident = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": ident, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)
        while True:
            answer = await self.receive(timeout)
            if isinstance(answer, dict) and answer.get("id") == ident:
                return answer

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
