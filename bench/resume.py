"""Resume and archive costs.

1. `session.resume` of a 50 MB session with subagents and saved tool results, through a
   real karmad: from the call to the finished copy (paths rewritten, every line marked),
   into a fresh clone each run. Baseline in the same run: a plain copy of the same files.
   Also: bytes written against the session's size.
2. The archive of a 200 MB history (the shared corpus replicated with fresh ids) on one
   filesystem: extra disk space (goal < 1%) counted as `du` counts it (each inode once),
   the first sweep that links everything, and an idle sweep. Beside it, where /dev/shm is
   another filesystem: the copies made instead of links.

    .venv/bin/python bench/resume.py [--mb 50] [--history-mb 200] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import CORPUS, replicate, say
from karmad.archive.archiver import Archiver
from karmad.bus import Bus, utc_now
from karmad.config import ArchiveConfig
from karmad.health import Health
from karmad.resume.claudecode import project_dir_name
from tests.support.daemon import Home, KarmadProcess
from tests.support.sessions import make_checkout

REMOTE = "git@github.com:acme/app.git"
_CWD = re.compile(rb'"cwd":"([^"]+)"')


def corpus_lines() -> list[tuple[bytes, bytes]]:
    """(line, the working directory its transcript names) for every corpus line."""
    out: list[tuple[bytes, bytes]] = []
    for path in sorted((CORPUS / "projects").rglob("*.jsonl")):
        data = path.read_bytes()
        found = _CWD.search(data)
        cwd = found.group(1) if found else b"/nowhere"
        out += [(x, cwd) for x in data.splitlines() if x.startswith(b"{")]
    if not out:
        raise SystemExit(f"no transcripts in {CORPUS} (set KARMAD_TEST_CORPUS)")
    return out


def fill(path: Path, lines: list[tuple[bytes, bytes]], size: int, sid: str, cwd: Path) -> int:
    """`size` bytes of corpus lines as lines of session `sid` run in `cwd`: its id and
    every path of the original checkout replaced, new uuids so no line repeats."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sid_field = re.compile(rb'"sessionId":"[^"]*"')
    uuid_field = re.compile(rb'"uuid":"[^"]*"')
    written = 0
    with path.open("wb") as f:
        while written < size:
            for raw, old in lines:
                line = raw.replace(old, str(cwd).encode())
                line = sid_field.sub(b'"sessionId":"' + sid.encode() + b'"', line)
                line = uuid_field.sub(lambda _: b'"uuid":"%s"' % str(uuid.uuid4()).encode(), line)
                f.write(line + b"\n")
                written += len(line) + 1
                if written >= size:
                    break
    return written


def wait(check: Any, timeout: float = 300.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.005)
    raise RuntimeError("timed out")


def resume_bench(tmp: Path, mb: int, runs: int) -> None:
    home = Home(tmp / "node").create()
    daemon = KarmadProcess(home).start()
    try:
        daemon.call("identity.init", {"user": "bench", "machine": "m1"})
        checkout = make_checkout(home.home / "src", REMOTE)
        sid = str(uuid.uuid4())
        folder = home.claude / "projects" / project_dir_name(str(checkout))
        lines = corpus_lines()
        total = mb * 1_000_000
        main = folder / f"{sid}.jsonl"
        size = fill(main, lines, total * 4 // 5, sid, checkout)
        for n in range(8):  # subagents: a fifth of the session
            agent = folder / sid / "subagents" / f"agent-a{n:06x}.jsonl"
            size += fill(agent, lines[n * 50 :], total // 40, sid, checkout)
        for n in range(5):
            result = folder / sid / "tool-results" / f"toolu_{n}.txt"
            result.parent.mkdir(parents=True, exist_ok=True)
            text = "".join(f"{checkout}/src/module_{i}.py: ok\n" for i in range(2000)).encode()
            result.write_bytes(text)
            size += len(text)
        files = sorted(p for p in (folder).rglob("*") if p.is_file())
        say(f"session: {len(files)} files, {size / 1e6:.1f} MB (main, 8 subagents, 5 tool results)")
        wait(
            lambda: (
                any(
                    s["id"] == sid and s["project"]
                    for s in daemon.call("session.list", {"limit": 500})["sessions"]
                )
                and daemon.call("index.status")["pending_bytes"] == 0
            )
        )
        copy_s: list[float] = []
        resume_s: list[float] = []
        written = 0
        for run in range(runs):
            target = tmp / f"copy{run}"
            t0 = time.perf_counter()
            for src in files:
                dest = target / src.relative_to(folder)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
            copy_s.append(time.perf_counter() - t0)
            shutil.rmtree(target)

            clone = make_checkout(home.home / f"clone{run}", REMOTE)
            t0 = time.perf_counter()
            started = daemon.call("session.resume", {"id": sid, "checkout": str(clone)})
            done = wait(
                lambda job=started["job"]: (
                    (r := daemon.call("session.resumeResult", {"job": job}))["state"] != "running"
                    and r
                )
            )
            resume_s.append(time.perf_counter() - t0)
            if done["state"] != "done":
                raise RuntimeError(json.dumps(done))
            written = done["bytes"]
        copy_m, resume_m = statistics.median(copy_s), statistics.median(resume_s)
        say(f"plain copy of the files: median {copy_m:.3f} s ({size / 1e6 / copy_m:.0f} MB/s)")
        say(
            f"session.resume:          median {resume_m:.3f} s ({size / 1e6 / resume_m:.0f} MB/s), "
            f"{resume_m / copy_m:.2f}x the copy; runs {', '.join(f'{s:.3f}' for s in resume_s)}"
        )
        say(f"bytes written: {written / 1e6:.1f} MB = {written / size:.3f}x the session's size")
    finally:
        daemon.stop()


def disk_use(*roots: Path) -> int:
    """Bytes of disk the trees use together, each inode counted once (as `du` does)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root in roots:
        for dirpath, dirs, names in os.walk(root):
            for name in [*dirs, *names, ""]:
                st = os.lstat(os.path.join(dirpath, name) if name else dirpath)
                key = (st.st_dev, st.st_ino)
                if key not in seen:
                    seen.add(key)
                    total += st.st_blocks * 512
    return total


def archive_bench(tmp: Path, mb: int, runs: int) -> None:
    live = tmp / "claude" / "projects"
    files, size = replicate(live, mb)
    say(f"history: {files} files, {size / 1e6:.1f} MB")
    places = [("one filesystem", tmp / "state")]
    shm = Path("/dev/shm")
    if shm.is_dir() and os.stat(shm).st_dev != os.stat(tmp).st_dev:
        places.append(("another filesystem (copies)", Path(tempfile.mkdtemp(dir=shm))))
    base = disk_use(live)
    for label, state in places:
        first_s: list[float] = []
        idle_s: list[float] = []
        extra = 0
        for run in range(runs if label == "one filesystem" else 1):
            archive = state / f"archive{run}"
            archiver = Archiver(
                live=live,
                archive=archive / "projects",
                replaced=archive / "replaced",
                index_path=tmp / "no-index.db",
                config=ArchiveConfig(),
                bus=Bus(),
                health=Health(),
                clock=utc_now,
            )
            t0 = time.perf_counter()
            report = archiver.keep(archiver.live_files())
            first_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            archiver.keep(archiver.live_files())
            idle_s.append(time.perf_counter() - t0)
            if archive.stat().st_dev == live.stat().st_dev:
                extra = disk_use(live, archive) - base
            else:
                extra = disk_use(archive)
            status = archiver.survey()
            assert status.uncovered_total == 0 and status.files == report.files
            shutil.rmtree(archive)
        say(
            f"archive, {label}: {extra / 1e6:.2f} MB extra on disk = "
            f"{100 * extra / size:.3f}% of the history; first sweep median "
            f"{statistics.median(first_s):.3f} s, idle sweep {statistics.median(idle_s):.3f} s"
        )
        if label != "one filesystem":
            shutil.rmtree(state, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--history-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="karmad-bench-resume-"))
    try:
        resume_bench(tmp / "resume", args.mb, args.runs)
        archive_bench(tmp / "archive", args.history_mb, args.runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
