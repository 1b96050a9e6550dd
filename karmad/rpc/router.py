"""Binds typed handlers to the method table in `protocol` and to jsonrpcserver.

A handler is a plain synchronous function `(params, call) -> result` with the types the
protocol declares for its method. The router does everything around it once, for all
methods: decoding params into the declared struct, turning `KarmadError` and store errors
into JSON-RPC errors with a stable `data.reason`, and encoding the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from jsonrpcserver import JsonRpcError, Result, Success

from karmad import codec, logs
from karmad.domain import DomainError
from karmad.errors import KarmadError
from karmad.protocol import ERRORS, METHODS, ErrorCode, ErrorData, Params
from karmad.store import StoreError, StoreFull

if TYPE_CHECKING:
    from karmad.rpc.server import Call

P = TypeVar("P", bound=Params)
Handler = Callable[[P, "Call"], Any]

log = logs.get("karmad.rpc")

_CODES = {info.reason: code for code, info in ERRORS.items()}
"""Domain rules name their failures by reason; the wire needs the code."""


def rpc_error(code: ErrorCode, detail: str = "", field: str = "") -> JsonRpcError:
    data = codec.to_builtins(ErrorData(reason=ERRORS[code].reason, detail=detail, field=field))
    return JsonRpcError(int(code), ERRORS[code].message, data)


class Router:
    def __init__(self) -> None:
        self._methods: dict[str, Callable[..., Result]] = {}

    def add(self, name: str, handler: Handler[Any]) -> None:
        spec = METHODS.get(name)
        if spec is None:
            raise KeyError(f"{name} is not declared in karmad.protocol.METHODS")
        if name in self._methods:
            raise KeyError(f"{name} is already registered")
        params_type = spec.params

        def entry(call: Call, *args: Any, **kwargs: Any) -> Result:
            if args:
                raise rpc_error(ErrorCode.INVALID_PARAMS, "params must be an object (by name)")
            try:
                params = codec.convert(kwargs, params_type)
            except codec.InvalidData as exc:
                raise rpc_error(ErrorCode.INVALID_PARAMS, str(exc), exc.path) from None
            try:
                result = handler(params, call)
            except KarmadError as exc:
                raise rpc_error(exc.code, exc.detail, exc.field) from None
            except DomainError as exc:
                raise rpc_error(
                    _CODES.get(exc.reason, ErrorCode.INVALID_ARGUMENT), exc.detail, exc.field
                ) from None
            except StoreFull as exc:
                log.error("store_full", method=name, error=str(exc))
                raise rpc_error(ErrorCode.STORE_FULL, str(exc)) from None
            except StoreError as exc:
                log.error("store_error", method=name, error=str(exc))
                raise rpc_error(ErrorCode.STORE_UNAVAILABLE, str(exc)) from None
            except Exception:
                # The detail stays in our log; the client learns only that it was our fault.
                log.exception("handler_failed", method=name)
                raise rpc_error(
                    ErrorCode.INTERNAL_ERROR, f"{name} failed; see karmad's log"
                ) from None
            return Success(codec.to_builtins(result))

        self._methods[name] = entry

    def method(self, name: str) -> Callable[[Handler[P]], Handler[P]]:
        def decorator(fn: Handler[P]) -> Handler[P]:
            self.add(name, fn)
            return fn

        return decorator

    @property
    def methods(self) -> dict[str, Callable[..., Result]]:
        return self._methods

    def missing(self) -> list[str]:
        """Declared methods nobody implements; the daemon refuses to start with any."""
        return sorted(set(METHODS) - set(self._methods))
