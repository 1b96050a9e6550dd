"""Pair formation and first delivery between fresh members: no 5 s outliers.

Each trial starts three fresh karmad nodes. L leads a team that shares project P; A and
B each have one session of P on disk before they join. Measured from the RPC call to
the result seen through the other side's RPC interface:

  join      `team.addMember` on L and `team.join` on A, until L and A each show both
            members active (a brand-new pair of devices: L-A, then L-B)
  first     from A's `team.join` until L has indexed A's session (A accepts P as soon
            as it is offered): pairing, folders, state files and the first session
  mesh      from B's `team.join` until A has indexed B's session: A and B learn of each
            other only from L's roster, so this is a new pair formed between members

Baseline, in the same run and on the same network: two plain Syncthings that have never
met (no karmad), each with the shared folder already in place and a 1 KB file in the
sender's; from the first configuration call (each adds the other, the dialler paused
until the folders are in) until the file is complete on the receiver. This is the least
a new pair and one delivery cost on that network; `first` and `mesh` add the team's
state exchanges (the invite, the roster, the acknowledgement, the offer) on top of it.

Also counted, from every node's Syncthing log, the events that make outliers: a new
connection closed because an index arrived for a folder still being added (the 1.19
race), a Hello exchange that timed out (two crossing dials stall for 20 s), a dial
refused because the other side did not know the dialler yet.

Goal: p95 <= 2 s for each, over >= 30 trials, on loopback and on the rig's slow, lossy
network (every link 100 ms +- 20 ms, 2% loss; separate network namespaces, see
tests/support/netns.py), with each Syncthing version in turn (put another `syncthing`
first on PATH: karmad and the rig both take the first one on PATH, and the report names
its version). Prints p50 / p95 / max and how many samples took more than 2 s.

    .venv/bin/python bench/pair_formation.py [--trials 30] [--network loopback|netem|both]
        [--parts both|karmad|baseline]
    PATH=/path/to/syncthing-1.29/bin:$PATH .venv/bin/python bench/pair_formation.py
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.netns import SLOW_LOSSY, Net
from tests.support.sessions import SessionWriter, corpus_records, make_checkout
from tests.support.syncthing import (
    Cluster,
    Node,
    start_karmad_node,
    start_plain_node,
    wait_started,
    wait_until,
)

GOAL_S = 2.0
POLL_S = 0.01
TIMEOUT_S = 120.0
REMOTE = "https://github.com/bench/pairs.git"
IDENTITY = "github.com/bench/pairs"


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


class Lab:
    """Where a trial's nodes run: side by side on loopback, or each in a namespace."""

    def __init__(self, root: Path, network: str, backend: str) -> None:
        self.root = root
        self.backend = backend
        self.net = Net(root / "net") if network == "netem" else None
        self.nodes: list[Node] = []

    def start(self, names: list[str]) -> list[Node]:
        nodes = []
        for name in names:
            if self.net is not None:
                node = self.net.karmad_node(name, backend=self.backend, wait=False)
                self.net.shape(node, SLOW_LOSSY)
            else:
                node = start_karmad_node(self.root / name, name, backend=self.backend, wait=False)
            nodes.append(node)
            self.nodes.append(node)
        for node in nodes:
            if self.net is not None:
                self.net.wait_started(node)
            else:
                wait_started(node)
        return nodes

    def start_plain(self, names: list[str]) -> list[Node]:
        nodes = []
        for name in names:
            if self.net is not None:
                node = self.net.plain_node(name, wait=False)
                self.net.shape(node, SLOW_LOSSY)
            else:
                node = start_plain_node(self.root / name, name, wait=False)
            nodes.append(node)
            self.nodes.append(node)
        for node in nodes:
            if self.net is not None:
                self.net.wait_started(node)
            else:
                wait_started(node)
        return nodes

    def drop(self) -> None:
        for node in self.nodes:
            if self.net is not None:
                self.net.remove(node)
            else:
                node.teardown()
        self.nodes = []

    def close(self) -> None:
        self.drop()
        if self.net is not None:
            self.net.teardown()


def active(node: Node, team_id: str, tags: tuple[str, ...]) -> bool:
    team: dict[str, Any] = node.call("team.get", {"team": team_id})
    if team["phase"] != "member":
        return False
    states = {m["member_tag"]: m["state"] for m in team["members"]}
    return all(states.get(t) == "active" for t in tags)


def both_active(a: Node, b: Node, team_id: str, tags: tuple[str, ...]) -> bool:
    return active(a, team_id, tags) and active(b, team_id, tags)


def offered(node: Node, team_id: str, key: str) -> bool:
    subs = node.call("subscription.list", {"team": team_id})["subscriptions"]
    return any(s["project_key"] == key and s["state"] == "offered" for s in subs)


def has_session(node: Node, session_id: str) -> bool:
    listed = node.call("session.list", {"origin": "remote", "limit": 50})["sessions"]
    return any(s["id"] == session_id for s in listed)


class Watch:
    """Several conditions polled together; each one's first success is timed."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.steps: dict[str, Callable[[], bool]] = {}
        self.done: dict[str, float] = {}

    def add(self, name: str, check: Callable[[], bool]) -> None:
        self.steps[name] = check

    def run(self, *, side: Callable[[], None] | None = None) -> dict[str, float]:
        deadline = self.started + TIMEOUT_S
        while len(self.done) < len(self.steps):
            if side is not None:
                side()
            for name, check in self.steps.items():
                if name not in self.done and check():
                    self.done[name] = time.monotonic() - self.started
            if time.monotonic() > deadline:
                missing = sorted(set(self.steps) - set(self.done))
                raise TimeoutError(f"not within {TIMEOUT_S}s: {missing}")
            time.sleep(POLL_S)
        return self.done


def session_on(node: Node, n: int) -> str:
    assert node.karmad is not None
    checkout = make_checkout(node.karmad.home.root / "src", REMOTE)
    writer = SessionWriter(node.karmad.home.claude, checkout)
    writer.append(*corpus_records(n))
    return writer.session_id


def trial(lab: Lab, t: int) -> dict[str, float]:
    lead, a, b = lab.start([f"l{t}", f"a{t}", f"b{t}"])
    tags = {}
    for node, user in ((lead, "lea"), (a, "amy"), (b, "ben")):
        tags[node.name] = node.call("identity.init", {"user": user, "machine": node.name})[
            "member_tag"
        ]
    team_id = str(lead.call("team.create", {"name": "pairs"})["team_id"])
    key = str(lead.call("project.share", {"team": team_id, "project": IDENTITY})["key"])
    lead.call("subscription.accept", {"team": team_id, "project": key, "direction": "both"})
    sessions = {node.name: session_on(node, 8) for node in (a, b)}
    wait_until(
        lambda: lead.call("sync.status")["state"] == "idle" and lead.call("sync.status")["folders"],
        30,
    )
    results: dict[str, float] = {}
    for joiner, reader, label in ((a, lead, "first"), (b, a, "mesh")):
        code = joiner.call("pair.code")["code"]
        started = time.monotonic()
        invite = lead.call("team.addMember", {"team": team_id, "code": code})["invite"]
        joiner.call("team.join", {"invite": invite})
        pair = (tags[lead.name], tags[joiner.name])
        watch = Watch(started)
        watch.add("join", partial(both_active, lead, joiner, team_id, pair))
        watch.add(label, partial(has_session, reader, sessions[joiner.name]))
        accepted = False

        def accept(j: Node = joiner) -> None:
            nonlocal accepted
            if not accepted and offered(j, team_id, key):
                j.call(
                    "subscription.accept", {"team": team_id, "project": key, "direction": "both"}
                )
                accepted = True

        done = watch.run(side=accept)
        results[f"join {joiner.name[0]}"] = done["join"]
        results[label] = done[label]
    return results


RAW_FOLDER = "bench-raw"


def baseline_trial(lab: Lab, t: int) -> dict[str, float]:
    """A fresh pair of plain Syncthings, folders in place first, then one file across.

    The receiver only accepts (it has no address to dial: crossing dials stall on 1.19);
    the sender adds the receiver paused and unpauses it after the folders: a folder may
    name only devices already configured (Syncthing drops the others), and a connection
    that comes up before its folders exist is closed on 1.19."""
    a, b = lab.start_plain([f"x{t}", f"y{t}"])
    content = (f'{{"n": {t}, "pad": "' + "x" * 1000 + '"}\n').encode()
    source = a.folder_dir(RAW_FOLDER)
    source.mkdir(parents=True, exist_ok=True)
    (source / "first.json").write_bytes(content)
    started = time.monotonic()
    b.rest.put(
        f"/rest/config/devices/{a.device_id}",
        {"deviceID": a.device_id, "name": a.name, "addresses": ["dynamic"]},
    )
    a.rest.put(
        f"/rest/config/devices/{b.device_id}",
        {
            "deviceID": b.device_id,
            "name": b.name,
            "addresses": [b.listen_address],
            "paused": True,
        },
    )
    Cluster.add_folder(a, RAW_FOLDER, "sendonly", [b], watcher=False)
    Cluster.add_folder(b, RAW_FOLDER, "receiveonly", [a], watcher=False)
    a.rest.patch(f"/rest/config/devices/{b.device_id}", {"paused": False})
    target = b.folder_dir(RAW_FOLDER) / "first.json"

    def arrived() -> bool:
        try:
            return target.read_bytes() == content
        except FileNotFoundError:
            return False

    watch = Watch(started)
    watch.add("baseline", arrived)
    return watch.run()


@contextmanager
def lab_for(root: Path, network: str, backend: str) -> Iterator[Lab]:
    lab = Lab(root, network, backend)
    try:
        yield lab
    finally:
        lab.close()


SIGNS = {
    "race": "for nonexistent or paused folder",
    "hello stall": "Failed to exchange Hello messages",
    "refused": "rejected: unknown device",
}
"""What each node's Syncthing logs when a new pair loses time (see the docstring)."""


def signs(nodes: list[Node]) -> dict[str, int]:
    counts = dict.fromkeys(SIGNS, 0)
    for node in nodes:
        try:
            text = (node.syncthing_home / "syncthing.log").read_text(errors="replace")
        except OSError:
            continue
        for name, needle in SIGNS.items():
            counts[name] += text.count(needle)
    return counts


def report(
    network: str, samples: dict[str, list[float]], version: str, seen: dict[str, int]
) -> None:
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{network} ({version}; load {load}); goal p95 <= {GOAL_S:.0f} s")
    base = samples.get("baseline")
    for name in ("baseline", "join", "first", "mesh"):
        values = samples.get(name, [])
        if not values:
            continue
        over = sum(v > GOAL_S for v in values)
        verdict = "" if name == "baseline" else "met" if p95(values) <= GOAL_S else "NOT met"
        ratio = (
            f"  p50 {statistics.median(values) / statistics.median(base):4.1f}x baseline"
            if base and name != "baseline"
            else ""
        )
        print(
            f"  {name:<8} p50 {statistics.median(values):6.2f} s  p95 {p95(values):6.2f} s  "
            f"max {max(values):6.2f} s  >2 s: {over}/{len(values)}  {verdict}{ratio}"
        )
    print("  in the logs: " + ", ".join(f"{k} {v}" for k, v in seen.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--network", choices=("loopback", "netem", "both"), default="both")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument(
        "--parts",
        choices=("both", "karmad", "baseline"),
        default="both",
        help="karmad's trials, the plain-Syncthing baseline, or both (interleaved)",
    )
    args = parser.parse_args()
    binary = shutil.which("syncthing")
    if binary is None:
        parser.error("Syncthing is not installed")
    version = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=False
    ).stdout.split(" ")[1]
    networks = ["loopback", "netem"] if args.network == "both" else [args.network]
    for network in networks:
        samples: dict[str, list[float]] = {}
        seen = dict.fromkeys(SIGNS, 0)
        failures = 0
        with (
            tempfile.TemporaryDirectory(prefix="kpf") as tmp,
            lab_for(Path(tmp), network, args.backend) as lab,
        ):
            parts = []
            if args.parts in ("both", "baseline"):
                parts.append(baseline_trial)
            if args.parts in ("both", "karmad"):
                parts.append(trial)
            for t, part in ((t, part) for t in range(args.trials) for part in parts):
                try:
                    result = part(lab, t)
                except TimeoutError as exc:
                    failures += 1
                    print(f"trial {t}: {exc}", file=sys.stderr)
                    result = {}
                finally:
                    for name, count in signs(lab.nodes).items():
                        seen[name] += count
                    lab.drop()
                for name, value in result.items():
                    samples.setdefault(name.split(" ")[0], []).append(value)
                print(
                    f"{network} trial {t}: "
                    + " ".join(f"{k}={v:.2f}" for k, v in sorted(result.items())),
                    file=sys.stderr,
                    flush=True,
                )
        report(network, samples, version, seen)
        if failures:
            print(f"  {failures} trial(s) did not finish within {TIMEOUT_S:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
