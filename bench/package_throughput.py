"""Packaging throughput: a backlog of sessions into an outbox, redaction on.

The shared corpus is replicated (fresh ids) into a >= 200 MB `~/.claude/projects`,
indexed once, then packaged — the packager's real pass: the index query, the
incremental redacting copy of every transcript, progress records and manifests — into
a fresh outbox each run. Beside it, in the same run: a plain `shutil.copyfile` of the
same files. Goal: >= 0.3x the speed of the plain copy.

    .venv/bin/python bench/package_throughput.py [--mb 200] [--runs 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import replicate
from karmad.bus import Bus
from karmad.config import IndexConfig
from karmad.domain import folder_id, project_key
from karmad.flow.packager import Packager
from karmad.health import Health
from karmad.index.discovery import Root
from karmad.redact import Redactor
from karmad.state_schema import STATE_SCHEMA
from karmad.store import Store
from karmad.sync.model import Outbox
from tests.support.indexing import LocalIndex

TEAM = "abcdefghijklmnopqrstuvwxya"
ME = "AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="karmad-bench-pkg-"))
    try:
        claude = tmp / "claude"
        projects = claude / "projects"
        files, size = replicate(projects, args.mb)
        print(f"backlog: {files} files, {size / 1e6:.1f} MB; indexing it once...", flush=True)
        index = LocalIndex(
            tmp / "index.db", [Root(projects, origin="local")], config=IndexConfig(full_text=False)
        )
        index.scan()
        identities = {r["project"] for r in index.store.query("SELECT project FROM sessions")}
        keys = frozenset(project_key(i) for i in identities if i)
        fid = folder_id(TEAM, ME)
        outbox = Outbox(team_id=TEAM, folder_id=fid, project_keys=keys)
        sources = sorted(projects.rglob("*.jsonl"))

        copy_s: list[float] = []
        pack_s: list[float] = []
        packaged = 0
        for run in range(args.runs):
            target = tmp / f"copy{run}"
            t0 = time.perf_counter()
            for src in sources:
                dest = target / src.relative_to(projects)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
            copy_s.append(time.perf_counter() - t0)
            shutil.rmtree(target)

            folders = tmp / f"folders{run}"
            (folders / fid).mkdir(parents=True)
            state = tmp / f"state{run}.db"
            Store.open(state, STATE_SCHEMA).close()
            packager = Packager(
                state_path=state,
                index_path=tmp / "index.db",
                claude_dir=claude,
                folders_dir=folders,
                outboxes=lambda: (outbox,),
                member_tag=lambda: "bench.machine",
                scan=lambda folder, paths: None,
                redactor=Redactor(),
                bus=Bus(),
                health=Health(),
                clock=lambda: datetime.now(UTC),
            )
            t0 = time.perf_counter()
            report = packager._work((outbox,), "bench.machine", None)
            pack_s.append(time.perf_counter() - t0)
            packager._close()
            packaged = report.bytes
            shutil.rmtree(folders)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    copy, pack = statistics.median(copy_s), statistics.median(pack_s)
    mb = size / 1e6
    print(f"\n{args.runs} runs, medians; {mb:.0f} MB of transcripts")
    print(f"  plain copy (shutil.copyfile):      {copy:6.2f} s  {mb / copy:8.1f} MB/s")
    print(f"  packaging (index query, redaction,  {pack:6.2f} s  {mb / pack:8.1f} MB/s")
    print("   incremental copy, records, manifests)")
    print(f"  packaged bytes written: {packaged / 1e6:.1f} MB")
    print(f"  ratio packaging / copy speed: {copy / pack:.2f}x")
    print(f"goal >= 0.3x the copy: {'met' if copy / pack >= 0.3 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
