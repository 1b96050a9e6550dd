"""The daemon's memory with 10,000 sessions indexed, and its CPU use when idle.

    .venv/bin/python -m bench.index_footprint [--sessions 10000] [--idle 10] [--steps 20,100]

Generates N small sessions (real corpus lines, fresh ids), starts a real daemon, waits
for the index to be complete (both passes), then reads the daemon's resident memory
(VmRSS, and the peak VmHWM) from /proc and measures the CPU time it uses over `--idle`
seconds in which nothing changes. Repeated for each watcher step given: the watcher
(watchfiles) wakes every step to look for news, which is what idle CPU is made of.
Goals: RSS <= 150 MB; idle CPU ~0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.corpus import CORPUS, fresh_ids, say
from tests.support.daemon import Home, KarmadProcess


def session_template() -> bytes:
    """The first lines of a corpus session: a prompt, answers with usage, a tool call."""
    source = (
        CORPUS / "projects" / "-home-kenth56-vsla" / "f6108699-47cc-4b21-8ca6-3223992990b3.jsonl"
    )
    return b"".join(source.read_bytes().splitlines(keepends=True)[:12])


def generate(projects: Path, sessions: int) -> int:
    template = session_template()
    size = 0
    for n in range(sessions):
        data = fresh_ids(template, n)
        session = fresh_ids(b"f6108699-47cc-4b21-8ca6-3223992990b3", n).decode()
        folder = projects / f"-work-project-{n % 40}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{session}.jsonl").write_bytes(data)
        size += len(data)
    return size


def proc_status(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


def cpu_seconds(pid: int) -> float:
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(parts[11]) + int(parts[12])) / ticks  # utime + stime


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                out.append(int(entry.name))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--steps", default="20,100", help="watcher steps (ms) to measure")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="karmad-bench-") as tmp:
        base = Path(tmp)
        projects = base / "claude" / "projects"
        say(f"generating {args.sessions} sessions ...")
        size = generate(projects, args.sessions)
        say(f"{args.sessions} sessions, {size / 1e6:.1f} MB")
        for step in (int(s) for s in args.steps.split(",")):
            home = Home(base / f"home-{step}").create()
            home.write_config(f"[index]\nwatch_step_ms = {step}\n")
            daemon = KarmadProcess(
                home, backend=args.backend, extra_env={"CLAUDE_CONFIG_DIR": str(projects.parent)}
            )
            daemon.start()
            try:
                start = time.perf_counter()
                while True:
                    status = daemon.call("index.status")
                    done = (
                        status["text_indexed_bytes"] == status["indexed_bytes"] == status["bytes"]
                    )
                    if status["state"] == "idle" and done and status["sessions"] == args.sessions:
                        break
                    time.sleep(0.1)
                took = time.perf_counter() - start
                time.sleep(1.0)  # let the last events and log lines settle
                memory = proc_status(daemon.pid)
                samples = []
                for _ in range(3):
                    before = cpu_seconds(daemon.pid)
                    time.sleep(args.idle / 3)
                    samples.append((cpu_seconds(daemon.pid) - before) / (args.idle / 3))
                idle = statistics.median(samples)
                say(f"\nwatch step {step} ms ({args.backend}): indexed in {took:.1f} s")
                say(
                    f"  RSS {memory['VmRSS'] / 2**20:.1f} MiB "
                    f"(peak {memory['VmHWM'] / 2**20:.1f} MiB); "
                    f"goal <= 150 MB: {'met' if memory['VmRSS'] <= 150e6 else 'NOT met'}"
                )
                say(
                    f"  idle CPU {idle * 100:.2f}% of one core "
                    f"({idle * args.idle * 1000:.0f} ms over {args.idle:.0f} s); "
                    f"child processes: {len(children(daemon.pid))}"
                )
            finally:
                daemon.stop()


if __name__ == "__main__":
    main()
