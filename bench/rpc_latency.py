"""How fast the control interface answers, against baselines measured in the same run.

1. `daemon.status` round trips over one persistent connection (p50/p99 of N calls) vs a
   bare Unix-socket echo server answering the same bytes (the floor of any socket RPC).
2. Wall time of `karmactl status` (a new process each time) vs `python -c pass` (the floor
   of any Python CLI).

Goals: RPC p50 <= 1 ms; karmactl status <= 2.5x python -c pass.

    .venv/bin/python bench/rpc_latency.py [--calls 5000] [--runs 30] [--backend asyncio]
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.daemon import Home, KarmadProcess

STDLIB_FLOOR = "import re, argparse, json, _socket"
"""The standard-library modules karmactl status cannot do without (`re` comes with
argparse and with the console-script wrapper pip generates): shown for scale."""

REQUEST = b'{"jsonrpc":"2.0","id":1,"method":"daemon.status"}\n'


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))
    return ordered[index]


def round_trips(path: str, calls: int) -> list[float]:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        reader = sock.makefile("rb")
        samples = []
        for _ in range(calls):
            start = time.perf_counter()
            sock.sendall(REQUEST)
            reader.readline()
            samples.append(time.perf_counter() - start)
        return samples


def echo_server(path: str, ready: threading.Event) -> None:
    """Reads a line, writes it back: the cheapest possible request/response."""
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen()
        ready.set()
        conn, _ = server.accept()
        with conn:
            reader = conn.makefile("rb")
            for line in reader:
                conn.sendall(line)


def wall_times(commands: list[list[str]], runs: int, env: dict[str, str]) -> list[list[float]]:
    """Interleaved, so that load from elsewhere on the machine hits every command alike."""
    samples: list[list[float]] = [[] for _ in commands]
    for _ in range(runs):
        for argv, times in zip(commands, samples, strict=True):
            start = time.perf_counter()
            subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
            times.append(time.perf_counter() - start)
    return samples


def compile_bytecode() -> None:
    """Byte-compile karmactl as `pip install` does, so an editable checkout (or one run
    with PYTHONDONTWRITEBYTECODE) is not timed compiling its sources on every call."""
    import karmactl

    compileall.compile_dir(Path(karmactl.__file__).parent, quiet=1)
    compileall.compile_file(Path(karmactl.__file__).parents[1] / "karmad" / "protocol.py", quiet=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="karmad-bench-"))
    daemon = KarmadProcess(Home(tmp / "node").create(), backend=args.backend)
    try:
        daemon.start()
        env = daemon.home.env()
        round_trips(str(daemon.socket), 200)  # warm up
        rpc = round_trips(str(daemon.socket), args.calls)

        echo_path = str(tmp / "echo.sock")
        ready = threading.Event()
        threading.Thread(target=echo_server, args=(echo_path, ready), daemon=True).start()
        ready.wait()
        echo = round_trips(echo_path, args.calls)

        bindir = Path(sys.executable).parent
        karmactl = shutil.which("karmactl", path=str(bindir)) or "karmactl"
        compile_bytecode()
        commands = [
            [sys.executable, "-c", "pass"],
            [sys.executable, "-c", STDLIB_FLOOR],
            [karmactl, "status"],
        ]
        wall_times(commands, 3, env)  # warm caches
        python_pass, stdlib, status = wall_times(commands, args.runs, env)
    finally:
        daemon.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    ms = 1000.0
    rpc_p50, rpc_p99 = percentile(rpc, 50) * ms, percentile(rpc, 99) * ms
    echo_p50, echo_p99 = percentile(echo, 50) * ms, percentile(echo, 99) * ms
    cli = statistics.median(status) * ms
    base = statistics.median(python_pass) * ms
    print(f"karmad {args.backend}, {args.calls} calls over one connection; CPUs: {os.cpu_count()}")
    print()
    print(f"{'':34}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'daemon.status round trip':34}{rpc_p50:>10.3f}{rpc_p99:>10.3f}")
    print(f"{'bare unix-socket echo (baseline)':34}{echo_p50:>10.3f}{echo_p99:>10.3f}")
    print(f"{'ratio':34}{rpc_p50 / echo_p50:>10.1f}{rpc_p99 / echo_p99:>10.1f}")
    print()
    print(f"{'':34}{'median ms':>10}")
    print(f"{'karmactl status (wall)':34}{cli:>10.1f}")
    print(f"{'python -c pass (baseline)':34}{base:>10.1f}")
    print(f"{'ratio':34}{cli / base:>10.2f}")
    floor = statistics.median(stdlib) * ms
    print(f"{'stdlib floor (for scale)':34}{floor:>10.1f}   {floor / base:.2f}x baseline")
    print(f"{'  ' + STDLIB_FLOOR:34}")
    print()
    rpc_ok = rpc_p50 <= 1.0
    cli_ok = cli / base <= 2.5
    print(f"goal RPC p50 <= 1 ms: {'met' if rpc_ok else 'NOT met'} ({rpc_p50:.3f} ms)")
    print(f"goal karmactl <= 2.5x python -c pass: {'met' if cli_ok else 'NOT met'}")
    print(f"goal karmactl status < 100 ms: {'met' if cli < 100 else 'NOT met'} ({cli:.1f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
