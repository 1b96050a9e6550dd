"""What a team must survive on a real network, checked line by line.

Each scenario forms a team of real karmad nodes, each in its own network namespace (see
`tests.support.netns`), writes sessions on every member where Claude Code would, while a
fault happens: a slow and lossy network, a partition, a machine asleep, a member away
while the team changes, the leader away, processes killed. Then it ends the fault and
measures how long until both of these hold (the keeper scenario, whose members also
list K, checks the first on the returning member and its inbox's devices itself):

- every line each member wrote is, on every member entitled to it, exactly what was
  written (after redaction): the inbox file byte for byte, and the receiver's index holds
  the session once, as that member's and that project's, with every line once and in
  order (the same entries as the sender's own index) and nothing pending or bad: nothing
  lost, duplicated, half-written or misattributed; and no member shows a session it is
  not entitled to (a removed member's, an unshared project's, another's misfiled);
- Syncthing's configuration on every node is exactly what the design says for the final
  roster and subscriptions: own folder sendonly with exactly the entitled devices, one
  receiveonly inbox per teammate shared with that teammate alone, inbox ignore patterns
  admitting exactly the accepted projects, and nothing left of a member who is gone.

tests/e2e/test_faults.py runs short variants on every CI run; bench/faults.py runs the
long ones (`Durations`) and prints the convergence times.
"""

from __future__ import annotations

import copy
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from karmad.domain import folder_id
from karmad.redact import Redactor
from tests.support import keeper
from tests.support.netns import NEUTRAL, SLOW_LOSSY, Link, Net
from tests.support.secrets import SecretFactory, find_leaks_in_tree, plant_records
from tests.support.sessions import SessionWriter, corpus_records, make_checkout
from tests.support.syncthing import Node, RigError, wait_until
from tests.support.teams import folders_dir, form_team, ignores, karma_config

TEAMS_CONFIG = "[teams]\nack_linger_s = 8\n"
"""The leader keeps an acknowledged member for 8 s instead of 30 (see test_teams_three)."""
POLL_S = 0.5
PROJECTS = {
    "app": "github.com/acme/app",
    "web": "github.com/acme/web",
    "cli": "github.com/acme/cli",
}


@dataclass
class Durations:
    """How long each fault lasts; CI uses `SHORT`, bench/faults.py `LONG`."""

    write_s: float
    """(a) sessions written under the slow, lossy network."""
    split_s: float
    """(b) the partition."""
    sleep_s: float
    """(c) the machine asleep."""
    away_s: float
    """(d), (e) the member or leader away."""
    converge_s: float = 240.0
    """Longest wait for convergence once the fault ended (a failure, not a figure)."""


SHORT = Durations(write_s=20, split_s=15, sleep_s=20, away_s=10)
LONG = Durations(write_s=180, split_s=120, sleep_s=120, away_s=120, converge_s=600)


# --------------------------------------------------------------------------- people


@dataclass
class Member:
    node: Node
    user: str
    tag: str = ""
    device: str = ""
    checkouts: dict[str, Path] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.node.name

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return self.node.call(method, params)

    def checkout(self, identity: str) -> Path:
        if identity not in self.checkouts:
            assert self.node.karmad is not None
            name = identity.rsplit("/", 1)[-1]
            self.checkouts[identity] = make_checkout(
                self.node.karmad.home.root / "src", f"https://{identity}.git", name
            )
        return self.checkouts[identity]


class Records:
    """Realistic transcript records without end, no two lines alike (fresh ids)."""

    def __init__(self, seed: int = 0) -> None:
        # No summary lines: Claude Code writes them only at the top of a resumed session,
        # right before its conversation. Written alone as a session's first line (the
        # ledger appends one line at a time), a summary would make a session of no
        # project - it names no working directory - until its next line.
        self._base = [r for r in corpus_records(300) if r.get("type") != "summary"]
        self._rng = random.Random(seed)
        self._n = 0

    def next(self) -> dict[str, Any]:
        record = copy.deepcopy(self._base[self._n % len(self._base)])
        self._n += 1
        record["uuid"] = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        message = record.get("message")
        if isinstance(message, dict) and "id" in message:
            message["id"] = f"msg_{self._rng.getrandbits(96):024x}"
        return record


@dataclass
class Written:
    """One session as its member wrote it: every line, in order."""

    sender: Member
    identity: str
    writer: SessionWriter
    lines: list[bytes] = field(default_factory=list)

    @property
    def session_id(self) -> str:
        return self.writer.session_id


class Ledger:
    """Everything written, to compare with what every receiver ended up with."""

    def __init__(self, team_id: str, seed: int = 0) -> None:
        self.team_id = team_id
        self.sessions: dict[str, Written] = {}
        self.current: dict[tuple[str, str], Written] = {}
        self.records = Records(seed)

    def new_session(self, member: Member, identity: str) -> Written:
        assert member.node.karmad is not None
        writer = SessionWriter(member.node.karmad.home.claude, member.checkout(identity))
        written = Written(member, identity, writer)
        self.sessions[writer.session_id] = written
        self.current[(member.tag, identity)] = written
        return written

    def append(self, member: Member, identity: str, lines: int = 1) -> Written:
        written = self.current.get((member.tag, identity)) or self.new_session(member, identity)
        records = [self.records.next() for _ in range(lines)]
        written.lines += written.writer.append(*records)
        return written

    def big(self, member: Member, identity: str, megabytes: float) -> Written:
        """Append at least this much to the member's current session in one go."""
        written = self.current.get((member.tag, identity)) or self.new_session(member, identity)
        records, size = [], 0
        while size < megabytes * 1e6:
            record = self.records.next()
            records.append(record)
            size += len(str(record))
        written.lines += written.writer.append(*records)
        return written

    def round(self, members: list[Member], identities: list[str], lines: int = 1) -> None:
        for member in members:
            for identity in identities:
                self.append(member, identity, lines)

    def keep_writing(
        self,
        members: list[Member],
        identities: list[str],
        seconds: float,
        *,
        every_s: float = 1.0,
        new_session_every: int = 15,
        during: Callable[[], None] | None = None,
    ) -> None:
        """Append a line per member and project every `every_s`, as live sessions do,
        starting a new session every so often; `during` runs between rounds."""
        deadline = time.monotonic() + seconds
        rounds = 0
        while time.monotonic() < deadline:
            rounds += 1
            for member in members:
                for identity in identities:
                    if rounds % new_session_every == 0:
                        self.new_session(member, identity)
                    self.append(member, identity)
            if during is not None:
                during()
            time.sleep(every_s)


# --------------------------------------------------------------------------- team


@dataclass
class Team:
    net: Net
    team_id: str
    members: list[Member]
    keys: dict[str, str] = field(default_factory=dict)
    """identity -> project key, of every project ever shared."""

    def __getitem__(self, name: str) -> Member:
        return next(m for m in self.members if m.name == name)

    def share(self, identity: str, accept: dict[str, str]) -> str:
        """The leader shares `identity`; each named member accepts it in that direction."""
        leader = self.members[0]
        key = str(leader.call("project.share", {"team": self.team_id, "project": identity})["key"])
        self.keys[identity] = key
        for name, direction in accept.items():
            self.offered(self[name], identity)
            self[name].call("subscription.accept", self.subscription(identity, direction))
        return key

    def subscription(self, identity: str, direction: str) -> dict[str, str]:
        return {"team": self.team_id, "project": self.keys[identity], "direction": direction}

    def offered(self, member: Member, identity: str, timeout: float = 120) -> None:
        """Until `member` has been offered `identity` (the leader's roster reached it)."""
        key = self.keys[identity]

        def seen() -> bool:
            subs = member.call("subscription.list", {"team": self.team_id})["subscriptions"]
            return any(s["project_key"] == key for s in subs)

        wait_until(seen, timeout, message=f"{member.name} offered {identity}")


def start_team(
    net: Net,
    users: list[str],
    *,
    shape: Link = NEUTRAL,
    form_timeout: float = 120,
    name: str = "core",
) -> tuple[Team, float]:
    """Start one karmad per user, each in its own namespace; the first leads a team the
    others join. Returns the team and how long forming it took (from the first add)."""
    nodes = []
    for i, _ in enumerate(users):
        node = net.karmad_node(f"n{i + 1}", config=TEAMS_CONFIG, wait=False)
        net.shape(node, shape)
        nodes.append(node)
    for node in nodes:
        net.wait_started(node)
    members = [Member(node, user) for node, user in zip(nodes, users, strict=True)]
    for m in members:
        info = m.call("identity.init", {"user": m.user, "machine": m.node.name})
        m.tag, m.device = str(info["member_tag"]), str(info["device_id"])
    started = time.monotonic()
    team_id = form_team(
        members[0].node, *(m.node for m in members[1:]), name=name, timeout=form_timeout
    )
    return Team(net, team_id, members), time.monotonic() - started


# --------------------------------------------------------------------------- expectations


@dataclass
class Expect:
    """The end state the design requires once the fault is over."""

    team: Team
    members: list[Member]
    """Active at the end (the leader first)."""
    gone: list[Member] = field(default_factory=list)
    """Removed or left: no team, no folder, no teammate's device left on them."""
    shared: set[str] = field(default_factory=set)
    """Identities shared with the team at the end."""
    directions: dict[tuple[str, str], str] = field(default_factory=dict)
    """(member name, identity) -> accepted direction (`send`, `receive`, `both`)."""

    def sends(self, member: Member, identity: str) -> bool:
        return self.directions.get((member.name, identity)) in ("send", "both")

    def receives(self, member: Member, identity: str) -> bool:
        return self.directions.get((member.name, identity)) in ("receive", "both")

    def entitled(self, sender: Member, receiver: Member, identity: str) -> bool:
        active = {m.name for m in self.members}
        return (
            sender.name in active
            and receiver.name in active
            and sender.name != receiver.name
            and identity in self.shared
            and self.sends(sender, identity)
            and self.receives(receiver, identity)
        )


def inbox_file(receiver: Member, written: Written, team_id: str, key: str) -> Path:
    """Where `written` lands on `receiver` (on its sender: the outbox copy)."""
    sender = written.sender
    assert sender.node.karmad is not None
    rel = written.writer.path.relative_to(sender.node.karmad.home.claude / "projects")
    return folders_dir(receiver.node) / folder_id(team_id, sender.device) / "projects" / key / rel


def config_problems(expect: Expect) -> list[str]:
    team_id = expect.team.team_id
    out: list[str] = []
    devices_of = {m.name: m.device for m in expect.team.members}
    for m in expect.members:
        peers = [p for p in expect.members if p is not m]
        devices, folders = karma_config(m.node)
        want = {folder_id(team_id, m.device)} | {folder_id(team_id, p.device) for p in peers}
        if set(folders) != want:
            out.append(f"{m.name}: folders {sorted(folders)} != {sorted(want)}")
            continue
        own = folders[folder_id(team_id, m.device)]
        own_devices = {d["deviceID"] for d in own["devices"]}
        if own["type"] != "sendonly" or own_devices != {m.device} | {p.device for p in peers}:
            out.append(f"{m.name}: own folder {own['type']} {sorted(own_devices)}")
        for p in peers:
            inbox = folders[folder_id(team_id, p.device)]
            inbox_devices = {d["deviceID"] for d in inbox["devices"]}
            if inbox["type"] != "receiveonly" or inbox_devices != {m.device, p.device}:
                out.append(f"{m.name}: inbox of {p.name} {inbox['type']} {inbox_devices}")
            keys = sorted(expect.team.keys[i] for i in expect.shared if expect.receives(m, i))
            want_ignores = ["!/state", *(f"!/projects/{k}" for k in keys), "*"]
            have = ignores(m.node, folder_id(team_id, p.device))
            if have != want_ignores:
                out.append(f"{m.name}: inbox of {p.name} ignores {have} != {want_ignores}")
            if p.device not in devices:
                out.append(f"{m.name}: device of {p.name} missing")
        for g in expect.gone:
            if g.device in devices:
                out.append(f"{m.name}: still has the device of {g.name}, who is gone")
    for g in expect.gone:
        devices, folders = karma_config(g.node)
        if folders:
            out.append(f"{g.name} (gone): folders left {sorted(folders)}")
        if g.call("team.list")["teams"]:
            out.append(f"{g.name} (gone): still lists a team")
        left = {n for n, d in devices_of.items() if d in devices and n != g.name}
        if left:
            out.append(f"{g.name} (gone): still has devices of {sorted(left)}")
    return out


def content_problems(ledger: Ledger, expect: Expect) -> list[str]:
    """Every entitled receiver's inbox holds exactly what was written, after redaction."""
    out: list[str] = []
    redactor = Redactor()
    for written in ledger.sessions.values():
        want = redactor.redact_chunk(b"".join(written.lines)).data
        key = expect.team.keys[written.identity]
        for receiver in expect.members:
            if not expect.entitled(written.sender, receiver, written.identity):
                continue
            path = inbox_file(receiver, written, ledger.team_id, key)
            try:
                have = path.read_bytes()
            except FileNotFoundError:
                out.append(
                    f"{receiver.name}: {written.session_id[:8]} of {written.sender.name} missing"
                )
                continue
            if have != want:
                what = "short" if want.startswith(have) else "different"
                out.append(
                    f"{receiver.name}: {written.session_id[:8]} of {written.sender.name} "
                    f"{what} ({len(have)} of {len(want)} bytes)"
                )
    return out


def _pages(member: Member, method: str, params: dict[str, Any], key: str) -> Iterator[Any]:
    cursor = None
    while True:
        page = member.call(method, {**params, "cursor": cursor})
        yield from page[key]
        cursor = page.get("next_cursor")
        if not cursor:
            return


def _uuids(member: Member, session_id: str, origin: str) -> list[str]:
    params = {"id": session_id, "origin": origin, "limit": 500, "max_text": 1}
    return [e["uuid"] for e in _pages(member, "session.messages", params, "items")]


def index_problems(ledger: Ledger, expect: Expect) -> list[str]:
    """What each member's index shows of the others: the entitled sessions, once each,
    as their sender's, complete; nothing else."""
    out: list[str] = []
    by_device = {m.device: m for m in expect.team.members}
    for receiver in expect.members:
        listed = list(
            _pages(
                receiver,
                "session.list",
                {"origin": "remote", "distinct": False, "limit": 500},
                "sessions",
            )
        )
        seen: dict[str, int] = {}
        for s in listed:
            seen[s["id"]] = seen.get(s["id"], 0) + 1
            written = ledger.sessions.get(s["id"])
            if written is None:
                out.append(f"{receiver.name}: shows {s['id'][:8]}, which nobody wrote")
                continue
            sender = written.sender
            if s["member"] != sender.tag or s["project"] != written.identity:
                out.append(
                    f"{receiver.name}: {s['id'][:8]} shown as {s['member']}/{s['project']}, "
                    f"written by {sender.tag} in {written.identity}"
                )
            if not expect.entitled(sender, receiver, written.identity):
                out.append(f"{receiver.name}: shows {s['id'][:8]} of {sender.name}, not entitled")
            if s["origin"] != f"remote:{sender.device}" or s["origin"] not in (
                f"remote:{d}" for d in by_device
            ):
                out.append(f"{receiver.name}: {s['id'][:8]} from {s['origin']}")
        for session_id, count in seen.items():
            if count > 1:
                out.append(f"{receiver.name}: {session_id[:8]} shown {count} times")
        for written in ledger.sessions.values():
            if not expect.entitled(written.sender, receiver, written.identity):
                continue
            sid, origin = written.session_id, f"remote:{written.sender.device}"
            if sid not in seen:
                out.append(f"{receiver.name}: {sid[:8]} of {written.sender.name} not indexed")
                continue
            detail = receiver.call("session.get", {"id": sid, "origin": origin})
            main = [f for f in detail["files"] if f["kind"] == "main"]
            if (
                len(main) != 1
                or main[0]["lines"] != len(written.lines)
                or main[0]["pending_bytes"]
                or detail["bad_lines"]
            ):
                out.append(
                    f"{receiver.name}: {sid[:8]} indexed as {main} ({len(written.lines)} lines)"
                )
                continue
            if _uuids(receiver, sid, origin) != _uuids(written.sender, sid, "local"):
                out.append(f"{receiver.name}: {sid[:8]} entries differ from the sender's")
    return out


def problems(ledger: Ledger, expect: Expect, *, deep: bool = True) -> list[str]:
    found = config_problems(expect) + content_problems(ledger, expect)
    if not found and deep:
        found = index_problems(ledger, expect)
    return found


def converge(ledger: Ledger, expect: Expect, timeout: float) -> float:
    """Seconds until nothing is wrong any more (raises with what is still wrong)."""
    started = time.monotonic()
    last: list[str] = []
    while time.monotonic() - started < timeout:
        try:
            last = problems(ledger, expect, deep=False)
            if not last:
                last = problems(ledger, expect)
        except Exception as exc:  # a node still restarting
            last = [f"{type(exc).__name__}: {exc}"]
        if not last:
            return time.monotonic() - started
        time.sleep(POLL_S)
    shown = "\n  ".join(last[:30])
    raise RigError(f"not converged within {timeout:.0f} s ({len(last)} problems):\n  {shown}")


# --------------------------------------------------------------------------- scenarios


@dataclass
class Outcome:
    scenario: str
    converge_s: float
    """From the end of the fault until everything holds."""
    figures: dict[str, float] = field(default_factory=dict)
    lines: int = 0
    sessions: int = 0


def _outcome(name: str, ledger: Ledger, converged: float, **figures: float) -> Outcome:
    return Outcome(
        name,
        converged,
        dict(figures),
        sum(len(w.lines) for w in ledger.sessions.values()),
        len(ledger.sessions),
    )


def _both(team: Team, identities: list[str]) -> dict[tuple[str, str], str]:
    return {(m.name, i): "both" for m in team.members for i in identities}


def _two_projects(team: Team) -> tuple[list[str], Ledger]:
    identities = [PROJECTS["app"], PROJECTS["web"]]
    for identity in identities:
        team.share(identity, {m.name: "both" for m in team.members})
    return identities, Ledger(team.team_id)


def slow_network(net: Net, d: Durations) -> Outcome:
    """(a) Every link 100 ms +- 20 ms and 2% loss, from before the team forms; three
    members write in two projects for `write_s`."""
    team, formed = start_team(net, ["alice", "bob", "carol"], shape=SLOW_LOSSY)
    identities, ledger = _two_projects(team)
    expect = Expect(team, team.members, shared=set(identities), directions=_both(team, identities))
    ledger.keep_writing(team.members, identities, d.write_s)
    converged = converge(ledger, expect, d.converge_s)
    return _outcome("slow network", ledger, converged, form_s=formed)


def partition(net: Net, d: Durations) -> Outcome:
    """(b) The team splits in two while every member keeps writing, then heals."""
    team, _ = start_team(net, ["alice", "bob", "carol"])
    identities, ledger = _two_projects(team)
    expect = Expect(team, team.members, shared=set(identities), directions=_both(team, identities))
    ledger.round(team.members, identities)
    converge(ledger, expect, d.converge_s)  # it works before the fault
    a, b, c = (m.node for m in team.members)
    net.partition([a, b], [c])
    ledger.keep_writing(team.members, identities, d.split_s)
    net.heal()
    converged = converge(ledger, expect, d.converge_s)
    return _outcome("partition", ledger, converged)


def sleeping_laptop(net: Net, d: Durations, *, megabytes: float = 6) -> Outcome:
    """(c) A member's machine sleeps in the middle of receiving a large session, for
    `sleep_s`, while the others keep writing; then it wakes."""
    team, _ = start_team(net, ["alice", "bob", "carol"])
    identities, ledger = _two_projects(team)
    expect = Expect(team, team.members, shared=set(identities), directions=_both(team, identities))
    ledger.round(team.members, identities)
    converge(ledger, expect, d.converge_s)  # it works before the fault
    alice, bob, carol = team.members
    # Bob's link is slow enough that the transfer takes seconds.
    net.shape(bob.node, Link(rate_kbit=8000))
    big = ledger.big(bob, identities[0], megabytes)
    inbox = folder_id(team.team_id, bob.device)
    target = inbox_file(carol, big, team.team_id, team.keys[identities[0]])
    sent_before = target.stat().st_size if target.exists() else 0

    need: list[int] = []

    def receiving() -> bool:
        status = carol.node.rest.get("/rest/db/status", folder=inbox)
        need.append(int(status["needBytes"]))
        return bool(status["state"] == "syncing" and status["needBytes"] > 0)

    wait_until(receiving, 60, interval=0.02, message="carol receiving bob's large session")
    net.sleep(carol.node)
    asleep_with = target.stat().st_size if target.exists() else 0
    ledger.keep_writing([alice, bob], identities, d.sleep_s)
    net.wake(carol.node)
    converged = converge(ledger, expect, d.converge_s)
    net.shape(bob.node)
    return _outcome(
        "sleeping laptop",
        ledger,
        converged,
        mid_transfer=float(asleep_with == sent_before),
        left_to_receive_mb=need[-1] / 1e6,
    )


def member_away(net: Net, d: Durations) -> Outcome:
    """(d) Carol's machine is off while the leader removes her; bob is cut off (still
    writing, in both projects) while the leader unshares one of them. Both come back."""
    team, _ = start_team(net, ["alice", "bob", "carol"])
    identities, ledger = _two_projects(team)
    app, web = identities
    before = Expect(team, team.members, shared=set(identities), directions=_both(team, identities))
    ledger.round(team.members, identities)
    converge(ledger, before, d.converge_s)  # it works before the fault
    alice, bob, carol = team.members
    net.cut(bob.node)
    net.power_off(carol.node)
    alice.call("project.unshare", {"team": team.team_id, "project": web})
    alice.call("team.removeMember", {"team": team.team_id, "member": carol.tag})
    ledger.keep_writing([alice, bob], identities, d.away_s)
    net.heal(bob.node)
    net.power_on(carol.node)
    expect = Expect(
        team,
        [alice, bob],
        gone=[carol],
        shared={app},
        directions={k: v for k, v in _both(team, identities).items() if k[0] != carol.name},
    )
    converged = converge(ledger, expect, d.converge_s)
    return _outcome("member away", ledger, converged)


def leader_away(net: Net, d: Durations) -> Outcome:
    """(e) The leader's machine is off while bob leaves and carol accepts a project she
    had only been offered; then the leader comes back."""
    team, _ = start_team(net, ["alice", "bob", "carol"])
    alice, bob, carol = team.members
    app, cli = PROJECTS["app"], PROJECTS["cli"]
    team.share(app, {m.name: "both" for m in team.members})
    team.share(cli, {alice.name: "both", bob.name: "both"})
    ledger = Ledger(team.team_id)
    directions = _both(team, [app]) | {(alice.name, cli): "both", (bob.name, cli): "both"}
    before = Expect(team, team.members, shared={app, cli}, directions=directions)
    ledger.round(team.members, [app])
    ledger.round([alice, bob], [cli])
    converge(ledger, before, d.converge_s)  # it works before the fault
    team.offered(carol, cli)
    net.power_off(alice.node)
    bob.call("team.leave", {"team": team.team_id})
    carol.call("subscription.accept", team.subscription(cli, "both"))
    ledger.keep_writing([carol], [app, cli], d.away_s)
    net.power_on(alice.node)
    directions[(carol.name, cli)] = "both"
    expect = Expect(
        team,
        [alice, carol],
        gone=[bob],
        shared={app, cli},
        directions={k: v for k, v in directions.items() if k[0] != bob.name},
    )
    converged = converge(ledger, expect, d.converge_s)
    return _outcome("leader away", ledger, converged)


def _stignore(folder: Path) -> str:
    """A folder's ignore patterns as Syncthing last wrote them, readable while it is down."""
    try:
        return (folder / ".stignore").read_text()
    except FileNotFoundError:
        return ""


def kills(net: Net, d: Durations, *, config_kills: int = 3) -> Outcome:
    """(f) On bob, karmad is killed -9 while it writes Syncthing's configuration (right
    after accepting a new project, at a few different moments) and while it packages a
    large session; on carol, Syncthing is killed -9 while sessions flow."""
    team, _ = start_team(net, ["alice", "bob", "carol"])
    alice, bob, carol = team.members
    identities, ledger = _two_projects(team)
    expect = Expect(team, team.members, shared=set(identities), directions=_both(team, identities))
    ledger.round(team.members, identities)
    converge(ledger, expect, d.converge_s)  # it works before the fault

    # 1. During config writes: bob accepts a project (its inboxes' ignore patterns and
    #    its state file change) and dies 0, 20, 40... ms later. What got written is read
    #    from the `.stignore` files: karmad's guard kills Syncthing as karmad dies.
    inboxes = [folders_dir(bob.node) / folder_id(team.team_id, p.device) for p in (alice, carol)]
    unfinished = 0
    for n in range(config_kills):
        identity = f"github.com/acme/tool{n}"
        team.share(identity, {alice.name: "both", carol.name: "both"})
        team.offered(bob, identity)
        before = [_stignore(inbox) for inbox in inboxes]
        bob.call("subscription.accept", team.subscription(identity, "both"))
        time.sleep(0.02 * n)
        net.kill_karmad(bob.node)
        done = [_stignore(i) != b for i, b in zip(inboxes, before, strict=True)]
        unfinished += not all(done)
        net.start_karmad(bob.node)
        identities.append(identity)
    expect = Expect(team, team.members, shared=set(identities), directions=_both(team, identities))
    ledger.round(team.members, identities)
    converge(ledger, expect, d.converge_s)

    # 2. During packaging: a large append to a session bob already shares.
    app = identities[0]
    redactor = Redactor()
    grown = ledger.append(bob, app, 2)
    outbox = inbox_file(bob, grown, team.team_id, team.keys[app])
    packaged = len(redactor.redact_chunk(b"".join(grown.lines)).data)
    wait_until(lambda: outbox.stat().st_size == packaged, 60, message="bob's outbox up to date")
    ledger.big(bob, app, 24)
    wait_until(lambda: outbox.stat().st_size > packaged, 60, interval=0.002)
    net.kill_karmad(bob.node)
    cut_at = outbox.stat().st_size
    full = len(redactor.redact_chunk(b"".join(grown.lines)).data)
    net.start_karmad(bob.node)

    # 3. Syncthing killed on carol while everyone writes.
    ledger.round(team.members, identities)
    net.kill_syncthing(carol.node)
    ledger.keep_writing(team.members, identities[:2], 5)
    converged = converge(ledger, expect, d.converge_s)
    return _outcome(
        "kill -9",
        ledger,
        converged,
        config_kills_mid_write=float(unfinished),
        packaging_killed_at=cut_at / full,
    )


# Planted in the keeper scenario so that K's disk can be searched for them.
KEEPER_TEAM = "zqplantedteam"
KEEPER_USERS = ["zqalice", "zqbob"]
KEEPER_PROJECT = "github.com/zqplantedorg/zqplantedrepo"
KEEPER_MARKER = "ZQPLANTEDCONTENTLINE"


def _sessions(ledger: Ledger) -> list[keeper.Session]:
    return [(w.writer, keeper.expected(w.lines)) for w in ledger.sessions.values()]


def _received_all(ledger: Ledger, expect: Expect, receiver: Member) -> list[str]:
    """Every line of every session in the receiver's inbox and index, once, in order."""
    out = content_problems(ledger, expect)
    if out:
        return out
    for written in ledger.sessions.values():
        have = keeper.lines_on(receiver.node, written.session_id)
        if have != len(written.lines):
            out.append(f"{receiver.name}: {written.session_id[:8]} indexed {have} lines")
    return out


def _catch_up(ledger: Ledger, expect: Expect, receiver: Member, timeout: float, what: str) -> float:
    """Seconds until the receiver holds everything (raises with what is still missing).

    Not `converge`: with a keeper, each member's Syncthing also holds the team's keeper
    folder and lists K on every team folder, which `config_problems` does not expect.
    """
    started = time.monotonic()
    last: list[str] = []
    while time.monotonic() - started < timeout:
        try:
            last = _received_all(ledger, expect, receiver)
        except Exception as exc:  # the receiver's karmad still starting
            last = [f"{type(exc).__name__}: {exc}"]
        if not last:
            return time.monotonic() - started
        time.sleep(POLL_S)
    shown = "\n  ".join(last[:30])
    raise RigError(f"{what}: not within {timeout:.0f} s ({len(last)} problems):\n  {shown}")


def keeper_serves(net: Net, d: Durations) -> Outcome:
    """(g) A keeper K on its own machine: bob is off while alice writes; alice waits
    until K holds her sessions and goes off; bob comes back and receives every line
    through K alone. Every link is slow and lossy; K's disk holds nothing planted."""
    team, _ = start_team(net, KEEPER_USERS, shape=SLOW_LOSSY, name=KEEPER_TEAM)
    alice, bob = team.members
    k = net.karmad_node("keeper", config=keeper.KEEPER_CONFIG)
    net.shape(k, SLOW_LOSSY)
    identity = KEEPER_PROJECT
    team.share(identity, {alice.name: "both", bob.name: "both"})
    started = time.monotonic()
    keeper.add_keeper(alice.node, k, team.team_id)
    readers = [alice.node, bob.node]
    wait_until(
        lambda: (
            keeper.keeper_listed(readers, team.team_id)
            and all(
                keeper.k_shares(k, keeper.team_folder(n, team.team_id), readers) for n in readers
            )
        ),
        d.converge_s,
        message="every member lists the keeper, and K holds every team folder",
    )
    added = time.monotonic() - started

    ledger = Ledger(team.team_id)
    expect = Expect(team, [alice, bob], shared={identity}, directions=_both(team, [identity]))
    ledger.round([alice], [identity], 5)
    _catch_up(ledger, expect, bob, d.converge_s, "bob receives directly before the fault")

    net.power_off(bob.node)
    ledger.keep_writing([alice], [identity], d.away_s)
    secrets = SecretFactory(7).all()
    records = [ledger.records.next() for _ in range(40)]
    prompt = next(r for r in records if r.get("type") == "user")
    marked = dict(prompt, message={"role": "user", "content": f"Look at {KEEPER_MARKER}"})
    written = ledger.new_session(alice, identity)
    written.lines += written.writer.append(*records[:20], marked)
    rng = random.Random(7)
    for secret in secrets:
        written.lines += written.writer.append(*plant_records(records, secret, rng))
    written.lines += written.writer.append(*records[20:])
    started = time.monotonic()
    fid = keeper.team_folder(alice.node, team.team_id)
    wait_until(
        lambda: (
            keeper.outbox_settled(alice.node, team.team_id, identity, _sessions(ledger))
            and keeper.holds(k, alice.node, fid)
        ),
        d.converge_s,
        message="K holds all of alice's sessions",
    )
    k_filled = time.monotonic() - started
    net.power_off(alice.node)

    net.power_on(bob.node)
    through_k = _catch_up(ledger, expect, bob, d.converge_s, "bob catches up through K alone")

    # Only alice (off) and K could have sent it: nobody else is on bob's inbox.
    inbox = karma_config(bob.node)[1][fid]
    assert {x["deviceID"] for x in inbox["devices"]} == {bob.device, alice.device, k.device_id}
    assert bob.node.connected_to(k) and not bob.node.connected_to(alice.node)
    members = {s["member"] for s in bob.call("session.list", {"origin": "remote"})["sessions"]}
    assert members == {alice.tag}, members
    assert not find_leaks_in_tree(folders_dir(bob.node), secrets)

    # K's whole root (home, karmad's state and log, Syncthing's database, configuration,
    # log and ciphertext) holds nothing planted; the same search finds it on bob.
    net.power_off(k)
    planted = [KEEPER_TEAM, *KEEPER_USERS, "zqplantedorg", "zqplantedrepo", KEEPER_MARKER]
    planted.append(team.keys[identity])
    assert keeper.found_in(k.root, planted) == []
    assert keeper.found_in(folders_dir(bob.node), [KEEPER_MARKER]) != []
    assert find_leaks_in_tree(k.root, secrets) == []
    # Both machines back, so that the rig's isolation check sees every node.
    net.power_on(alice.node)
    net.power_on(k)
    return _outcome(
        "keeper",
        ledger,
        through_k,
        keeper_added_s=added,
        k_filled_s=k_filled,
        bytes_through_k=float(sum(len(w) for _, w in _sessions(ledger))),
    )


SCENARIOS: dict[str, Callable[[Net, Durations], Outcome]] = {
    "slow-network": slow_network,
    "partition": partition,
    "sleeping-laptop": sleeping_laptop,
    "member-away": member_away,
    "leader-away": leader_away,
    "kill-9": kills,
    "keeper": keeper_serves,
}
