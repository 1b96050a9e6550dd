"""A member catching up on a day of a teammate's sessions through the team's keeper.

Real karmad + Syncthing nodes on loopback: the leader Alice and Bob in one team sharing a
project both ways, and a keeper K (a keeper-mode karmad) every member lists. Each run
measures, on fresh nodes, in an order that alternates between runs:

- **through K**: Bob is off; Alice writes a day of sessions (about `--mb` MB of corpus
  transcripts, in `--sessions` sessions); once K holds all of them Alice goes off; Bob
  comes back. Timed from Bob's karmad starting until every transcript is in his inbox
  byte for byte ("files"), and until his index counts every line ("indexed").
- **directly**: the same with K stopped and Alice online: Bob receives from Alice.

and K's cost over the through-K phase (from Alice's first line to Bob holding all): CPU
time of K's karmad and Syncthing, their peak RSS, and K's disk for the team (ciphertext,
Syncthing's database, all of K's home). Medians of the runs; ratios through K / directly.

    .venv/bin/python bench/keeper_catchup.py [--runs 3] [--mb 50] [--sessions 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.keeper import (
    KEEPER_CONFIG,
    Session,
    add_keeper,
    arrived,
    come_back,
    expected,
    go_offline,
    holds,
    indexed,
    keeper_listed,
    outbox_settled,
    team_folder,
)
from tests.support.sessions import SessionWriter, corpus_records, make_checkout
from tests.support.syncthing import Node, start_cluster, start_karmad_node, wait_until
from tests.support.teams import folders_dir, form_team, init, share_and_accept

REMOTE = "git@github.com:acme/bench.git"
IDENTITY = "github.com/acme/bench"
FAST_TEAMS = "[teams]\nack_linger_s = 8\n"
SETUP_S = 120.0
DAY_S = 900.0
"""Packaging, holding or receiving 50 MB on a loaded 2-CPU machine: minutes at worst."""

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Catchup:
    files_s: float
    indexed_s: float


@dataclass
class KeeperCost:
    cpu_s: float
    peak_rss: int
    ciphertext: int
    database: int
    home: int
    plaintext: int


def cpu_s(pid: int) -> float:
    """User + system CPU of a live process, children it waited for included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / CLK_TCK


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def processes(node: Node) -> list[int]:
    """The node's karmad and every Syncthing process under it (monitor and server)."""
    assert node.karmad is not None
    return [node.karmad.pid, *node.syncthing_pids()]


def du(path: Path) -> int:
    """Bytes on disk under `path` (allocated blocks, as `du` counts)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                continue
    return total


Day = list[tuple[SessionWriter, list[bytes]]]
"""Sessions as written (before redaction)."""


def write_day(a: Node, checkout: Path, megabytes: int, sessions: int) -> Day:
    assert a.karmad is not None
    per = megabytes * 1_000_000 // sessions
    records = corpus_records(10**9)
    day: Day = []
    for _ in range(sessions):
        writer = SessionWriter(a.karmad.home.claude, checkout)
        lines: list[bytes] = []
        size = 0
        while size < per:
            chunk = writer.append(*(next(records) for _ in range(50)))
            lines += chunk
            size += sum(len(x) for x in chunk)
        day.append((writer, lines))
    return day


def redacted(day: Day) -> list[Session]:
    return [(w, expected(lines)) for w, lines in day]


class Rig:
    def __init__(self, root: Path, backend: str) -> None:
        self.root = root
        self.cluster = start_cluster(
            root / "members", 2, karmad=True, backend=backend, config=FAST_TEAMS
        )
        self.k = start_karmad_node(root / "keeper", "keeper", backend=backend, config=KEEPER_CONFIG)
        self.a, self.b = self.cluster.nodes
        init(self.a, "alice")
        init(self.b, "bob")
        self.team_id = form_team(self.a, self.b, timeout=SETUP_S)
        share_and_accept(self.a, self.team_id, IDENTITY, [(self.a, "both"), (self.b, "both")])
        add_keeper(self.a, self.k, self.team_id)
        wait_until(
            lambda: keeper_listed([self.a, self.b], self.team_id),
            SETUP_S,
            message="every member lists the keeper",
        )
        assert self.a.karmad is not None
        self.checkout = make_checkout(self.a.karmad.home.root / "src", REMOTE)
        self.k_running = True

    def running(self, node: Node, on: bool) -> None:
        assert node.karmad is not None
        alive = node.karmad.proc is not None and node.karmad.proc.poll() is None
        if on and not alive:
            come_back(node)
        elif not on and alive:
            go_offline(node)

    def phase(
        self, through_k: bool, megabytes: int, sessions: int
    ) -> tuple[Catchup, KeeperCost | None]:
        a, b, k = self.a, self.b, self.k
        self.running(a, True)
        self.running(k, through_k)
        go_offline(b)
        before = {pid: cpu_s(pid) for pid in processes(k)} if through_k else {}
        day = redacted(write_day(a, self.checkout, megabytes, sessions))
        wait_until(
            lambda: outbox_settled(a, self.team_id, IDENTITY, day),
            DAY_S,
            interval=1.0,
            message="day packaged",
        )
        if through_k:
            wait_until(
                lambda: holds(k, a, team_folder(a, self.team_id)),
                DAY_S,
                interval=0.5,
                message="K holds the day",
            )
            go_offline(a)
        t0 = time.perf_counter()
        come_back(b)
        wait_until(
            lambda: arrived(b, a, self.team_id, IDENTITY, day), DAY_S, interval=0.1, message="files"
        )
        files_s = time.perf_counter() - t0
        wait_until(lambda: indexed(b, day), DAY_S, interval=0.1, message="indexed")
        indexed_s = time.perf_counter() - t0
        cost = None
        if through_k:
            pids = processes(k)
            cost = KeeperCost(
                cpu_s=sum(cpu_s(p) - before.get(p, 0.0) for p in pids),
                peak_rss=sum(peak_rss(p) for p in pids),
                ciphertext=du(folders_dir(k)),
                database=du(k.syncthing_home / "index-v0.14.0.db"),
                home=du(k.root),
                plaintext=sum(len(want) for _, want in day),
            )
        return Catchup(files_s, indexed_s), cost

    def teardown(self) -> None:
        self.cluster.teardown()
        self.k.teardown()


def mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args()

    through: list[Catchup] = []
    direct: list[Catchup] = []
    costs: list[KeeperCost] = []
    for run in range(args.runs):
        tmp = Path(tempfile.mkdtemp(prefix="karmad-bench-keeper-"))
        rig = None
        try:
            rig = Rig(tmp, args.backend)
            order = (True, False) if run % 2 == 0 else (False, True)
            for through_k in order:
                catchup, cost = rig.phase(through_k, args.mb, args.sessions)
                (through if through_k else direct).append(catchup)
                if cost is not None:
                    costs.append(cost)
                how = "through K" if through_k else "directly "
                print(
                    f"run {run + 1} {how}: files {catchup.files_s:.2f} s, "
                    f"indexed {catchup.indexed_s:.2f} s",
                    flush=True,
                )
        finally:
            if rig is not None:
                rig.teardown()
            shutil.rmtree(tmp, ignore_errors=True)

    def med(values: list[float]) -> float:
        return statistics.median(values)

    def spread(values: list[float]) -> str:
        return f"({min(values):.2f}-{max(values):.2f})"

    print()
    plain = med([c.plaintext for c in costs])
    print(
        f"{args.runs} runs, {args.backend}, loopback; a day = {mb(plain)} of redacted "
        f"transcripts in {args.sessions} sessions; medians (min-max)"
    )
    print()
    print(f"{'Bob online -> holding the day':34}{'files s':>22}{'indexed s':>22}")
    for name, rows in (("through K (Alice off)", through), ("directly from Alice (K off)", direct)):
        files = [c.files_s for c in rows]
        idx = [c.indexed_s for c in rows]
        print(f"{name:34}{med(files):>8.2f} {spread(files):>13}{med(idx):>8.2f} {spread(idx):>13}")
    ratio_files = med([c.files_s for c in through]) / med([c.files_s for c in direct])
    ratio_idx = med([c.indexed_s for c in through]) / med([c.indexed_s for c in direct])
    print(f"{'ratio through K / directly':34}{ratio_files:>8.2f}x{'':13}{ratio_idx:>8.2f}x")
    print()
    print("K over the through-K phase (Alice writing the day until Bob holds it):")
    print(f"  CPU (karmad + Syncthing)   {med([c.cpu_s for c in costs]):.1f} s")
    print(f"  peak RSS (karmad + Syncthing) {mb(med([c.peak_rss for c in costs]))}")
    cipher = med([c.ciphertext for c in costs])
    print(f"  ciphertext on disk         {mb(cipher)} ({cipher / plain:.2f}x the plaintext)")
    print(f"  Syncthing database         {mb(med([c.database for c in costs]))}")
    print(f"  K's whole home             {mb(med([c.home for c in costs]))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
