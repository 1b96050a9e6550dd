"""After a full disk: how long from space returning until the index holds everything.

    sudo .venv/bin/python -m bench.index_recovery [--runs 5] [--sessions 26] [--backend asyncio]

Through a real daemon whose state directory (index.db) is on a small tmpfs (so it needs
root, to mount one): the tmpfs is filled to the last byte, sessions arrive and cannot be
written (the index reports the full disk), then the filler is deleted and the clock runs
until `index.status` says idle with every session indexed and no error. Prints the
median and spread; the baseline is the same sessions indexed with space to spare, so the
difference is what noticing the space and trying again costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.corpus import say
from tests.support.daemon import Home, KarmadProcess
from tests.support.transcripts import assistant, user, write


def sessions(projects: Path, count: int, run: int) -> int:
    for n in range(count):
        sid = f"{run:04d}{n:04d}-1111-4000-8000-000000000000"
        records = []
        for turn in range(40):
            records.append(user(f"question {turn} " + "words " * 200, session=sid))
            records.append(
                assistant(
                    f"msg_{run}_{n}_{turn}",
                    f"req_{run}_{n}_{turn}",
                    session=sid,
                    output=turn + 1,
                    stop="end_turn",
                    content=[{"type": "text", "text": f"answer {turn} " + "prose " * 300}],
                )
            )
        write(projects / f"-tmp-run{run}" / f"{sid}.jsonl", records)
    return count


def fill(mount: Path) -> Path:
    filler = mount / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 65536, 4096, 512, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(fd)
    return filler


def until(predicate: Callable[[], Any], timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise SystemExit("timed out")


def one_run(base: Path, run: int, args: argparse.Namespace, *, full: bool) -> float:
    """Seconds from the moment space returns (or, for the baseline, the sessions are
    written) until every session is indexed, on a fresh daemon and state directory."""
    home = Home(base / f"home{run}-{int(full)}").create()
    home.write_config("[doctor]\nmin_free_mb = 0\nwarn_free_mb = 0\n")
    mount = base / f"state{run}-{int(full)}"
    mount.mkdir()
    if full:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={args.tmpfs_mb}m", "tmpfs", str(mount)],
            check=True,
        )
    daemon = KarmadProcess(home, backend=args.backend, args=("--state-dir", str(mount / "s")))
    try:
        daemon.start()
        until(lambda: daemon.call("index.status")["state"] == "idle")
        projects = home.claude / "projects"
        if not full:
            start = time.monotonic()
            expected = sessions(projects, args.sessions, run)
            until(
                lambda: (
                    (s := daemon.call("index.status"))["state"] == "idle"
                    and s["sessions"] == expected
                )
            )
            return time.monotonic() - start
        filler = fill(mount)
        expected = sessions(projects, args.sessions, run)
        until(lambda: daemon.call("index.status")["state"] == "error")
        time.sleep(2)  # every change the watcher reported has been tried, and failed
        fill(mount)
        filler.unlink()
        start = time.monotonic()
        until(
            lambda: (
                (s := daemon.call("index.status"))["state"] == "idle" and s["sessions"] == expected
            )
        )
        return time.monotonic() - start
    finally:
        daemon.stop()
        if full:
            subprocess.run(["umount", "-l", str(mount)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=26)
    parser.add_argument("--backend", default="asyncio")
    parser.add_argument("--tmpfs-mb", type=int, default=8)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (it mounts a small tmpfs for the state directory)")
    recovery: list[float] = []
    plain: list[float] = []
    with tempfile.TemporaryDirectory(prefix="karmad-bench-") as tmp:
        for run in range(args.runs):
            plain.append(one_run(Path(tmp), run, args, full=False))
            recovery.append(one_run(Path(tmp), run, args, full=True))
            say(f"  run {run + 1}: recovered in {recovery[-1]:.2f} s (plain {plain[-1]:.2f} s)")
    say()
    say(
        f"space back -> everything indexed: median {statistics.median(recovery):.2f} s "
        f"(min {min(recovery):.2f}, max {max(recovery):.2f}) over {len(recovery)} runs"
    )
    say(f"the same sessions with space to spare: median {statistics.median(plain):.2f} s")


if __name__ == "__main__":
    main()
