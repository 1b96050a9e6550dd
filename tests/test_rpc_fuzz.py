"""Random lines against a real karmad over its real socket: it answers each one as the
specification says, keeps the connection, and never stops.

Raise the count for a soak: `KARMAD_RPC_FUZZ_EXAMPLES=20000 pytest tests/test_rpc_fuzz.py`.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from karmad.protocol import ERRORS, METHODS
from tests.support.daemon import KarmadProcess

EXAMPLES = int(os.environ.get("KARMAD_RPC_FUZZ_EXAMPLES", "1000"))
REASONS = {info.reason: int(code) for code, info in ERRORS.items()}
METHOD_NAMES = [*sorted(set(METHODS) - {"daemon.shutdown"}), "no.such", "rpc.discover", ""]

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=30,
)


@st.composite
def deep(draw: st.DrawFn) -> bytes:
    """Arrays and objects nested from a little to far past what the interpreter follows."""
    depth = draw(st.integers(1, 6000))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b'[{"b":', b"}]")]))
    inner = draw(st.sampled_from([b"1", b"[]", b"{}", b'"x"', b""]))
    if opener != b"[" and inner == b"":
        inner = b"null"
    return opener * depth + inner + closer * depth


def encoded(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8", "surrogatepass")


@st.composite
def request(draw: st.DrawFn) -> bytes:
    """A request object, right or wrong in any member, params possibly very deep."""
    members: list[bytes] = []
    if draw(st.booleans()) or draw(st.booleans()):
        members.append(b'"jsonrpc":' + encoded(draw(st.sampled_from(["2.0", "2.0", "1.0", 2]))))
    if draw(st.integers(0, 9)):
        method = draw(st.sampled_from(METHOD_NAMES) | st.text(max_size=12) | VALUES)
        members.append(b'"method":' + encoded(method))
    choice = draw(st.integers(0, 5))
    if choice == 1:
        members.append(b'"params":' + encoded(draw(VALUES)))
    elif choice == 2:
        members.append(b'"params":{"topics":' + draw(deep()) + b"}")
    elif choice >= 3:
        members.append(b'"params":' + encoded(draw(st.dictionaries(st.text(max_size=8), VALUES))))
    if draw(st.integers(0, 3)):
        ident = draw(st.integers() | st.text(max_size=8) | st.none() | VALUES)
        members.append(b'"id":' + encoded(ident))
    if not draw(st.integers(0, 9)):
        members.append(encoded(draw(st.text(max_size=6))) + b":" + encoded(draw(VALUES)))
    members = draw(st.permutations(members))
    return b"{" + b",".join(members) + b"}"


ITEMS = request() | VALUES.map(encoded) | deep()
LINES = st.one_of(
    request(),
    st.lists(ITEMS, max_size=12).map(lambda items: b"[" + b",".join(items) + b"]"),
    deep(),
    VALUES.map(encoded),
    st.binary(max_size=200),
    st.tuples(request(), st.integers(0, 200)).map(lambda t: t[0][: t[1]]),  # cut short
    st.tuples(request(), st.sampled_from([b"\r", b" ", b"\t", b"\x00", b"\xff"])).map(
        lambda t: t[0] + t[1]
    ),
).map(lambda line: line.replace(b"\n", b" "))


def check_answer(answer: Any) -> None:
    """One response object as the specification and our error table say."""
    assert isinstance(answer, dict), answer
    assert answer.get("jsonrpc") == "2.0", answer
    assert ("result" in answer) != ("error" in answer), answer
    assert "id" in answer, answer
    if "error" in answer:
        error = answer["error"]
        reason = error["data"]["reason"]
        assert reason in REASONS, answer
        assert error["code"] == REASONS[reason], answer
        assert isinstance(error["message"], str) and error["message"], answer


class Connection:
    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(60)
        self.sock.connect(path)
        self.reader = self.sock.makefile("rb")
        self.sentinel = 0

    def exchange(self, line: bytes) -> list[Any]:
        """Send `line` and then a request of our own; every message before our answer."""
        self.sentinel += 1
        mark = f"sentinel-{self.sentinel}"
        self.sock.sendall(
            line + b"\n" + encoded({"jsonrpc": "2.0", "id": mark, "method": "daemon.hello"}) + b"\n"
        )
        seen: list[Any] = []
        while True:
            raw = self.reader.readline()
            assert raw.endswith(b"\n"), f"the daemon closed the connection after {line[:200]!r}"
            message = json.loads(raw)
            if isinstance(message, dict) and message.get("id") == mark:
                assert message["result"]["protocol"] == 1
                return seen
            seen.append(message)

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def test_random_lines_are_answered_and_the_daemon_lives_on(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str
) -> None:
    daemon = karmad_factory(anyio_backend)
    conn = Connection(str(daemon.socket))
    counts = {"lines": 0, "answers": 0, "errors": 0}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(LINES)
    def one(line: bytes) -> None:
        counts["lines"] += 1
        for message in conn.exchange(line):
            if isinstance(message, dict) and "method" in message and "id" not in message:
                continue  # an event after a fuzzed `events.subscribe`
            for answer in message if isinstance(message, list) else [message]:
                check_answer(answer)
                counts["answers"] += 1
                counts["errors"] += "error" in answer

    try:
        one()
    finally:
        conn.close()
        print(f"{anyio_backend}: {counts}")  # shown with -s
    assert counts["lines"] >= min(EXAMPLES, 100)
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert daemon.call("daemon.status")["pid"] == daemon.pid
    failures = [
        e
        for e in daemon.log_events()
        if e.get("event") in ("connection_failed", "handler_failed", "crashed")
    ]
    assert not failures, failures
