"""End-to-end latency of one appended line, and what Syncthing sends for it.

Two real karmad + Syncthing nodes on loopback, one team, one shared project accepted
both ways. Measured in the same run:

(a) a line appended to a session JSONL on A (as Claude Code writes it) until `session.get`
    on B shows it (p50, p95 of N trials), beside the raw Syncthing path on the same two
    nodes: a line appended to a file in a plain sendonly folder + a scan request of that
    path, until the line is on B's disk. Goals: p50 <= 500 ms and <= 4x the raw path.
(c) bytes Syncthing sends from A to B for one line appended to a 50 MB session, against
    the file's size. Goal: a few blocks, not the file.

    .venv/bin/python bench/flow_latency.py [--trials 15] [--big-mb 50]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.sessions import SessionWriter, corpus_records, dump, make_checkout
from tests.support.syncthing import Cluster, Node, start_cluster, wait_until
from tests.support.teams import form_team, init, share_and_accept

REMOTE = "git@github.com:acme/bench.git"
IDENTITY = "github.com/acme/bench"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def lines_on(node: Node, session_id: str) -> int:
    try:
        detail = node.call("session.get", {"id": session_id})
    except Exception:
        return -1
    if detail["origin"] == "local":
        return -1
    return int(sum(f["lines"] for f in detail["files"] if f["kind"] == "main"))


def raw_folder(cluster: Cluster, a: Node, b: Node, root: Path) -> tuple[Path, Path]:
    """A plain folder between the same two nodes (watcher off: only our scan moves it)."""
    src = cluster.add_folder(a, "bench-raw", "sendonly", [b], path=root / "raw-a", watcher=False)
    dst = cluster.add_folder(b, "bench-raw", "receiveonly", [a], path=root / "raw-b", watcher=False)
    return src, dst


def out_bytes(a: Node, b: Node) -> int:
    conns = a.rest.get("/rest/system/connections")["connections"]
    return int(conns[b.device_id]["outBytesTotal"])


def size_of(path: Path) -> int:
    """The file's size, or -1 while it is missing: one stat, because Syncthing replaces
    a file by renaming its temp copy over it, and a check-then-stat can fall between."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--big-mb", type=int, default=50)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="karmad-bench-flow-"))
    cluster = start_cluster(tmp, 2, karmad=True, backend=args.backend)
    try:
        a, b = cluster.nodes
        init(a, "alice")
        init(b, "bob")
        team_id = form_team(a, b)
        assert a.karmad is not None
        checkout = make_checkout(a.karmad.home.root / "src", REMOTE)
        share_and_accept(a, team_id, IDENTITY, [(a, "both"), (b, "both")])
        records = list(corpus_records(2000))
        writer = SessionWriter(a.karmad.home.claude, checkout)
        writer.append(*records[:5])
        wait_until(lambda: lines_on(b, writer.session_id) == 5, 60, message="first lines")

        flow: list[float] = []
        for n in range(args.trials):
            want = 6 + n
            t0 = time.perf_counter()
            writer.append(records[5 + n])
            while lines_on(b, writer.session_id) < want:
                time.sleep(0.002)
            flow.append(time.perf_counter() - t0)
            time.sleep(0.2)

        # The raw Syncthing path on the same nodes: append, scan that path, arrival.
        src, dst = raw_folder(cluster, a, b, tmp)
        (src / "raw.jsonl").write_bytes(dump(records[0]))
        a.rest.post("/rest/db/scan", folder="bench-raw")
        wait_until((dst / "raw.jsonl").exists, 60, message="raw folder works")
        raw: list[float] = []
        size = (src / "raw.jsonl").stat().st_size
        for n in range(args.trials):
            line = dump(records[10 + n])
            size += len(line)
            t0 = time.perf_counter()
            with (src / "raw.jsonl").open("ab") as f:
                f.write(line)
            a.rest.post("/rest/db/scan", folder="bench-raw", sub="raw.jsonl")
            while size_of(dst / "raw.jsonl") != size:
                time.sleep(0.002)
            raw.append(time.perf_counter() - t0)
            time.sleep(0.2)

        # (c) One line appended to a big session: what goes over the wire.
        big = SessionWriter(a.karmad.home.claude, checkout)
        target = args.big_mb << 20
        total = 0
        lines = 0
        while total < target:
            written_lines = big.append(*records)
            total += sum(len(x) for x in written_lines)
            lines += len(written_lines)
        wait_until(lambda: lines_on(b, big.session_id) == lines, 300, message="big session synced")
        time.sleep(2)
        before = out_bytes(a, b)
        line = big.append(records[7])[0]
        wait_until(lambda: lines_on(b, big.session_id) == lines + 1, 60)
        time.sleep(2)
        sent = out_bytes(a, b) - before
    finally:
        cluster.teardown()
        shutil.rmtree(tmp, ignore_errors=True)

    ms = 1000
    f50, f95 = pct(flow, 50) * ms, pct(flow, 95) * ms
    r50, r95 = pct(raw, 50) * ms, pct(raw, 95) * ms
    print(f"{args.trials} trials, {args.backend}, loopback")
    print()
    print(f"{'':46}{'p50 ms':>10}{'p95 ms':>10}")
    print(f"{'append on A -> session.get on B (karmad)':46}{f50:>10.1f}{f95:>10.1f}")
    print(f"{'append + scan -> on B disk (raw Syncthing)':46}{r50:>10.1f}{r95:>10.1f}")
    print(f"{'ratio':46}{f50 / r50:>10.1f}{f95 / r95:>10.1f}")
    print(f"  median of all karmad trials: {statistics.median(flow) * ms:.1f} ms")
    print()
    print(f"one {len(line)}-byte line appended to a {total / (1 << 20):.1f} MiB session:")
    print(f"  Syncthing sent {sent} bytes ({sent / total * 100:.3f} % of the file)")
    print()
    ok_a = f50 <= 500 and f50 <= 4 * r50
    print(f"goal (a) p50 <= 500 ms and <= 4x raw: {'met' if ok_a else 'NOT met'}")
    print(f"goal (c) a few blocks, not the file: {'met' if sent < 1 << 20 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
