"""One line appended to a session: how long until `session.get` shows it.

    .venv/bin/python -m bench.index_append [--megabytes 100] [--trials 15] [--backend asyncio]

Through a real daemon: a 100 MB session and a small one are indexed first; then, in
alternation, one assistant line is appended to either and `session.get` is polled on
one open connection until its request count grows. Prints the median (and spread) for
each file and their ratio: the goal is <= 50 ms, independent of the file's size. The
watcher's step (`index.watch_step_ms`) bounds the latency from below; it is printed.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.corpus import CORPUS, fresh_ids, say
from karmad.config import IndexConfig
from tests.support.daemon import Home, KarmadProcess

BIG = "aaaaaaaa-0000-4000-8000-000000000001"
SMALL = "bbbbbbbb-0000-4000-8000-000000000002"


class Connection:
    """One socket kept open, as a client watching a session would."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.reader = self.sock.makefile("rb")
        self.ids = 0

    def call(self, method: str, params: dict[str, Any]) -> Any:
        self.ids += 1
        message = {"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params}
        self.sock.sendall(json.dumps(message).encode() + b"\n")
        answer = json.loads(self.reader.readline())
        return answer["result"]


def session_lines(session: str, megabytes: float) -> bytes:
    """Lines of the corpus's largest session, with fresh ids, up to `megabytes`."""
    source = (
        CORPUS / "projects" / "-home-kenth56-vsla" / "6dc88126-2048-43a9-b5c2-b9747d5a0301.jsonl"
    )
    template = source.read_bytes().replace(
        b"6dc88126-2048-43a9-b5c2-b9747d5a0301", session.encode()
    )
    out = bytearray()
    copy = 0
    while len(out) < megabytes * 1_000_000:
        out += fresh_ids(template, copy)
        copy += 1
    return bytes(out)


def appended_line(session: str) -> bytes:
    record = {
        "type": "assistant",
        "sessionId": session,
        "uuid": str(uuid.uuid4()),
        "timestamp": "2026-01-20T10:00:00.000Z",
        "requestId": f"req_{uuid.uuid4().hex}",
        "message": {
            "id": f"msg_{uuid.uuid4().hex}",
            "model": "claude-sonnet-4-20250514",
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 5, "cache_read_input_tokens": 1000},
            "content": [{"type": "text", "text": "one more line"}],
        },
    }
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def trial(conn: Connection, path: Path, session: str) -> float:
    before = conn.call("session.get", {"id": session})["tokens"]["requests"]
    data = appended_line(session)
    start = time.perf_counter()
    with path.open("ab") as f:
        f.write(data)
    while conn.call("session.get", {"id": session})["tokens"]["requests"] == before:
        if time.perf_counter() - start > 10:
            raise RuntimeError("the appended line did not show up within 10 s")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=100)
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="karmad-bench-") as tmp:
        home = Home(Path(tmp)).create()
        projects = home.claude / "projects" / "-work-bench"
        projects.mkdir(parents=True)
        big = projects / f"{BIG}.jsonl"
        small = projects / f"{SMALL}.jsonl"
        say(f"generating a {args.megabytes:.0f} MB session ...")
        big.write_bytes(session_lines(BIG, args.megabytes))
        small.write_bytes(session_lines(SMALL, 0.01))
        daemon = KarmadProcess(home, backend=args.backend)
        daemon.start()
        try:
            start = time.perf_counter()
            while True:
                status = daemon.call("index.status")
                if status["state"] == "idle" and status["indexed_bytes"] == status["bytes"]:
                    break
                time.sleep(0.05)
            sizes = f"{big.stat().st_size / 1e6:.1f} MB + {small.stat().st_size / 1e3:.1f} kB"
            took = time.perf_counter() - start
            say(f"initial index: {sizes} in {took:.2f} s (includes the full-text pass)")
            conn = Connection(daemon.socket)
            times: dict[str, list[float]] = {"100 MB session": [], "small session": []}
            for n in range(args.trials):
                for name, path, session in (
                    ("100 MB session", big, BIG),
                    ("small session", small, SMALL),
                ):
                    times[name].append(trial(conn, path, session))
                    time.sleep(0.25)  # let the watcher settle between trials
                if n == 0:
                    for values in times.values():
                        values.clear()  # the first trial warms caches up
            step = IndexConfig().watch_step_ms
            say(f"watch step: {step} ms (index.watch_step_ms); backend {args.backend}")
            say(f"{'append -> visible in session.get':34} {'median':>9} {'min':>9} {'max':>9}")
            medians = {}
            for name, values in times.items():
                medians[name] = statistics.median(values)
                say(
                    f"{name:34} {medians[name] * 1000:7.1f}ms {min(values) * 1000:7.1f}ms "
                    f"{max(values) * 1000:7.1f}ms"
                )
            ratio = medians["100 MB session"] / medians["small session"]
            say(
                f"100 MB / small: {ratio:.2f}x (independent of size when close to 1); "
                f"goal <= 50 ms: {'met' if medians['100 MB session'] <= 0.05 else 'NOT met'}"
            )
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()
