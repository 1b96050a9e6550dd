"""From one request line to its answer: JSON-RPC 2.0 over the method table.

The transport (`server.py`) frames lines and bounds their size; the rest of a
request's way to its handler and back is this file, top to bottom:

1. `Dispatcher.dispatch`: the line must be JSON nested at most `MAX_REQUEST_DEPTH`
   deep (`parse_error`, `message_too_deep`). An array is a batch: not empty
   (`invalid_request`), answered item by item.
2. `Dispatcher._answer`: an item must be a request object (`invalid_request`, answered
   with a null id); its method must be registered (`method_not_found`) and its params
   must fit the declared struct (`invalid_params`). Then the handler runs, on the event
   loop (handlers never block), and `_as_error` turns whatever it raised into a
   `KarmadError`. A notification (no `id`) is never answered, not even with an error.
   Calls of mutating methods leave an audit line in the log.
3. Answers are encoded here.

Every error object the daemon sends is built by `error_line`, here and in the transport.

We do this ourselves rather than with a JSON-RPC library: the one the design named
(jsonrpcserver) runs its async dispatcher on asyncio only, answers one error for a
whole batch with one bad item, validates each request with jsonschema on top of our
own typed decoding, and has not been released since 2022.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from karmad import codec, logs
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


class Dispatcher:
    def __init__(self, routes: Mapping[str, Route]) -> None:
        self._routes = routes

    def dispatch(self, line: bytes, call: Call) -> bytes | None:
        """The response line (without newline), or None when nothing must be answered."""
        try:
            document = codec.decode_any(line, max_depth=MAX_REQUEST_DEPTH)
        except codec.TooDeep:
            detail = f"arrays and objects may nest at most {MAX_REQUEST_DEPTH} deep"
            return error_line(ErrorCode.MESSAGE_TOO_DEEP, detail)
        except codec.InvalidData as exc:
            return error_line(ErrorCode.PARSE_ERROR, str(exc))
        if not isinstance(document, list):
            return self._answer(document, call)
        if not document:
            return error_line(ErrorCode.INVALID_REQUEST, "empty batch")
        answers = [a for item in document if (a := self._answer(item, call)) is not None]
        return b"[" + b",".join(answers) + b"]" if answers else None

    def _answer(self, item: Any, call: Call) -> bytes | None:
        """One request's answer; None for a notification, never answered, even an error."""
        try:
            request = codec.convert(item, _Request)
        except codec.InvalidData as exc:
            detail = f"not a JSON-RPC 2.0 request object: {exc}"
            return error_line(ErrorCode.INVALID_REQUEST, detail, exc.path)
        try:
            result = self._run(request, call)
            if isinstance(request.id, UnsetType):
                return None
            return self._encode(request.method, result, request.id)
        except KarmadError as exc:
            if isinstance(request.id, UnsetType):
                return None
            return error_line(exc.code, exc.detail, exc.field, request.id)

    def _run(self, request: _Request, call: Call) -> Any:
        """The handler's result; every failure raised as a `KarmadError`."""
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

    @staticmethod
    def _encode(method: str, result: Any, id_: Id) -> bytes:
        try:
            return codec.encode_json(_Success("2.0", result, id_))
        except codec.InvalidData:
            log.exception("result_unencodable", method=method)
            raise KarmadError(
                ErrorCode.INTERNAL_ERROR, f"{method} failed; see karmad's log"
            ) from None

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
