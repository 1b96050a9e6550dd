"""From one request line to its answer: JSON-RPC 2.0 over the method table.

The transport (`server.py`) frames lines and bounds their size; the rest of a
request's way to its handler and back is this file, top to bottom:

1. `Dispatcher.dispatch`: the line must be JSON nested at most `MAX_REQUEST_DEPTH`
   deep (`parse_error`, `message_too_deep`). An array is a batch: not empty, at most
   `rpc.max_batch_items` items (`invalid_request`, `batch_too_large`), answered item by
   item, yielding to the other clients between items.
2. `Dispatcher._answer`: an item must be a request object (`invalid_request`, answered
   with a null id); its method must be registered (`method_not_found`) and its params
   must fit the declared struct (`invalid_params`). Then the handler runs, on the event
   loop (handlers never block), and `_as_error` turns whatever it raised into a
   `KarmadError`. A notification (no `id`) is never answered, not even with an error.
   Calls of mutating methods leave an audit line in the log.
3. Answers are encoded here. A response holds at most `rpc.max_response_bytes`: an
   answer that would cross it becomes `response_too_large`, and the batch items after
   it are not run and are answered the same way.

Every error object the daemon sends is built by `error_line`, here and in the transport.

We do this ourselves rather than with a JSON-RPC library: the one the design named
(jsonrpcserver) runs its async dispatcher on asyncio only, answers one error for a
whole batch with one bad item, validates each request with jsonschema on top of our
own typed decoding, and has not been released since 2022.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import anyio
import anyio.lowlevel
import msgspec
from msgspec import UNSET, UnsetType

from karmad import codec, logs
from karmad.config import RpcConfig
from karmad.domain import DomainError
from karmad.errors import KarmadError
from karmad.protocol import ERRORS, MAX_REQUEST_DEPTH, ErrorCode, ErrorData
from karmad.rpc.call import Call
from karmad.rpc.router import Route
from karmad.store import StoreError, StoreFull

log = logs.get("karmad.rpc")

Id = str | int | float | None


class _Request(msgspec.Struct, forbid_unknown_fields=True):
    """A request object. Unknown members are refused, so that a misspelt `params` is an
    error rather than a call without params."""

    jsonrpc: Literal["2.0"]
    method: str
    params: dict[str, Any] | list[Any] | UnsetType = UNSET
    id: Id | UnsetType = UNSET
    """Absent: a notification."""


class _ErrorObject(msgspec.Struct):
    code: int
    message: str
    data: ErrorData


class _Success(msgspec.Struct):
    jsonrpc: str
    result: Any
    id: Id


class _Failure(msgspec.Struct):
    jsonrpc: str
    error: _ErrorObject
    id: Id


def error_line(code: ErrorCode, detail: str = "", field: str = "", id_: Id = None) -> bytes:
    """The one place an error object is made: `data.reason` always from `ERRORS`."""
    info = ERRORS[code]
    data = ErrorData(reason=info.reason, detail=detail, field=field)
    return codec.encode_json(_Failure("2.0", _ErrorObject(int(code), info.message, data), id_))


_CODES = {info.reason: code for code, info in ERRORS.items()}
"""Domain rules name their failures by reason; the wire needs the code."""


def _as_error(exc: Exception, method: str) -> KarmadError:
    """What a handler raised, as the error its caller is told. Called in `except`."""
    if isinstance(exc, KarmadError):
        return exc
    if isinstance(exc, DomainError):
        code = _CODES.get(exc.reason, ErrorCode.INVALID_ARGUMENT)
        return KarmadError(code, exc.detail, field=exc.field)
    if isinstance(exc, StoreFull):
        log.error("store_full", method=method, error=str(exc))
        return KarmadError(ErrorCode.STORE_FULL, str(exc))
    if isinstance(exc, StoreError):
        log.error("store_error", method=method, error=str(exc))
        return KarmadError(ErrorCode.STORE_UNAVAILABLE, str(exc))
    # The detail stays in our log; the client learns only that it was our fault.
    log.exception("handler_failed", method=method)
    return KarmadError(ErrorCode.INTERNAL_ERROR, f"{method} failed; see karmad's log")


class _Room:
    """What is left of `rpc.max_response_bytes` for the answers to one line."""

    __slots__ = ("left",)

    def __init__(self, size: int) -> None:
        self.left = size


class Dispatcher:
    def __init__(self, routes: Mapping[str, Route], config: RpcConfig) -> None:
        self._routes = routes
        self._max_batch = config.max_batch_items
        self._max_response = config.max_response_bytes

    async def dispatch(self, line: bytes, call: Call) -> list[bytes] | None:
        """The response line (without newline) in pieces to be written one after the
        other, or None when nothing must be answered."""
        try:
            document = codec.decode_any(line, max_depth=MAX_REQUEST_DEPTH)
        except codec.TooDeep:
            detail = f"arrays and objects may nest at most {MAX_REQUEST_DEPTH} deep"
            return [error_line(ErrorCode.MESSAGE_TOO_DEEP, detail)]
        except codec.InvalidData as exc:
            return [error_line(ErrorCode.PARSE_ERROR, str(exc))]
        room = _Room(self._max_response)
        if not isinstance(document, list):
            answer = self._answer(document, call, room)
            return None if answer is None else [answer]
        if not document:
            return [error_line(ErrorCode.INVALID_REQUEST, "empty batch")]
        if len(document) > self._max_batch:
            detail = f"a batch may hold at most {self._max_batch} requests, not {len(document)}"
            return [error_line(ErrorCode.BATCH_TOO_LARGE, detail)]
        pieces: list[bytes] = []
        for n, item in enumerate(document):
            if n:
                await anyio.lowlevel.checkpoint()  # a long batch must not stall other clients
            answer = self._answer(item, call, room)
            if answer is not None:
                pieces += (b",", answer) if pieces else (b"[", answer)
        return [*pieces, b"]"] if pieces else None

    def _answer(self, item: Any, call: Call, room: _Room) -> bytes | None:
        """One request's answer; None for a notification, never answered, even an error."""
        try:
            request = codec.convert(item, _Request)
        except codec.InvalidData as exc:
            detail = f"not a JSON-RPC 2.0 request object: {exc}"
            return error_line(ErrorCode.INVALID_REQUEST, detail, exc.path)
        try:
            result = self._run(request, call, room)
            if isinstance(request.id, UnsetType):
                return None
            return self._encode(request.method, result, request.id, room)
        except KarmadError as exc:
            if isinstance(request.id, UnsetType):
                return None
            return error_line(exc.code, exc.detail, exc.field, request.id)

    def _run(self, request: _Request, call: Call, room: _Room) -> Any:
        """The handler's result; every failure raised as a `KarmadError`."""
        if room.left <= 0:
            raise KarmadError(
                ErrorCode.RESPONSE_TOO_LARGE,
                f"not run: the answers before it reached rpc.max_response_bytes "
                f"({self._max_response}); send it again",
            )
        route = self._routes.get(request.method)
        if route is None:
            raise KarmadError(ErrorCode.METHOD_NOT_FOUND, request.method)
        params = request.params
        if isinstance(params, list) and params:
            raise KarmadError(ErrorCode.INVALID_PARAMS, "params must be an object (by name)")
        try:
            typed = codec.convert(params if isinstance(params, dict) else {}, route.spec.params)
        except codec.InvalidData as exc:
            raise KarmadError(ErrorCode.INVALID_PARAMS, str(exc), field=exc.path) from None
        outcome = "ok"
        try:
            return route.handler(typed, call)
        except Exception as exc:
            error = _as_error(exc, request.method)
            outcome = error.reason
            raise error from None
        finally:
            if route.spec.mutating:
                self._audit(request.method, call, outcome)

    def _encode(self, method: str, result: Any, id_: Id, room: _Room) -> bytes:
        try:
            answer = codec.encode_json(_Success("2.0", result, id_))
        except codec.InvalidData:
            log.exception("result_unencodable", method=method)
            raise KarmadError(
                ErrorCode.INTERNAL_ERROR, f"{method} failed; see karmad's log"
            ) from None
        if len(answer) > room.left:
            log.warning("response_too_large", method=method, bytes=len(answer))
            detail = (
                f"{method} answered {len(answer)} bytes, more than the {room.left} left of "
                f"rpc.max_response_bytes ({self._max_response}); ask for less"
            )
            room.left = 0
            raise KarmadError(ErrorCode.RESPONSE_TOO_LARGE, detail)
        room.left -= len(answer)
        return answer

    @staticmethod
    def _audit(method: str, call: Call, outcome: str) -> None:
        """Who changed what: every call of a mutating method, by connection and process."""
        peer = call.connection.peer
        log.info(
            "rpc_mutation",
            method=method,
            outcome=outcome,
            pid=peer.pid,
            connection=call.connection.id,
        )
