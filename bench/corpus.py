"""Test data for the benchmarks: the shared corpus replicated with fresh ids, and the
independent programs measured beside karmad."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("KARMAD_TEST_CORPUS", REPO.parent / "shared" / "corpus" / "claude"))
CCUSAGE = Path(
    os.environ.get(
        "KARMAD_TEST_CCUSAGE", REPO / ".venv" / "ccusage" / "node_modules" / ".bin" / "ccusage"
    )
)

_UUID = re.compile(rb"[0-9a-f]{8}(-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
_IDS = re.compile(rb"(msg_|req_|toolu_)([A-Za-z0-9]+)")


def fresh_ids(data: bytes, copy: int) -> bytes:
    """The same transcript with every session, line, message and request id renewed,
    so copies are distinct sessions and requests (nothing de-duplicates)."""
    prefix = b"%08x" % copy
    data = _UUID.sub(lambda m: prefix + m.group(1), data)
    return _IDS.sub(lambda m: m.group(1) + prefix + m.group(2), data)


def fresh_name(rel: str, copy: int) -> str:
    return _UUID.sub(lambda m: b"%08x" % copy + m.group(1), rel.encode()).decode()


def replicate(dest: Path, megabytes: int) -> tuple[int, int]:
    """Copies of the corpus under `dest` (a `projects` directory) until it holds at
    least `megabytes` MB; returns (files, bytes)."""
    sources = sorted((CORPUS / "projects").rglob("*.jsonl"))
    if not sources:
        raise SystemExit(f"no transcripts under {CORPUS / 'projects'} (set KARMAD_TEST_CORPUS)")
    contents = {p: p.read_bytes() for p in sources}
    written = files = copy = 0
    while written < megabytes * 1_000_000:
        for path, data in contents.items():
            rel = fresh_name(str(path.relative_to(CORPUS / "projects")), copy)
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            out = fresh_ids(data, copy)
            target.write_bytes(out)
            written += len(out)
            files += 1
        copy += 1
    return files, written


def have_ccusage() -> bool:
    return CCUSAGE.exists() and shutil.which("node") is not None


def run_ccusage(claude_dir: Path, home: Path) -> float:
    """Seconds for `ccusage session --json --offline` over `claude_dir` (wall time)."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(claude_dir),
    }
    start = time.perf_counter()
    subprocess.run(
        [str(CCUSAGE), "session", "--json", "--offline"],
        env=env,
        stdout=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - start


def say(text: str = "") -> None:
    print(text, flush=True)
