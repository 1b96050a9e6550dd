"""How fast team changes converge between real karmad + Syncthing nodes on loopback.

Each figure is measured from the RPC call to the result observed through the other
side's RPC interface, polling every few milliseconds:

  (a) accept   `subscription.accept` on B, until A's `team.get` shows B's subscription
               to that project accepted (B publishes its state file, Syncthing carries
               it, A's reconciler reads it); one team, a new shared project per trial
  (b) join     `team.addMember` on A and, at once, `team.join` on B with the invite it
               returned, until each side shows both members active (first contact of
               two fresh nodes: pairing, folder offers, two state files each way)

  (c) mesh     three fresh nodes: A adds B and C, both join at once; from C's
               `team.join` until B and C (who learn of each other only from A's
               roster) each list the other as a connected device (`device.list`) and
               all three show everyone active; no goal of its own (shown against 2 s)

  baseline     the raw Syncthing path the state files take: a small file written on A
               (temp name, then rename) and `POST /rest/db/scan?folder=&sub=` asked of
               A's Syncthing directly, until B has it complete; a plain folder
               (sendonly on A, receiveonly on B) between the same two nodes

Prints median and p95 of each, the ratio of each median to the baseline's (what karmad
adds over Syncthing's own delivery), and whether the goal (<= 2 s each) is met.

    .venv/bin/python bench/team_convergence.py [--trials 5] [--backend asyncio|trio]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.syncthing import (
    Cluster,
    Node,
    start_cluster,
    start_karmad_node,
    wait_started,
    wait_until,
)

GOAL_S = 2.0
POLL_S = 0.005
TIMEOUT_S = 120.0
RAW_FOLDER = "bench-raw"
"""Not a `karma-` id: karmad leaves such folders alone."""


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile (with few trials: the slowest but outliers)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def poll(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT_S) -> float:
    """`time.monotonic()` when `predicate()` first holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(POLL_S)
    raise TimeoutError(f"{what}: not within {timeout}s")


def init(node: Node, user: str) -> None:
    node.call("identity.init", {"user": user, "machine": node.name})


def members(node: Node, team_id: str) -> dict[str, dict[str, Any]]:
    team: dict[str, Any] = node.call("team.get", {"team": team_id})
    return {m["member_tag"]: m for m in team["members"]}


def both_active(a: Node, b: Node, team_id: str, tags: tuple[str, str]) -> bool:
    on_a = members(a, team_id)
    if any(on_a.get(t, {}).get("state") != "active" for t in tags):
        return False
    team: dict[str, Any] = b.call("team.get", {"team": team_id})
    if team["phase"] != "member":
        return False
    on_b = {m["member_tag"]: m for m in team["members"]}
    return all(on_b.get(t, {}).get("state") == "active" for t in tags)


# --------------------------------------------------------------------------- (b) join


def settled(node: Node) -> bool:
    """The reconciler has created the team's folder and has nothing left to do."""
    status = node.call("sync.status")
    return bool(status["state"] == "idle" and status["folders"] >= 1 and not status["failures"])


def join_trial(root: Path, backend: str) -> float:
    cluster: list[Node] = []
    try:
        a = start_karmad_node(root / "a", "a", backend=backend, wait=False)
        cluster.append(a)
        b = start_karmad_node(root / "b", "b", backend=backend, wait=False)
        cluster.append(b)
        for node in cluster:
            wait_started(node)
        init(a, "alice")
        init(b, "bob")
        team_id = str(a.call("team.create", {"name": "bench"})["team_id"])
        code = b.call("pair.code")["code"]
        # Let A settle (its own folder created) so only the join itself is timed.
        wait_until(lambda: settled(a), 30)
        started = time.monotonic()
        added = a.call("team.addMember", {"team": team_id, "code": code})
        b.call("team.join", {"invite": added["invite"]})
        tags = ("alice.a", "bob.b")
        done = poll(lambda: both_active(a, b, team_id, tags), "both members active")
        return done - started
    finally:
        for node in cluster:
            node.teardown()


# --------------------------------------------------------------------------- (c) mesh


def connected(node: Node, other: str) -> bool:
    devices = node.call("device.list")["devices"]
    return any(d["device_id"] == other and d["connected"] for d in devices)


def mesh_trial(root: Path, backend: str) -> float:
    nodes: list[Node] = []
    try:
        for name in ("a", "b", "c"):
            nodes.append(start_karmad_node(root / name, name, backend=backend, wait=False))
        for node in nodes:
            wait_started(node)
        a, b, c = nodes
        for node, user in ((a, "alice"), (b, "bob"), (c, "carol")):
            init(node, user)
        team_id = str(a.call("team.create", {"name": "bench"})["team_id"])
        wait_until(lambda: settled(a), 30)
        invites = [
            a.call("team.addMember", {"team": team_id, "code": n.call("pair.code")["code"]})
            for n in (b, c)
        ]
        b.call("team.join", {"invite": invites[0]["invite"]})
        started = time.monotonic()
        c.call("team.join", {"invite": invites[1]["invite"]})
        tags = ("alice.a", "bob.b", "carol.c")
        b_id, c_id = (str(n.call("identity.get")["device_id"]) for n in (b, c))

        def meshed() -> bool:
            return (
                connected(b, c_id)
                and connected(c, b_id)
                and all(all(s == "active" for s in _states(n, team_id, tags)) for n in (a, b, c))
            )

        return poll(meshed, "three members meshed") - started
    finally:
        for node in nodes:
            node.teardown()


def _states(node: Node, team_id: str, tags: tuple[str, ...]) -> list[str]:
    on = members(node, team_id)
    return [str(on.get(t, {}).get("state")) for t in tags]


# --------------------------------------------------------------------------- (a) accept


def form_team(a: Node, b: Node) -> str:
    init(a, "alice")
    init(b, "bob")
    team_id = str(a.call("team.create", {"name": "bench"})["team_id"])
    code = b.call("pair.code")["code"]
    added = a.call("team.addMember", {"team": team_id, "code": code})
    b.call("team.join", {"invite": added["invite"]})
    poll(lambda: both_active(a, b, team_id, ("alice.n1", "bob.n2")), "team formed")
    return team_id


def offered(b: Node, team_id: str) -> set[str]:
    subs = b.call("subscription.list", {"team": team_id})["subscriptions"]
    return {s["project_key"] for s in subs if s["state"] == "offered"}


def accept_trials(a: Node, b: Node, team_id: str, trials: int) -> list[float]:
    keys = []
    for n in range(trials):
        info = a.call("project.share", {"team": team_id, "project": f"github.com/bench/p{n}"})
        keys.append(info["key"])
    wait_until(lambda: set(keys) <= offered(b, team_id), 60, message="projects offered to B")
    results = []
    for key in keys:
        # Quiet first: the previous trial's follow-up (folder rescans, A's own state) done.
        wait_until(lambda: b.call("sync.status")["state"] == "idle", 30)
        time.sleep(0.5)
        started = time.monotonic()
        b.call("subscription.accept", {"team": team_id, "project": key, "direction": "both"})

        def seen(key: str = key) -> bool:
            bob = members(a, team_id).get("bob.n2", {})
            return bool(bob.get("subscriptions", {}).get(key) == "accepted/both")

        results.append(poll(seen, "A sees the acceptance") - started)
    return results


# --------------------------------------------------------------------------- baseline


def raw_trials(cluster: Cluster, a: Node, b: Node, trials: int) -> list[float]:
    a_dir = cluster.add_folder(a, RAW_FOLDER, "sendonly", [b], watcher=False)
    b_dir = cluster.add_folder(b, RAW_FOLDER, "receiveonly", [a], watcher=False)
    cluster.wait_idle(a, RAW_FOLDER)
    cluster.wait_idle(b, RAW_FOLDER)
    results = []
    for n in range(trials + 1):
        name = f"f{n}.json"
        content = (f'{{"n": {n}, "pad": "' + "x" * 400 + '"}\n').encode()
        time.sleep(0.3)
        tmp = a_dir / f".{name}.tmp"
        tmp.write_bytes(content)
        started = time.monotonic()
        tmp.rename(a_dir / name)
        a.rest.post("/rest/db/scan", folder=RAW_FOLDER, sub=name)
        target = b_dir / name

        def arrived(target: Path = target, content: bytes = content) -> bool:
            try:
                return target.read_bytes() == content
            except FileNotFoundError:
                return False

        elapsed = poll(arrived, "raw file on B", 30) - started
        if n:  # the first transfer also opens the folder's index exchange
            results.append(elapsed)
    return results


# --------------------------------------------------------------------------- report


def line(label: str, values: list[float], base: float | None) -> str:
    median = statistics.median(values)
    ratio = f"  {median / base:6.1f}x baseline" if base else ""
    return (
        f"{label:<10} median {median * 1000:8.0f} ms  p95 {p95(values) * 1000:8.0f} ms  "
        f"min {min(values) * 1000:6.0f}  max {max(values) * 1000:6.0f}  (n={len(values)}){ratio}"
    )


def verdict(label: str, values: list[float]) -> str:
    median = statistics.median(values)
    met = "met" if median <= GOAL_S else "NOT met"
    return f"goal {label}: median {median:.2f} s <= {GOAL_S:.0f} s: {met}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args()
    if args.trials < 5:
        parser.error("at least 5 trials")
    with tempfile.TemporaryDirectory(prefix="karmad-bench-") as tmp:
        root = Path(tmp)
        started: list[Node] = []
        try:
            cluster = start_cluster(
                root / "ab", 2, karmad=True, backend=args.backend, started=started
            )
            a, b = cluster.nodes
            team_id = form_team(a, b)
            accept = accept_trials(a, b, team_id, args.trials)
            raw = raw_trials(cluster, a, b, args.trials)
        finally:
            for node in started:
                node.teardown()
        join = [join_trial(root / f"join{n}", args.backend) for n in range(args.trials)]
        mesh = [mesh_trial(root / f"mesh{n}", args.backend) for n in range(args.trials)]
    base = statistics.median(raw)
    print(f"team convergence, real karmad + Syncthing nodes on loopback ({args.backend})")
    print(line("baseline", raw, None))
    print(line("(a) accept", accept, base))
    print(line("(b) join", join, base))
    print(line("(c) mesh", mesh, base))
    print(verdict("(a) accept", accept))
    print(verdict("(b) join", join))
    print(verdict("(c) mesh", mesh).replace("goal", "(no goal)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
