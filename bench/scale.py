"""How karmad and Syncthing costs grow with the size of a team: 3, 6, then 10 members.

Each member is a real karmad with its managed Syncthing in its own network namespace
(tests/support/netns.py; the links are not shaped). Two teams overlap on some members:
team X is the first ~70% of the members, team Y the last ~60% (for 10: X = m1..m7 led by
m1, Y = m5..m10 led by m10, so m5..m7 are in both). 20 projects: X shares p0..p11, Y
shares p8..p19 (p8..p11 in both); every member accepts every project of its teams and
has two sessions in each of three of them. Measured, per team size:

  append     one line appended on a member until every other member entitled to it
             shows it (`session.get` line count), p50 / p95 over many appends
  join       the last member joins team Y (pair code, add, join): until every node's
             Syncthing configuration is the design's and it has indexed every session
             it is entitled to
  remove     the leader of X removes one member: until the removed member has left
             (torn down its side), then until every node's configuration is the design's
             again (the leader keeps the device `ack_linger_s` after its acknowledgement,
             8 s here, so that it hears the answer)
  footprint  per node, RSS and CPU (% of one core) of karmad (with its helper processes)
             and of Syncthing, at idle and while every member appends a line a second to
             two sessions (as a member with live Claude Code sessions does); karma
             folders and connected devices per node; bytes all Syncthings sent per line
             appended, and per second at idle

This machine has 2 CPUs shared by every node of the run (and whatever else runs): CPU
figures are what all nodes together leave, and times include waiting for a CPU.

    .venv/bin/python bench/scale.py [--sizes 3,6,10] [--appends 30] [--window 30]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from karmad.domain import folder_id
from karmad.syncthing import proctree
from tests.support import netns
from tests.support.faults import TEAMS_CONFIG, Member, Records, Team
from tests.support.netns import Net
from tests.support.sessions import SessionWriter
from tests.support.syncthing import Node, wait_until
from tests.support.teams import form_team, ignores, karma_config

PROJECTS = [f"github.com/scale/p{n}" for n in range(20)]
X_PROJECTS, Y_PROJECTS = PROJECTS[:12], PROJECTS[8:]
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


# --------------------------------------------------------------------------- layout


@dataclass
class Layout:
    size: int

    @property
    def x(self) -> list[int]:
        return list(range(max(2, math.ceil(0.7 * self.size))))

    @property
    def y(self) -> list[int]:
        return list(range(self.size - max(2, math.ceil(0.6 * self.size)), self.size))


@dataclass
class Session:
    member: Member
    identity: str
    writer: SessionWriter
    lines: int = 0


@dataclass
class World:
    net: Net
    members: list[Member]
    teams: dict[str, Team] = field(default_factory=dict)
    projects: dict[str, list[str]] = field(default_factory=dict)
    """team name -> identities it shares."""
    sessions: list[Session] = field(default_factory=list)
    records: Records = field(default_factory=Records)

    def teams_of(self, m: Member) -> list[str]:
        return [name for name, team in self.teams.items() if m in team.members]

    def receivers(self, session: Session) -> list[Member]:
        """Members entitled to a session: in a team with its writer sharing its project."""
        out: dict[str, Member] = {}
        for name in self.teams_of(session.member):
            if session.identity in self.projects[name]:
                out |= {m.name: m for m in self.teams[name].members if m is not session.member}
        return list(out.values())

    def append(self, session: Session, lines: int = 1) -> None:
        session.writer.append(*(self.records.next() for _ in range(lines)))
        session.lines += lines


def start_members(net: Net, count: int) -> list[Member]:
    nodes = [net.karmad_node(f"m{i + 1}", config=TEAMS_CONFIG, wait=False) for i in range(count)]
    for node in nodes:
        net.wait_started(node, 180)
    members = [Member(node, f"u{i + 1}") for i, node in enumerate(nodes)]
    for m in members:
        info = m.call("identity.init", {"user": m.user, "machine": m.node.name})
        m.tag, m.device = str(info["member_tag"]), str(info["device_id"])
    return members


def build(net: Net, layout: Layout, *, hold_last: bool) -> World:
    """Both teams formed and their projects accepted, sessions written and delivered.
    With `hold_last`, the last member is started but joins no team yet."""
    members = start_members(net, layout.size)
    world = World(net, members)
    for name, idx, projects, lead in (
        ("x", layout.x, X_PROJECTS, 0),
        ("y", layout.y, Y_PROJECTS, -2),
    ):
        team_members = [members[i] for i in idx]
        leader = team_members[lead]  # Y: its last member but one; the last joins later
        rest = [m for m in team_members if m is not leader]
        if hold_last and members[-1] in rest:
            rest.remove(members[-1])
        team_id = form_team(leader.node, *(m.node for m in rest), name=name, timeout=300)
        team = Team(net, team_id, [leader, *rest])
        for identity in projects:
            team.share(identity, {m.name: "both" for m in team.members})
        world.teams[name] = team
        world.projects[name] = projects
    for i, m in enumerate(members):
        mine = [p for name in world.teams_of(m) for p in world.projects[name]]
        for identity in sorted(set(mine))[i % 3 :: 4][:3]:
            for _ in range(2):
                assert m.node.karmad is not None
                writer = SessionWriter(m.node.karmad.home.claude, m.checkout(identity))
                session = Session(m, identity, writer)
                world.append(session, 5)
                world.sessions.append(session)
    return world


# --------------------------------------------------------------------------- checks


def lines_on(receiver: Member, session: Session) -> int:
    try:
        detail = receiver.call(
            "session.get",
            {"id": session.writer.session_id, "origin": f"remote:{session.member.device}"},
        )
    except Exception:
        return -1
    # A session of a project two shared teams both share arrives through both folders.
    return max((f["lines"] for f in detail["files"] if f["kind"] == "main"), default=0)


def delivered(world: World, member: Member | None = None) -> bool:
    """Every session is on every entitled member with all its lines (or, given
    `member`, every session entitled to that member)."""
    for session in world.sessions:
        for r in world.receivers(session):
            if member is not None and r is not member:
                continue
            if lines_on(r, session) != session.lines:
                return False
    return True


def config_right(world: World) -> bool:
    """Each team's folders on each of its members are the design's (see test_faults)."""
    for name, team in world.teams.items():
        keys = sorted(team.keys[i] for i in world.projects[name])
        want_ignores = ["!/state", *(f"!/projects/{k}" for k in keys), "*"]
        for m in team.members:
            _, folders = karma_config(m.node)
            for peer in team.members:
                fid = folder_id(team.team_id, peer.device)
                folder = folders.get(fid)
                want = (
                    {m.device} | {p.device for p in team.members}
                    if peer is m
                    else {m.device, peer.device}
                )
                if folder is None or {d["deviceID"] for d in folder["devices"]} != want:
                    return False
                if peer is not m and ignores(m.node, fid) != want_ignores:
                    return False
    return True


# --------------------------------------------------------------------------- measures


def visible_on(
    r: Member, session: Session, want: int, started: float, seen: dict[str, float]
) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if lines_on(r, session) >= want:
            seen[r.name] = time.monotonic() - started
            return
        time.sleep(0.005)


def append_latency(world: World, appends: int) -> list[float]:
    """Appends spread over members and sessions, each timed until every entitled
    member shows it; receivers are polled in parallel."""
    results = []
    candidates = [s for s in world.sessions if world.receivers(s)]
    for n in range(appends):
        session = candidates[(n * 7) % len(candidates)]
        receivers = world.receivers(session)
        want = session.lines + 1
        seen: dict[str, float] = {}
        started = time.monotonic()
        world.append(session)
        threads = [
            threading.Thread(target=visible_on, args=(r, session, want, started, seen))
            for r in receivers
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if len(seen) != len(receivers):
            raise TimeoutError(f"append not visible on {len(receivers) - len(seen)} members")
        results.append(max(seen.values()))
        time.sleep(0.3)
    return results


def pids_of(node: Node) -> tuple[list[int], list[int]]:
    """(karmad and its helpers, Syncthing's processes) of one node."""
    assert node.karmad is not None and node.karmad.proc is not None
    syncthing = node.syncthing_pids()
    family, todo = [], [node.karmad.proc.pid]
    while todo:
        pid = todo.pop()
        family.append(pid)
        todo += proctree.children(pid)
    return [p for p in family if p not in syncthing], syncthing


def sample(pids: list[int]) -> tuple[int, int]:
    """(CPU ticks used so far, RSS bytes) of these processes."""
    ticks = rss = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
            rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
    return ticks, rss


def sent(world: World) -> int:
    """Bytes every node's Syncthing has sent to its peers so far."""
    total = 0
    for m in world.members:
        conns = m.node.rest.get("/rest/system/connections")["connections"]
        total += sum(int(c.get("outBytesTotal", 0)) for d, c in conns.items() if d != m.device)
    return total


def footprint(world: World, seconds: float, load: bool) -> dict[str, dict[str, float]]:
    """Per node: CPU % of one core and RSS MiB of karmad and of Syncthing over a window;
    under "_": bytes sent on the wire by all nodes per line appended."""
    groups = {m.name: pids_of(m.node) for m in world.members}
    before = {n: (sample(k), sample(s)) for n, (k, s) in groups.items()}
    wire = sent(world)
    started = time.monotonic()
    live = {}
    for m in world.members:
        mine = [s for s in world.sessions if s.member is m][:2]
        live[m.name] = mine
    appended = 0
    while time.monotonic() - started < seconds:
        if load:
            for sessions in live.values():
                for session in sessions:
                    world.append(session)
                    appended += 1
        time.sleep(1.0)
    elapsed = time.monotonic() - started
    time.sleep(3)  # what the last appends made Syncthing send
    wire = sent(world) - wire
    out = {}
    for name, (k, s) in groups.items():
        (k0, _), (s0, _) = before[name]
        (k1, k_rss), (s1, s_rss) = sample(k), sample(s)
        out[name] = {
            "karmad_cpu": 100 * (k1 - k0) / TICKS / elapsed,
            "karmad_rss": k_rss / 2**20,
            "syncthing_cpu": 100 * (s1 - s0) / TICKS / elapsed,
            "syncthing_rss": s_rss / 2**20,
        }
    out["_"] = {"wire_per_line": wire / max(1, appended), "wire_per_s": wire / elapsed}
    return out


def topology(world: World) -> dict[str, tuple[int, int]]:
    out = {}
    for m in world.members:
        _, folders = karma_config(m.node)
        conns = m.node.rest.get("/rest/system/connections")["connections"]
        connected = sum(1 for d, c in conns.items() if c.get("connected") and d != m.device)
        out[m.name] = (len(folders), connected)
    return out


# --------------------------------------------------------------------------- one size


def run_size(root: Path, size: int, appends: int, window: float) -> dict[str, Any]:
    layout = Layout(size)
    net = Net(root / f"s{size}")
    try:
        t0 = time.monotonic()
        world = build(net, layout, hold_last=True)
        wait_until(lambda: delivered(world), 600, interval=1, message="first delivery")
        wait_until(lambda: config_right(world), 300, interval=1, message="configuration")
        setup_s = time.monotonic() - t0

        # The last member joins Y.
        last, y = world.members[-1], world.teams["y"]
        started = time.monotonic()
        code = last.call("pair.code")["code"]
        invite = y.members[0].call("team.addMember", {"team": y.team_id, "code": code})
        last.call("team.join", {"invite": invite["invite"]})
        y.offered(last, Y_PROJECTS[-1], 300)
        for identity in Y_PROJECTS:
            last.call("subscription.accept", y.subscription(identity, "both"))
        y.members.append(last)
        wait_until(lambda: config_right(world), 600, interval=0.25, message="after the join")
        wait_until(lambda: delivered(world, last), 600, interval=0.25, message="joiner has all")
        join_s = time.monotonic() - started

        append = append_latency(world, appends)
        idle = footprint(world, window, load=False)
        busy = footprint(world, window, load=True)
        links = topology(world)

        # The leader of X removes one of its members (one not in Y if there is one).
        x = world.teams["x"]
        only_x = [m for m in x.members[1:] if m not in world.teams["y"].members]
        gone = (only_x or x.members[1:])[0]
        started = time.monotonic()
        x.members[0].call("team.removeMember", {"team": x.team_id, "member": gone.tag})
        x.members.remove(gone)

        def left() -> bool:
            teams = {t["team_id"] for t in gone.call("team.list")["teams"]}
            return x.team_id not in teams

        wait_until(left, 600, interval=0.25, message="the removed member left")
        left_s = time.monotonic() - started
        wait_until(lambda: config_right(world), 600, interval=0.25, message="after the removal")
        remove_s = time.monotonic() - started
        net.assert_isolated()
        return {
            "size": size,
            "setup_s": setup_s,
            "append": append,
            "join_s": join_s,
            "remove_s": remove_s,
            "left_s": left_s,
            "idle": idle,
            "busy": busy,
            "links": links,
            "sessions": len(world.sessions),
        }
    finally:
        net.teardown()


def summary(figures: dict[str, dict[str, float]], key: str) -> str:
    values = [f[key] for name, f in figures.items() if name != "_"]
    return f"{statistics.median(values):.1f} / {max(values):.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="3,6,10")
    parser.add_argument("--appends", type=int, default=30)
    parser.add_argument("--window", type=float, default=30.0)
    args = parser.parse_args()
    reason = netns.unavailable()
    if reason is not None:
        parser.error(f"network namespaces: {reason}")
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="ksc") as tmp:
        for size in sizes:
            row = run_size(Path(tmp), size, args.appends, args.window)
            rows.append(row)
            print(f"size {size} done: {row['links']}", file=sys.stderr, flush=True)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\nteam scale, real karmad + Syncthing per namespace, {os.cpu_count()} CPUs "
        f"shared by all nodes (load {load}); median / max over nodes where two figures"
    )
    header = (
        "members",
        "append p50",
        "append p95",
        "join",
        "left",
        "remove",
        "folders/node",
        "links/node",
        "karmad CPU% idle",
        "karmad CPU% busy",
        "karmad RSS MiB",
        "ST CPU% idle",
        "ST CPU% busy",
        "ST RSS MiB",
        "wire KB/line",
        "wire KB/s idle",
    )
    print(" | ".join(header))
    for row in rows:
        links = row["links"].values()
        folders = [f for f, _ in links]
        connected = [c for _, c in links]
        print(
            " | ".join(
                [
                    str(row["size"]),
                    f"{statistics.median(row['append']):.2f} s",
                    f"{p95(row['append']):.2f} s",
                    f"{row['join_s']:.1f} s",
                    f"{row['left_s']:.1f} s",
                    f"{row['remove_s']:.1f} s",
                    f"{statistics.median(folders):.0f} / {max(folders)}",
                    f"{statistics.median(connected):.0f} / {max(connected)}",
                    summary(row["idle"], "karmad_cpu"),
                    summary(row["busy"], "karmad_cpu"),
                    summary(row["busy"], "karmad_rss"),
                    summary(row["idle"], "syncthing_cpu"),
                    summary(row["busy"], "syncthing_cpu"),
                    summary(row["busy"], "syncthing_rss"),
                    f"{row['busy']['_']['wire_per_line'] / 1e3:.0f}",
                    f"{row['idle']['_']['wire_per_s'] / 1e3:.1f}",
                ]
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
