"""Latency from writing a file on node A to its arrival on node B, on loopback.

Two real karmad processes, each managing its own Syncthing (loopback profile), share a
folder sendonly (A) -> receiveonly (B). Each trial writes a new session-sized file into
A's folder and times until B has it, complete:

  (a) watcher    nothing else: Syncthing's filesystem watcher with its default delay
  (b) rescan     karmad on A is asked (`syncthing.rescan`, that one path) right after
                 the write, as the packager does
  (c) rest       the same scan asked of Syncthing's REST API directly (no karmad), the
                 floor for (b): the difference is karmad's own cost

Prints each mode's median and spread, and (a)/(b). Goal: p50 of (b) <= 150 ms.

    .venv/bin/python -m bench.syncthing_latency [--watcher-trials 5] [--scan-trials 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.syncthing import Cluster, Node, start_cluster, wait_until

GOAL_P50_S = 0.150
FOLDER = "karma-bench"
POLL_S = 0.002


def session_bytes(size: int, trial: int) -> bytes:
    text = "x" * 200
    line = f'{{"type":"assistant","uuid":"{trial:08d}","message":{{"content":"{text}"}}}}\n'
    data = line.encode()
    return (data * (size // len(data) + 1))[:size]


def arrival(path: Path, content: bytes, timeout: float) -> float:
    """Seconds until `path` holds exactly `content`, polled every few milliseconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if path.stat().st_size == len(content) and path.read_bytes() == content:
                return time.monotonic()
        except FileNotFoundError:
            pass
        time.sleep(POLL_S)
    raise TimeoutError(f"{path.name} did not arrive within {timeout}s")


def trial(
    a_dir: Path,
    b_dir: Path,
    name: str,
    content: bytes,
    after_write: Callable[[str], None],
    timeout: float,
) -> float:
    tmp = a_dir / f".{name}.tmp"
    tmp.write_bytes(content)
    started = time.monotonic()
    # Appears whole, by rename, as karmad's packager writes files.
    tmp.rename(a_dir / name)
    after_write(name)
    return arrival(b_dir / name, content, timeout) - started


def run_mode(
    label: str,
    trials: int,
    a_dir: Path,
    b_dir: Path,
    size: int,
    after_write: Callable[[str], None],
    timeout: float,
) -> list[float]:
    results = []
    for i in range(trials):
        name = f"{label}-{i:03d}.jsonl"
        seconds = trial(a_dir, b_dir, name, session_bytes(size, i), after_write, timeout)
        results.append(seconds)
        print(f"  {label:8} trial {i + 1:2}/{trials}: {seconds * 1000:8.1f} ms", flush=True)
        time.sleep(0.2)  # let both sides settle (index exchange) before the next write
    return results


def summary(label: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p50 = statistics.median(ms)
    return f"{label:8} n={len(ms):3}  median {p50:9.1f} ms   min {ms[0]:8.1f}   max {ms[-1]:8.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watcher-trials", type=int, default=5)
    parser.add_argument("--scan-trials", type=int, default=20)
    parser.add_argument("--size", type=int, default=150 * 1024, help="bytes per file")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args()
    if args.watcher_trials < 1 or args.scan_trials < 1:
        parser.error("at least one trial per mode")

    with tempfile.TemporaryDirectory(prefix="karmad-bench-") as tmp:
        started: list[Node] = []
        try:
            print("starting two karmad nodes (loopback profile)...", flush=True)
            cluster = start_cluster(
                Path(tmp), 2, karmad=True, backend=args.backend, started=started
            )
            a, b = cluster.nodes
            cluster.pair(a, b)
            # Syncthing's defaults: watcher on, fsWatcherDelayS=10.
            dirs = cluster.share(a, [b], FOLDER)
            a_dir, b_dir = dirs[a.name], dirs[b.name]
            Cluster.wait_idle(a, FOLDER)
            Cluster.wait_idle(b, FOLDER)
            wait_until(lambda: FOLDER in {f["folder_id"] for f in a.call("folder.list")["folders"]})
            version = a.status()["version"]
            print(f"Syncthing {version}, {args.size} bytes per file, {os.cpu_count()} CPUs\n")

            def nothing(name: str) -> None:
                pass

            def karmad_rescan(name: str) -> None:
                a.call("syncthing.rescan", {"folder": FOLDER, "paths": [name]})

            def rest_rescan(name: str) -> None:
                a.rest.post("/rest/db/scan", folder=FOLDER, sub=name)

            scan = run_mode("rescan", args.scan_trials, a_dir, b_dir, args.size, karmad_rescan, 30)
            rest = run_mode("rest", args.scan_trials, a_dir, b_dir, args.size, rest_rescan, 30)
            watcher = run_mode(
                "watcher", args.watcher_trials, a_dir, b_dir, args.size, nothing, 120
            )
        finally:
            for node in started:
                node.teardown()

    print()
    print(summary("watcher", watcher))
    print(summary("rescan", scan))
    print(summary("rest", rest))
    p50_watcher, p50_scan = statistics.median(watcher), statistics.median(scan)
    print(f"\nratio watcher/rescan (medians): {p50_watcher / p50_scan:.1f}x")
    print(f"karmad's share of (b): {(p50_scan - statistics.median(rest)) * 1000:+.1f} ms vs REST")
    met = "met" if p50_scan <= GOAL_P50_S else "NOT met"
    print(f"goal p50(rescan) <= {GOAL_P50_S * 1000:.0f} ms: {met} ({p50_scan * 1000:.1f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
