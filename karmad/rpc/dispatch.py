"""From one request line to one response line, per JSON-RPC 2.0.

jsonrpcserver's synchronous dispatcher does the per-request work (schema check, method
lookup, argument binding). We parse the line ourselves and split batches, because the
library validates a batch as a whole and would answer one "Invalid request" for a batch
that mixes valid and invalid items, where the specification wants one answer per item.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jsonrpcserver import dispatch_to_serializable

from karmad import codec
from karmad.protocol import ERRORS, ErrorCode, ErrorData

if TYPE_CHECKING:
    from collections.abc import Callable

    from jsonrpcserver import Result

    from karmad.rpc.server import Call

_REASONS = {int(code): info.reason for code, info in ERRORS.items()}


def error_response(code: ErrorCode, detail: str = "", id_: Any = None) -> dict[str, Any]:
    data = codec.to_builtins(ErrorData(reason=ERRORS[code].reason, detail=detail))
    return {
        "jsonrpc": "2.0",
        "error": {"code": int(code), "message": ERRORS[code].message, "data": data},
        "id": id_,
    }


def _identity(value: Any) -> Any:
    return value


def _with_reason(response: dict[str, Any]) -> dict[str, Any]:
    """Give the library's own errors (parse, method not found...) our `data.reason` shape."""
    error = response.get("error")
    if error is None:
        return response
    data = error.get("data")
    if not (isinstance(data, dict) and "reason" in data):
        code = int(error.get("code", ErrorCode.INTERNAL_ERROR))
        reason = _REASONS.get(code, "server_error")
        detail = "" if data is None else str(data)
        if code == ErrorCode.INVALID_REQUEST:
            detail = "not a JSON-RPC 2.0 request object"
        error["data"] = codec.to_builtins(ErrorData(reason=reason, detail=detail))
    return response


class Dispatcher:
    def __init__(self, methods: dict[str, Callable[..., Result]]) -> None:
        self._methods = methods

    def _one(self, item: Any, call: Call) -> dict[str, Any] | None:
        if not isinstance(item, dict):
            return error_response(ErrorCode.INVALID_REQUEST, "not a JSON-RPC 2.0 request object")
        response = dispatch_to_serializable(
            item, self._methods, context=call, deserializer=_identity
        )
        if response is None:
            return None
        assert isinstance(response, dict)
        return _with_reason(response)

    def dispatch(self, line: bytes, call: Call) -> bytes | None:
        """The response line (without newline), or None when nothing must be answered."""
        try:
            document = codec.decode_any(line)
        except codec.InvalidData as exc:
            return codec.encode_json(error_response(ErrorCode.PARSE_ERROR, str(exc)))
        if isinstance(document, list):
            if not document:
                return codec.encode_json(error_response(ErrorCode.INVALID_REQUEST, "empty batch"))
            answers = [r for item in document if (r := self._one(item, call)) is not None]
            return codec.encode_json(answers) if answers else None
        answer = self._one(document, call)
        return None if answer is None else codec.encode_json(answer)
