"""`karmactl doctor` on Syncthing and team sync: healthy nodes, then each broken condition
a check claims to detect, produced for real (real Syncthing nodes on loopback, real
karmad processes, files removed and ports taken for real)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from karmad import codes, deviceid
from karmad.checks.sync import reconciler_findings, team_findings
from karmad.checks.syncthing import (
    listen_findings,
    peer_findings,
    pending_findings,
    profile_findings,
)
from karmad.config import SyncthingConfig
from karmad.domain import Phase
from karmad.sync.executor import Failure
from karmad.sync.model import Desired, DesiredFolder, FolderType, LocalTeam, Role
from karmad.sync.reconciler import CycleReport, ReconcilerState
from karmad.sync.teams import new_team_id
from karmad.syncthing.addresses import Endpoint
from karmad.syncthing.models import (
    DeviceConfig,
    ListenerStatus,
    OptionsConfig,
    PendingDevice,
    PendingFolderOffer,
)
from karmad.syncthing.snapshot import DeviceState, Snapshot
from tests.support.daemon import Home, KarmadProcess
from tests.support.doctor import (
    RELAXED_DISK,
    by_name,
    doctor,
    doctor_until,
    healthy_claude,
    service_running,
)
from tests.support.stubs import ServiceStubs
from tests.support.syncthing import Cluster, Node, RestError, wait_until
from tests.support.teams import CONVERGE_S, folders_dir, form_team, init, topology_ok

SHARING_CHECKS = {
    "syncthing.reachable",
    "syncthing.api_key",
    "syncthing.listen",
    "syncthing.profile",
    "syncthing.folders",
    "syncthing.pending",
    "syncthing.peers",
    "sync.identity",
    "sync.reconciler",
    "sync.teams",
}


@pytest.fixture
def stubs(tmp_path: Path) -> Iterator[ServiceStubs]:
    s = ServiceStubs(tmp_path / "stubs")
    yield s
    s.cleanup()


def node_home(node: Node) -> Home:
    assert node.karmad is not None
    return node.karmad.home


def external(endpoint: Endpoint | Path | str, api_key: str, extra: str = "") -> str:
    """Config of a karmad attached to a Syncthing it does not run."""
    return (
        f'{RELAXED_DISK}{extra}\n[syncthing]\nmode = "external"\n'
        f'address = "{endpoint}"\napi_key = "{api_key}"\nrestart_delay_s = 0.2\n'
    )


def doctor_on(node: Node, stubs: ServiceStubs) -> tuple[int, dict[str, dict[str, str]]]:
    assert node.karmad is not None
    service_running(stubs, node.karmad.pid)
    code, report = doctor(node_home(node), stubs)
    return code, by_name(report)


# --------------------------------------------------------------------------- healthy


def test_a_healthy_team_passes_every_check(
    syncthing_cluster: Callable[..., Cluster], anyio_backend: str, stubs: ServiceStubs
) -> None:
    a, b = syncthing_cluster(2, karmad=True, backend=anyio_backend, config=RELAXED_DISK).nodes
    for node, user in ((a, "alice"), (b, "bob")):
        healthy_claude(node_home(node))
        init(node, user)
    team_id = form_team(a, b)
    wait_until(lambda: topology_ok([a, b], team_id, {a.name: [b], b.name: [a]}), CONVERGE_S)
    for node in (a, b):
        wait_until(lambda n=node: n.call("sync.status")["state"] == "idle", CONVERGE_S)  # type: ignore[misc]
        code, checks = doctor_on(node, stubs)
        assert code == 0, checks
        assert set(checks) >= SHARING_CHECKS
        assert {c["status"] for c in checks.values()} == {"pass"}, checks
        assert "profile loopback" in checks["syncthing.profile"]["message"]
        assert "2 folders without errors" in checks["syncthing.folders"]["message"]
        assert "1 peer(s): 1 connected" in checks["syncthing.peers"]["message"]
        assert "1 team(s)" in checks["sync.teams"]["message"]
        assert "listening on tcp://127.0.0.1:" in checks["syncthing.listen"]["message"]


# --------------------------------------------------------------------------- reachability


def test_unreachable_syncthing(
    karmad_factory: Callable[..., KarmadProcess], home: Home, stubs: ServiceStubs, tmp_path: Path
) -> None:
    healthy_claude(home)
    home.write_config(external(tmp_path / "nobody-listens.sock", "k" * 32))
    karmad = karmad_factory(home=home)
    karmad.call("identity.init", {"user": "alice", "machine": "m1"})
    service_running(stubs, karmad.pid)
    code, checks = doctor_until(
        home, stubs, lambda c: c.get("sync.reconciler", {}).get("status") == "warn"
    )
    assert code == 1
    reachable = checks["syncthing.reachable"]
    assert reachable["status"] == "fail"
    assert "Syncthing is unreachable" in reachable["message"]
    assert "nobody-listens.sock" in reachable["message"]
    assert "syncthing_unavailable" in reachable["message"]
    assert "`address`" in reachable["fix"]
    # One cause, one failure: the checks that need Syncthing stay silent.
    assert not {"syncthing.folders", "syncthing.pending", "syncthing.peers"} & set(checks)
    assert "wait for Syncthing" in checks["sync.reconciler"]["message"]
    assert checks["sync.identity"]["status"] == "pass"


def test_api_key_refused(
    syncthing_cluster: Callable[..., Cluster],
    karmad_factory: Callable[..., KarmadProcess],
    home: Home,
    stubs: ServiceStubs,
) -> None:
    [st] = syncthing_cluster(1).nodes
    assert st.endpoint is not None
    healthy_claude(home)
    home.write_config(external(st.endpoint, "not-the-key-" + "x" * 20))
    karmad = karmad_factory(home=home)
    service_running(stubs, karmad.pid)
    code, checks = doctor_until(home, stubs, lambda c: "syncthing.api_key" in c)
    assert code == 1
    check = checks["syncthing.api_key"]
    assert check["status"] == "fail"
    assert "refused the API key" in check["message"]
    assert "api_key" in check["fix"]
    assert "syncthing.reachable" not in checks  # it answers: the key is the problem


# --------------------------------------------------------------------------- an external Syncthing


def test_problems_of_an_external_syncthing(
    syncthing_cluster: Callable[..., Cluster],
    karmad_factory: Callable[..., KarmadProcess],
    home: Home,
    stubs: ServiceStubs,
) -> None:
    cluster = syncthing_cluster(2)
    p, q = cluster.nodes
    cluster.pair(p, q)
    assert p.endpoint is not None
    healthy_claude(home)
    home.write_config(external(p.endpoint, p.api_key, "peer_unseen_days = 0.00003\n"))
    karmad = karmad_factory(home=home)
    service_running(stubs, karmad.pid)

    # Healthy but for the profile: `internet` (the default) expects discovery and relays,
    # which this loopback Syncthing has off.
    code, checks = doctor_until(home, stubs, lambda c: "syncthing.peers" in c)
    assert code == 0, checks
    for name in ("syncthing.reachable", "syncthing.api_key", "syncthing.listen"):
        assert checks[name]["status"] == "pass", checks[name]
    assert checks["syncthing.folders"]["status"] == "pass"
    assert checks["syncthing.pending"]["status"] == "pass"
    assert "1 connected" in checks["syncthing.peers"]["message"]
    profile = checks["syncthing.profile"]
    assert profile["status"] == "warn"
    assert "profile internet expects discovery and relays on" in profile["message"]
    assert "global discovery, local discovery, relays off" in profile["message"]
    assert 'profile = "lan-only"' in profile["fix"]

    # A received file that cannot be written: a local directory is where it belongs.
    inbox = p.folder_dir("karma-inbox")
    (inbox / "g").mkdir(parents=True)
    (inbox / "g" / "local.txt").write_text("in the way")
    outbox = cluster.offer(q, [p], "karma-inbox", watcher=False)
    (outbox / "g").write_text("from q")
    cluster.accept(p, q, "karma-inbox")
    q.rest.post("/rest/db/scan", folder="karma-inbox")
    code, checks = doctor_until(home, stubs, lambda c: c["syncthing.folders"]["status"] == "warn")
    folders = checks["syncthing.folders"]
    assert "1 of 1 folders cannot write some files: karma-inbox" in folders["message"]
    # Syncthing's own words, which differ between versions ("removing item to be
    # replaced" on 1.19, "finishing: moving for conflict" on 1.29).
    assert "karma-inbox: 1 file(s) failing, e.g. g: syncing:" in folders["message"]
    assert code == 0

    # A folder whose directory is gone: Syncthing reports `folder path missing` on scan.
    gone = cluster.add_folder(p, "karma-gone", "sendonly", [])
    cluster.wait_idle(p, "karma-gone")
    shutil.rmtree(gone)
    with contextlib.suppress(RestError):
        p.rest.post("/rest/db/scan", folder="karma-gone")
    code, checks = doctor_until(home, stubs, lambda c: c["syncthing.folders"]["status"] == "fail")
    assert code == 1
    folders = checks["syncthing.folders"]
    assert "1 of 2 folders in error: karma-gone: folder path missing" in folders["message"]
    assert "karma-inbox: 1 file(s) failing" in folders["message"]
    assert "karmactl syncthing rescan" in folders["fix"]

    # An offer from the second node that no team expects: waiting for the user.
    cluster.offer(q, [p], "karma-offered", label="q's notes")
    _, checks = doctor_until(home, stubs, lambda c: c["syncthing.pending"]["status"] == "warn")
    pending = checks["syncthing.pending"]
    assert 'folder karma-offered "q\'s notes" offered by' in pending["message"]
    assert deviceid.short(q.device_id) in pending["message"]
    assert "karmactl pending" in pending["fix"]

    # Another program holds the only listen port.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        p.rest.patch("/rest/config/options", {"listenAddresses": [f"tcp://127.0.0.1:{port}"]})
        _, checks = doctor_until(home, stubs, lambda c: c["syncthing.listen"]["status"] == "fail")
    listen = checks["syncthing.listen"]
    assert "no listener works" in listen["message"]
    assert "address already in use" in listen["message"]
    assert "ss -ltnp" in listen["fix"]

    # The peer goes away; after doctor.peer_unseen_days (here 2.6 s) it is reported.
    q.teardown()
    _, checks = doctor_until(home, stubs, lambda c: c["syncthing.peers"]["status"] == "warn")
    peers = checks["syncthing.peers"]
    assert f"n2 ({deviceid.short(q.device_id)}) last seen" in peers["message"]
    assert "peer_unseen_days" in peers["fix"]


# --------------------------------------------------------------------------- team sync


def test_team_sync_problems(syncthing_cluster: Callable[..., Cluster], stubs: ServiceStubs) -> None:
    [a] = syncthing_cluster(
        1, karmad=True, config=f"{RELAXED_DISK}team_phase_warn_hours = 0.0003\n"
    ).nodes
    home = healthy_claude(node_home(a))

    code, checks = doctor_on(a, stubs)
    identity = checks["sync.identity"]
    assert identity["status"] == "warn"
    assert "karmactl init --user NAME" in identity["fix"]
    assert code == 0

    # A folder directory karmad cannot create: every change that needs one fails.
    init(a, "alice")
    folders = folders_dir(a)
    with contextlib.suppress(FileNotFoundError):
        folders.rmdir()
    folders.write_text("a file where karmad keeps its folders")
    a.call("team.create", {"name": "core"})
    wait_until(lambda: a.call("sync.status")["failures"], CONVERGE_S)
    code, checks = doctor_on(a, stubs)
    assert code == 1
    reconciler = checks["sync.reconciler"]
    assert reconciler["status"] == "fail"
    assert "PutFolder folder:karma-" in reconciler["message"]
    assert "File exists" in reconciler["message"] or "Not a directory" in reconciler["message"]
    assert "karmactl sync status" in reconciler["fix"]
    assert checks["sync.identity"]["status"] == "pass"

    # An invite from a leader that never answers: the team stays `joining`.
    leader = deviceid.from_bytes(os.urandom(32))
    invite = codes.encode_invite(
        codes.InviteCode(new_team_id(), "ghosts", "ghost.m", leader, ("tcp://127.0.0.1:1",))
    )
    a.call("team.join", {"invite": invite})
    _, checks = doctor_until(home, stubs, lambda c: c["sync.teams"]["status"] == "warn")
    teams = checks["sync.teams"]
    assert "ghosts: joining for" in teams["message"]
    assert "waiting for the roster of its leader ghost.m" in teams["message"]
    assert "karmactl team leave ghosts" in teams["fix"]
    # Never connected, added moments ago: listed, not yet a problem.
    peers = checks["syncthing.peers"]
    assert peers["status"] == "pass"
    assert f"not connected yet: ghost.m ({deviceid.short(leader)})" in peers["message"]


# --------------------------------------------------------------------------- from values

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DEVICES = [deviceid.from_bytes(bytes([n]) * 32) for n in range(1, 4)]


def test_listeners() -> None:
    assert listen_findings({}, "managed")[0].status == "warn"
    direct = "tcp://0.0.0.0:22000"
    relay = "dynamic+https://relays.syncthing.net/endpoint"
    [relay_down] = listen_findings(
        {direct: ListenerStatus(), relay: ListenerStatus(error="no relay reachable")}, "external"
    )
    assert relay_down.status == "warn"
    assert relay_down.message.startswith(f"listening on {direct}, but {relay}: no relay")
    assert "no relay can be reached" in relay_down.fix
    [none] = listen_findings(
        {direct: ListenerStatus(error="bind: address already in use"), relay: ListenerStatus()},
        "managed",
    )
    assert none.status == "fail"
    assert "ss -ltnp" in none.fix
    assert "listen_addresses" in none.fix


def test_profile() -> None:
    snap = Snapshot(options=OptionsConfig(global_announce_enabled=False, relays_enabled=True))
    [lan] = profile_findings(snap, SyncthingConfig(profile="lan-only"), "managed")
    assert lan.status == "warn"
    assert lan.message.startswith("profile lan-only expects discovery and relays off, but ")
    assert "local discovery, relays on" in lan.message
    assert "karmactl service restart" in lan.fix
    quiet = OptionsConfig(
        global_announce_enabled=False, local_announce_enabled=False, relays_enabled=False
    )
    [fine] = profile_findings(Snapshot(options=quiet), SyncthingConfig(profile="loopback"), "x")
    assert fine.status == "pass"


def device_state(device: str, **fields: object) -> DeviceState:
    return DeviceState(config=DeviceConfig(device_id=device, name="laptop"), **fields)  # type: ignore[arg-type]


def test_peers() -> None:
    week = timedelta(days=7)
    first, second, third = DEVICES
    snap = Snapshot(
        devices={
            first: device_state(first, connected=True),
            second: device_state(second, paused=True, last_seen=NOW - timedelta(days=90)),
            third: device_state(third),
        }
    )
    tags = {third: "carol.desk"}
    [fresh] = peer_findings(snap, NOW, week, tags, {third: NOW - timedelta(hours=1)})
    assert fresh.status == "pass"
    assert fresh.message == (
        f"3 peer(s): 1 connected, 1 paused, not connected yet: carol.desk ({deviceid.short(third)})"
    )
    [stale] = peer_findings(snap, NOW, week, tags, {third: NOW - timedelta(days=30)})
    assert stale.status == "warn"
    assert "carol.desk" in stale.message
    assert "never connected since it was added 30 days ago" in stale.message
    snap.devices[third].last_seen = NOW - timedelta(days=8)
    [seen] = peer_findings(snap, NOW, week, {}, {})
    assert f"laptop ({deviceid.short(third)}) last seen 8 days ago" in seen.message


def test_pending_offers_the_reconciler_has_not_seen_yet_do_not_count() -> None:
    expected_folder, other = "karma-" + "a" * 26, "karma-" + "b" * 26
    first, second, _ = DEVICES
    snap = Snapshot(
        pending_devices={second: PendingDevice(time=NOW, name="new laptop")},
        pending_folders={
            expected_folder: {first: PendingFolderOffer(time=NOW - timedelta(minutes=5))},
            other: {first: PendingFolderOffer(time=NOW - timedelta(minutes=5), label="x")},
        },
    )
    inbox = DesiredFolder(
        expected_folder,
        "karma · core · alice.m1",
        FolderType.RECEIVEONLY,
        frozenset({first}),
        ("!/state", "*"),
        "a" * 26,
        first,
    )
    desired = Desired(devices={}, folders={expected_folder: inbox}, states={})
    looked_before = ReconcilerState(
        state="idle", desired=desired, last=CycleReport(NOW - timedelta(seconds=1), 1.0, 0, 0, 0)
    )
    [finding] = pending_findings(snap, looked_before, {first: "alice.m1"})
    assert finding.status == "warn"
    assert finding.message == (
        f'1 offer(s) no team expects wait for you: folder {other} "x" offered by alice.m1'
    )
    looked_after = ReconcilerState(
        state="idle", desired=desired, last=CycleReport(NOW + timedelta(seconds=1), 1.0, 0, 0, 0)
    )
    [both] = pending_findings(snap, looked_after, {})
    assert both.message.startswith("2 offer(s)")
    assert f'device {deviceid.short(second)} "new laptop"' in both.message


def local_team(phase: Phase, role: Role, since: datetime) -> LocalTeam:
    return LocalTeam(
        team_id="a" * 26,
        name="core",
        role=role,
        phase=phase,
        leader_device=DEVICES[0],
        leader_tag="alice.m1",
        phase_since=since,
    )


def test_teams_stuck_in_a_phase() -> None:
    day = timedelta(hours=24)
    recent = local_team(Phase.DISSOLVED, Role.LEADER, NOW - timedelta(hours=2))
    assert team_findings([recent], NOW, day)[0].message == "0 team(s), 1 changing membership"
    old = local_team(Phase.DISSOLVED, Role.LEADER, NOW - timedelta(days=3))
    [dissolved] = team_findings([old], NOW, day)
    assert dissolved.status == "warn"
    assert "core: dissolved 3 days ago, not every member has acknowledged" in dissolved.message
    assert "karmactl team show core" in dissolved.fix
    [removed] = team_findings([local_team(Phase.REMOVED, Role.MEMBER, NOW - 2 * day)], NOW, day)
    assert "core: removed by alice.m1 2 days ago" in removed.message
    assert team_findings([], NOW, day)[0].message == "this machine is in no team"


def test_reconciler_states() -> None:
    [off] = reconciler_findings(ReconcilerState(), [], NOW, syncthing_off=True)
    assert (off.status, off.message) == (
        "pass",
        'no team sync: Syncthing is off (syncthing.mode = "off")',
    )
    [waiting] = reconciler_findings(ReconcilerState(state="waiting"), [], NOW, syncthing_off=False)
    assert waiting.status == "warn"
    failure = Failure("ignores:karma-x", "SetIgnores", "500 boom", 3, NOW + timedelta(seconds=8))
    [failed] = reconciler_findings(
        ReconcilerState(state="degraded"), [(failure, 8.0)], NOW, syncthing_off=False
    )
    assert failed.message == (
        "1 change(s) to Syncthing keep failing: SetIgnores ignores:karma-x: 500 boom "
        "(attempt 3, next in 8s)"
    )
