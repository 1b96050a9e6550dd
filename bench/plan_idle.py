"""Cost of an idle reconcile decision: 20 members x 50 shared projects, nothing to do.

Measures ingest + desired + plan (the pure part of a reconcile cycle) on a converged
configuration, checks that it decides to write nothing, and compares it with decoding
the 20 state files it reads (the floor: a cycle must at least read its inputs).

Goal: <= 20 ms per idle cycle, zero writes.

    .venv/bin/python bench/plan_idle.py [--members 20] [--projects 50] [--runs 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from karmad import codec, deviceid
from karmad.domain import Direction, Phase, Subscription, SubscriptionState, folder_id, new_team
from karmad.sync import statefile
from karmad.sync.desired import desired
from karmad.sync.ingest import ingest
from karmad.sync.model import LocalTeam, Me, Observed, PeerState, Policy, Role
from karmad.sync.plan import apply, plan

NOW = datetime(2026, 6, 1, tzinfo=UTC)
FOLDERS = Path("/state/folders")


def build(members: int, projects: int) -> tuple[Me, tuple[LocalTeam, ...], list[bytes]]:
    devices = [deviceid.from_bytes(bytes([n]) * 32) for n in range(members)]
    me = Me(devices[0], "u0.m")
    team = new_team("abcdefghijklmnopqrstuvwxya", "bench", "u0.m", devices[0], NOW - timedelta(1))
    for n, dev in enumerate(devices[1:], start=1):
        team = team.add_member(f"u{n}.m", dev, NOW).activate(dev, NOW)
    for p in range(projects):
        team = team.share(f"github.com/org/repo{p}", f"org/repo{p}", NOW)
    subs = tuple(
        Subscription(team.team_id, p.key, SubscriptionState.ACCEPTED, Direction.BOTH, NOW)
        for p in team.projects
    )
    local = LocalTeam(
        team_id=team.team_id,
        name=team.name,
        role=Role.LEADER,
        phase=Phase.MEMBER,
        leader_device=me.device_id,
        leader_tag=me.member_tag,
        phase_since=NOW,
        record=team,
        subscriptions=subs,
    )
    files = []
    for n, dev in enumerate(devices[1:], start=1):
        state = statefile.StateFile(
            team_id=team.team_id,
            owner_tag=f"u{n}.m",
            owner_device=dev,
            seq=5,
            written_at=NOW,
            subscriptions=statefile.subscriptions_to_wire(
                [Subscription(team.team_id, s.project_key, s.state, s.direction) for s in subs]
            ),
        )
        files.append(statefile.encode(state))
    return me, (local,), files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    me, teams, files = build(args.members, args.projects)
    team = teams[0]
    assert team.record is not None

    def decode_peers() -> dict[str, PeerState]:
        peers = {}
        for m, data in zip(team.record.members[1:], files, strict=True):  # type: ignore[union-attr]
            fid = folder_id(team.team_id, m.device_id)
            state = codec.decode_json(data, statefile.StateFile)
            peers[fid] = PeerState(fid, m.device_id, state)
        return peers

    peers = decode_peers()
    policy = Policy()
    # Converge once: what Syncthing looks like after the first (busy) cycle.
    first = desired(me, teams, peers, (), (), NOW, policy)
    observed = apply(Observed(), plan(first, Observed(), FOLDERS))

    def idle_cycle() -> int:
        changes = ingest(me, teams, peers, (), NOW, policy)
        want = desired(
            me,
            teams,
            peers,
            (),
            (),
            NOW,
            policy,
            managed_devices=observed.managed_devices,
            present_folders=frozenset(observed.folders),
        )
        return len(changes) + len(plan(want, observed, FOLDERS))

    writes = idle_cycle()
    cycle_ms, decode_ms = [], []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        idle_cycle()
        cycle_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        decode_peers()
        decode_ms.append((time.perf_counter() - t0) * 1000)

    cycle, floor = statistics.median(cycle_ms), statistics.median(decode_ms)
    print(f"{args.members} members x {args.projects} projects, {args.runs} runs (medians)")
    print(f"  folders managed: {len(first.folders)}, devices: {len(first.devices)}")
    print(f"  idle decision (ingest + desired + plan): {cycle:8.2f} ms")
    print(f"  decode the {len(files)} state files (floor):   {floor:8.2f} ms")
    print(f"  ratio: {cycle / floor:.1f}x")
    print(f"  writes decided on an idle cycle: {writes}")
    ok = cycle <= 20 and writes == 0
    print(f"goal <= 20 ms and zero writes: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
