"""The daily usage table a person asks for every day: `karmactl usage` against a daemon
that has the history indexed, vs `ccusage daily --offline` over the same files.

    .venv/bin/python -m bench.usage_daily [--megabytes 205] [--runs 11] [--keep DIR]

The history is the shared corpus replicated with fresh ids (as for `index_full.py`). A
real karmad indexes it once; then, interleaved so that load on the machine hits both
alike, each run times one `karmactl usage --tz UTC` (a fresh process: start-up, the RPC,
the table) and one `ccusage daily --offline` (a fresh process that reads every file),
both writing to a pipe. Prints medians and the ratio; the goal is >= 50x.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.corpus import CCUSAGE, have_ccusage, replicate, say
from tests.support.daemon import Home, KarmadProcess, karmactl_command

GOAL = 50.0


def timed(command: list[str], env: dict[str, str]) -> tuple[float, bytes]:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, check=True)
    return time.perf_counter() - start, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=205)
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--keep", type=Path, help="generate into (and keep) this directory")
    args = parser.parse_args()
    if not have_ccusage():
        sys.exit("ccusage is not installed (./dev test installs it into .venv/ccusage)")
    base = args.keep or Path(tempfile.mkdtemp(prefix="karmad-bench-"))
    try:
        home = Home(base / "home").create()
        projects = home.claude / "projects"
        projects.mkdir(parents=True, exist_ok=True)
        if not any(projects.iterdir()):
            say(f"generating {args.megabytes} MB under {projects} ...")
            files, size = replicate(projects, args.megabytes)
            say(f"history: {files} files, {size / 1e6:.1f} MB")
        daemon = KarmadProcess(home, backend=args.backend)
        daemon.start()
        try:
            start = time.perf_counter()
            while True:
                status = daemon.call("index.status")
                if status["state"] == "idle" and status["indexed_bytes"] == status["bytes"]:
                    break
                time.sleep(0.1)
            say(
                f"indexed {status['sessions']} sessions, {status['bytes'] / 1e6:.1f} MB "
                f"in {time.perf_counter() - start:.1f} s (full-text pass included)"
            )
            ours_env = home.env({"KARMAD_SOCKET": str(daemon.socket), "PAGER": "cat"})
            theirs_env = {
                "PATH": os.environ.get("PATH", ""),
                "HOME": str(base / "ccusage-home"),
                "CLAUDE_CONFIG_DIR": str(home.claude),
            }
            ours_cmd = karmactl_command("usage", "--tz", "UTC")
            theirs_cmd = [str(CCUSAGE), "daily", "--offline", "--timezone", "UTC"]
            times: dict[str, list[float]] = {"karmactl usage": [], "ccusage daily --offline": []}
            # One warm-up of each (page cache, compiled modules), then interleaved runs.
            _, table = timed(ours_cmd, ours_env)
            _, theirs = timed(theirs_cmd, theirs_env)
            for n in range(args.runs):
                times["karmactl usage"].append(timed(ours_cmd, ours_env)[0])
                times["ccusage daily --offline"].append(timed(theirs_cmd, theirs_env)[0])
                say(
                    f"  run {n + 1}/{args.runs}: "
                    + ", ".join(f"{name} {v[-1] * 1000:.0f} ms" for name, v in times.items())
                )
            medians = {name: statistics.median(v) for name, v in times.items()}
            say()
            say(f"{'median of ' + str(args.runs) + ' runs':34} {'ms':>9} {'min':>9} {'max':>9}")
            for name, values in times.items():
                say(
                    f"{name:34} {medians[name] * 1000:9.1f} {min(values) * 1000:9.1f} "
                    f"{max(values) * 1000:9.1f}"
                )
            ratio = medians["ccusage daily --offline"] / medians["karmactl usage"]
            verdict = "met" if ratio >= GOAL else "NOT met"
            say(f"ccusage / karmactl: {ratio:.1f}x faster (goal: >= {GOAL:.0f}x, {verdict})")
            say(f"days in the table: karmactl {_rows(table)}, ccusage {_rows(theirs)}")
        finally:
            daemon.stop()
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


def _rows(output: bytes) -> int:
    """Rows that start with a day (ccusage's narrow tables wrap it after the year)."""
    return len(re.findall(rb"^\W*20\d\d\b", output, re.MULTILINE))


if __name__ == "__main__":
    main()
