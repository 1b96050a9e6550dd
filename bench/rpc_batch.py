"""What one client's big JSON-RPC batch does to every other client, against the same
daemon with no batch running.

Client A sends one batch of N `session.list` calls (the daemon indexes S sessions);
meanwhile client B calls `daemon.status` in a loop over its own connection. Reported:
B's latency (p50, p99, max) beside B alone, A's wall time, the size of A's answer and
karmad's peak RSS. Three runs:

1. `alone`: B with nothing else going on (the baseline).
2. `raised`: A's batch of N items with `rpc.max_batch_items` and `rpc.max_response_bytes`
   raised so the daemon runs all of it (how much a long batch stalls others).
3. `defaults`: A's batch of N items with the default limits (refused at once), then the
   same calls as batches of the default size, one after another.

Goal: while A's batch runs, B waits at most about one of A's items at a time: B's p50
<= 5 ms and its longest wait <= 250 ms however long the batch (the daemon yields to
other clients between the items of a batch; before, B waited for the whole batch).

    .venv/bin/python bench/rpc_batch.py [--items 10000] [--sessions 200] [--limit 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import say
from bench.index_footprint import generate, proc_status
from tests.support.daemon import Home, KarmadProcess, read_line

STATUS = b'{"jsonrpc":"2.0","id":1,"method":"daemon.status"}\n'


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def batch(items: int, limit: int, first_id: int = 1) -> bytes:
    calls = [
        {"jsonrpc": "2.0", "id": first_id + i, "method": "session.list", "params": {"limit": limit}}
        for i in range(items)
    ]
    return json.dumps(calls, separators=(",", ":")).encode() + b"\n"


class Result:
    def __init__(self) -> None:
        self.seconds = 0.0
        self.answer_bytes = 0
        self.results = 0
        self.errors: dict[str, int] = {}

    def add(self, line: bytes) -> None:
        self.answer_bytes += len(line)
        answer: Any = json.loads(line)
        for item in answer if isinstance(answer, list) else [answer]:
            if "result" in item:
                self.results += 1
            else:
                reason = item["error"].get("data", {}).get("reason", "?")
                self.errors[reason] = self.errors.get(reason, 0) + 1


def send_batches(path: str, lines: list[bytes], answers: list[bytes], result: Result) -> None:
    """Client A: each batch in turn, reading its whole answer before the next.

    Answers are parsed only after B has finished: parsing tens of MiB holds this
    process's GIL, which B's thread would count as the daemon's delay."""
    start = time.perf_counter()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        for line in lines:
            sock.sendall(line)
            answers.append(read_line(sock))
    result.seconds = time.perf_counter() - start


def latencies_while(path: str, busy: threading.Thread | None, minimum: int) -> list[float]:
    """Client B: daemon.status round trips until A is done (at least `minimum` of them)."""
    samples: list[float] = []
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        reader = sock.makefile("rb")
        while len(samples) < minimum or (busy is not None and busy.is_alive()):
            start = time.perf_counter()
            sock.sendall(STATUS)
            reader.readline()
            samples.append(time.perf_counter() - start)
    return samples


def run(daemon: KarmadProcess, lines: list[bytes]) -> tuple[list[float], Result, int]:
    result = Result()
    answers: list[bytes] = []
    a = threading.Thread(target=send_batches, args=(str(daemon.socket), lines, answers, result))
    a.start()
    b = latencies_while(str(daemon.socket), a, 20)
    a.join()
    for answer in answers:
        result.add(answer)
    return b, result, proc_status(daemon.pid)["VmHWM"]


def start(base: Path, name: str, projects: Path, config: str, sessions: int) -> KarmadProcess:
    home = Home(base / name).create()
    home.write_config(config)
    daemon = KarmadProcess(home, extra_env={"CLAUDE_CONFIG_DIR": str(projects.parent)})
    daemon.start()
    deadline = time.monotonic() + 300
    while daemon.call("index.status")["sessions"] < sessions:
        if time.monotonic() > deadline:
            raise SystemExit("the sessions were not indexed in 300 s")
        time.sleep(0.1)
    return daemon


def row(name: str, b: list[float], a: Result | None = None, peak: int = 0) -> None:
    ms = 1000.0
    text = (
        f"{name:10}{percentile(b, 50) * ms:>9.2f}{percentile(b, 99) * ms:>9.2f}"
        f"{max(b) * ms:>9.1f}{len(b):>8}"
    )
    if a is not None:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(a.errors.items())) or "-"
        text += (
            f"{a.seconds:>9.2f}{a.answer_bytes / 2**20:>10.1f}{peak / 2**20:>9.0f}"
            f"  {a.results} results; errors: {errors}"
        )
    say(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000, help="calls in A's batch")
    parser.add_argument("--sessions", type=int, default=200, help="sessions indexed")
    parser.add_argument("--limit", type=int, default=10, help="session.list page size")
    parser.add_argument("--chunk", type=int, default=100, help="default rpc.max_batch_items")
    parser.add_argument(
        "--raised-config",
        default="[rpc]\nmax_batch_items = 100000\nmax_response_bytes = 1073741824\n",
        help="karmad config for the `raised` run ('' for a daemon without these keys)",
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="karmad-bench-"))
    try:
        projects = tmp / "claude" / "projects"
        generate(projects, args.sessions)
        say(
            f"karmad asyncio; A: {args.items} x session.list(limit={args.limit}) over "
            f"{args.sessions} sessions; B: daemon.status in a loop; CPUs: {os.cpu_count()}"
        )
        say()
        say(
            f"{'B':10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'calls':>8}"
            f"{'A s':>9}{'A MiB':>10}{'RSS MiB':>9}"
        )
        raised = start(tmp, "raised", projects, args.raised_config, args.sessions)
        try:
            alone = latencies_while(str(raised.socket), None, 2000)
            row("alone", alone)
            during, a, peak = run(raised, [batch(args.items, args.limit)])
            row("raised", during, a, peak)
            took = a.seconds
        finally:
            raised.stop()
        if args.raised_config:
            defaults = start(tmp, "defaults", projects, "", args.sessions)
            try:
                chunks = [
                    batch(min(args.chunk, args.items - i), args.limit, i + 1)
                    for i in range(0, args.items, args.chunk)
                ]
                b, a, peak = run(defaults, [batch(args.items, args.limit), *chunks])
                row("defaults", b, a, peak)
            finally:
                defaults.stop()
        say()
        p50, longest = percentile(during, 50) * 1000, max(during) * 1000
        ok = p50 <= 5 and longest <= 250
        say(
            f"goal while A's batch runs, B p50 <= 5 ms and longest wait <= 250 ms: "
            f"{'met' if ok else 'NOT met'} ({p50:.2f} ms, {longest:.1f} ms over {took:.1f} s)"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
