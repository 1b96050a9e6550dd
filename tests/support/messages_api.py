"""A tiny stand-in for the Anthropic Messages API, for running the real Claude Code
offline: it records every request and answers from a script.

Standard library only (it runs inside the network namespace the test makes, beside the
CLI). Each request is appended to a JSON-lines log: method, path, headers (credentials
replaced), body. `POST /v1/messages` is answered by the next reply of the script, then by
`after` once the script is used up:

- `{"text": "..."}`: a streamed message with one text block (`end_turn`);
- `{"tool_use": {"name": "Read", "input": {...}}}`: a streamed tool call (`tool_use`),
  which Claude Code executes and answers with the next request;
- `{"error": 500}`: Anthropic's error shape with `x-should-retry: false`, which Claude
  Code reports without retrying.
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization", "cookie"})
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class MessagesApi(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, log_path: str, script: list[dict[str, Any]], after: dict[str, Any]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.log_path = log_path
        self.script = list(script)
        self.after = after
        self.lock = threading.Lock()
        self.count = 0

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionResetError | BrokenPipeError):
            return  # the CLI drops keep-alive connections when it exits
        super().handle_error(request, client_address)

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.count += 1
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def next_reply(self) -> dict[str, Any]:
        with self.lock:
            return self.script.pop(0) if self.script else self.after


def _events(message_id: str, model: str, reply: dict[str, Any]) -> list[tuple[str, Any]]:
    usage = {
        "input_tokens": 10,
        "output_tokens": 1,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    start = {
        "type": "message_start",
        "message": {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        },
    }
    if "tool_use" in reply:
        call = reply["tool_use"]
        block = {
            "type": "tool_use",
            "id": call.get("id", f"toolu_fake{message_id[-12:]}"),
            "name": call["name"],
            "input": {},
        }
        delta = {"type": "input_json_delta", "partial_json": json.dumps(call["input"])}
        stop = "tool_use"
    else:
        block = {"type": "text", "text": ""}
        delta = {"type": "text_delta", "text": reply.get("text", "OK")}
        stop = "end_turn"
    return [
        ("message_start", start),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        ),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 5},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


class _Handler(BaseHTTPRequestHandler):
    server: MessagesApi
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> Any:
        size = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(size) if size else b""
        if raw and self.headers.get("content-encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return {"_raw": raw.decode("utf-8", "replace")}

    def _record(self, body: Any) -> None:
        headers = {
            k.lower(): ("<redacted>" if k.lower() in SECRET_HEADERS else v)
            for k, v in self.headers.items()
        }
        self.server.record(
            {
                "t": time.time(),
                "method": self.command,
                "path": self.path,
                "headers": headers,
                "body": body,
            }
        )

    def _send(self, status: int, data: bytes, content_type: str, extra: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", f"req_fake{uuid.uuid4().hex}")
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int) -> None:
        body = {
            "type": "error",
            "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": "fake API"},
        }
        self._send(
            status, json.dumps(body).encode(), "application/json", {"x-should-retry": "false"}
        )

    def do_GET(self) -> None:
        self._record(None)
        self._error(404)

    def do_POST(self) -> None:
        body = self._body()
        self._record(body)
        path = self.path.split("?", 1)[0]
        if path.endswith("/v1/messages/count_tokens"):
            data = json.dumps({"input_tokens": 100}).encode()
            self._send(200, data, "application/json", {})
            return
        if not path.endswith("/v1/messages"):
            self._error(404)
            return
        reply = self.server.next_reply()
        if "error" in reply:
            self._error(int(reply["error"]))
            return
        model = (body or {}).get("model", "claude-fake")
        message_id = f"msg_fake{uuid.uuid4().hex}"
        events = _events(message_id, model, reply)
        if not (body or {}).get("stream"):
            self._error(400)
            return
        data = b"".join(
            f"event: {name}\ndata: {json.dumps(obj)}\n\n".encode() for name, obj in events
        )
        self._send(200, data, "text/event-stream", {"cache-control": "no-cache"})
