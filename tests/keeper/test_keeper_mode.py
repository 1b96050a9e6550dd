"""A keeper-mode karmad with real Syncthing on loopback (docs/keeper.md 2.7, 2.10, 2.11).

K is a real karmad process with `[keeper] enabled`; the leader L and the member B are
plain Syncthing nodes configured over REST as their karmad will configure them. L signs
the control file with its own Syncthing device key. Everything K does, it does from the
serve code and the control files alone.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from karmad import codes
from karmad.domain import folder_id
from karmad.keeper.control import Control, ControlFolder, sign_control
from karmad.keeper.plan import HeldKind, keeper_folder_id
from karmad.trust.keys import DeviceKey, load_device_key
from tests.support.daemon import RpcFailure, karmactl_command
from tests.support.syncthing import (
    Cluster,
    Node,
    attach_karmad_node,
    launch_plain,
    stop_plain,
    wait_started,
    wait_until,
)

TEAM = "keeperteamkeeperteamkeeper"
KEEPER_FOLDER = keeper_folder_id(TEAM)
PLANTED_NAME = "PLANTEDSESSIONNAME"
PLANTED_LINE = "PLANTEDCONTENTLINE"
KEEPER_CONFIG = "[keeper]\nenabled = true\nsweep_interval_s = 2\n"
CONVERGE_S = 90
KEEPER_METHODS = (
    "syncthing.status",
    "keeper.code",
    "keeper.serve",
    "keeper.leave",
    "keeper.status",
)


def _key(node: Node) -> DeviceKey:
    return load_device_key(node.syncthing_home / "cert.pem", node.syncthing_home / "key.pem")


def _control(
    seq: int, leader: Node, keeper: str, content: str, readers: list[str], **kw: Any
) -> Control:
    return Control(
        seq=seq,
        leader=leader.device_id,
        keeper=keeper,
        epoch=kw.get("epoch", 1),
        folders=[
            ControlFolder(id=KEEPER_FOLDER, kind=HeldKind.CONTROL, devices=readers),
            ControlFolder(
                id=content,
                kind=HeldKind.CONTENT,
                devices=[leader.device_id, *readers],
                generation=kw.get("generation", 1),
            ),
        ],
    )


def _put_content(node: Node, fid: str, kind: str, peers: dict[str, str | None]) -> Path:
    """A folder as members configure it: each peer, with its password if it is K."""
    path = node.folder_dir(fid)
    path.mkdir(parents=True, exist_ok=True)
    devices: list[dict[str, str]] = [{"deviceID": node.device_id}]
    for device, password in peers.items():
        entry = {"deviceID": device}
        if password:
            entry["encryptionPassword"] = password
        devices.append(entry)
    node.rest.put(
        f"/rest/config/folders/{fid}",
        {"id": fid, "label": "karma x", "path": str(path), "type": kind, "devices": devices},
    )
    return path


def _planted(root: Path) -> list[str]:
    found = subprocess.run(
        ["grep", "-rlaE", f"{PLANTED_NAME}|{PLANTED_LINE}", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.split()


def _served(k: Node) -> dict[str, Any]:
    status = k.call("keeper.status")
    assert status["mode"] == "keeper"
    (served,) = status["served"]
    return dict(served)


def _k_folder(k: Node, fid: str) -> dict[str, Any] | None:
    return next((f for f in k.rest.get("/rest/config/folders") if f["id"] == fid), None)


def _ciphertext(k: Node, fid: str) -> list[Path]:
    assert k.karmad is not None
    directory = k.karmad.home.state / "folders" / fid
    return [p for p in directory.rglob("*") if p.is_file() and ".syncthing-enc" in str(p)]


def _doctor(k: Node) -> dict[str, dict[str, Any]]:
    run = k.call("doctor.run")["run"]

    def report() -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = k.call("doctor.report")
        except RpcFailure:
            return None  # no run finished yet
        return found if found["run"] >= run else None

    return {c["name"]: c for c in wait_until(report, 30, message="doctor report")["checks"]}


def _holds(node: Node, fid: str) -> bool:
    status = node.rest.get("/rest/db/status", folder=fid)
    return bool(status["localFiles"] >= 1 and status["needFiles"] == 0)


def test_a_keeper_daemon_answers_exactly_the_keepers_methods(tmp_path: Path) -> None:
    from karmad import app, paths
    from karmad.config import Config
    from karmad.protocol import METHODS
    from karmad.state_schema import STATE_SCHEMA
    from karmad.store import Store

    store = Store.open(tmp_path / "karmad.db", STATE_SCHEMA)
    resolved = paths.resolve(environ={"HOME": str(tmp_path)})
    services = app.assemble_keeper(resolved, Config(), store, "asyncio", lambda: None)
    router = app.build_keeper_router(services)
    assert router.missing() == []
    answered = {
        name
        for name, route in router.routes.items()
        if not route.handler.__qualname__.startswith("_wrong_mode")
    }
    assert answered == {
        name
        for name in METHODS
        if name.split(".")[0] in ("daemon", "events", "doctor") or name in KEEPER_METHODS
    }
    store.close()


@pytest.fixture
def keeper(syncthing_cluster: Callable[..., Cluster], anyio_backend: str) -> Node:
    (k,) = syncthing_cluster(1, karmad=True, backend=anyio_backend, config=KEEPER_CONFIG).nodes
    attach_karmad_node(k)
    return k


def test_a_keeper_answers_only_what_a_keeper_does(keeper: Node) -> None:
    code = keeper.call("keeper.code")
    decoded = codes.decode_keeper(code["code"])
    assert decoded.device_id == keeper.device_id == code["device_id"]
    assert keeper.listen_address in decoded.addresses
    assert keeper.call("daemon.status")["subsystems"]["keeper"]["state"] == "idle"
    assert keeper.call("keeper.status") == {
        "mode": "keeper",
        "device_id": keeper.device_id,
        "teams": [],
        "served": [],
    }
    for method in ("team.list", "session.list", "keeper.add", "identity.get"):
        with pytest.raises(RpcFailure) as refused:
            keeper.call(method, {"team": "x", "code": "x"} if method == "keeper.add" else {})
        assert refused.value.error["data"]["reason"] == "wrong_mode"
        assert "this karmad is a keeper" in refused.value.error["data"]["detail"]
    # A code that is not a serve code, and one naming the keeper itself as leader.
    with pytest.raises(RpcFailure) as bad:
        keeper.call("keeper.serve", {"code": code["code"]})
    assert bad.value.error["data"]["reason"] == "invalid_code"
    own = codes.encode_serve(codes.ServeCode(keeper.device_id, KEEPER_FOLDER, ()))
    with pytest.raises(RpcFailure) as itself:
        keeper.call("keeper.serve", {"code": own})
    assert itself.value.error["data"]["reason"] == "invalid_code"
    # karmactl, typed, as an operator sees it.
    env = keeper.karmad.home.env() if keeper.karmad else {}
    shown = subprocess.run(
        karmactl_command("keeper", "status"), env=env, capture_output=True, text=True, check=False
    )
    assert shown.returncode == 0, shown.stderr
    assert "Serving no team yet" in shown.stdout
    checks = _doctor(keeper)
    assert checks["keeper.served"]["status"] == "pass"
    assert {name.split(".")[0] for name in checks} == {"store", "disk", "keeper"}
    # (disk space is the machine's business, not this test's)
    assert all(c["status"] == "pass" for n, c in checks.items() if not n.startswith("disk"))
    overview = subprocess.run(
        karmactl_command("status"), env=env, capture_output=True, text=True, check=False
    )
    assert overview.returncode == 0, overview.stderr
    assert "mode  keeper" in overview.stdout
    assert "no user name yet" not in overview.stdout


def test_a_member_daemon_refuses_the_keepers_methods(
    syncthing_cluster: Callable[..., Cluster], anyio_backend: str
) -> None:
    (m,) = syncthing_cluster(1, karmad=True, backend=anyio_backend).nodes
    for method, params in (
        ("keeper.code", {}),
        ("keeper.serve", {"code": "x"}),
        ("keeper.leave", {"folder_id": KEEPER_FOLDER}),
    ):
        with pytest.raises(RpcFailure) as refused:
            m.call(method, params)
        assert refused.value.error["data"]["reason"] == "wrong_mode"
        assert "not a keeper" in refused.value.error["data"]["detail"]


def test_the_keeper_serves_ciphertext_to_a_member_while_the_leader_is_away(
    syncthing_cluster: Callable[..., Cluster], keeper: Node
) -> None:
    k = keeper
    leader, member = syncthing_cluster(2).nodes
    content = folder_id(TEAM, leader.device_id)
    password = "first-password-of-the-team-folder"

    # The leader: K as a device, the keeper folder in plaintext holding the signed
    # control file, its team folder under a password for K.
    Cluster.add_device(leader, k)
    keeper_dir = _put_content(leader, KEEPER_FOLDER, "sendonly", {k.device_id: None})
    (keeper_dir / "control").write_bytes(
        sign_control(
            _key(leader),
            _control(1, leader, k.device_id, content, [member.device_id]),
            folder=KEEPER_FOLDER,
        )
    )
    content_dir = _put_content(leader, content, "sendonly", {k.device_id: password})
    (content_dir / f"{PLANTED_NAME}.jsonl").write_text(f'{{"line":"{PLANTED_LINE}"}}\n' * 40)
    for fid in (KEEPER_FOLDER, content):
        leader.rest.post("/rest/db/scan", folder=fid)

    serve = codes.encode_serve(
        codes.ServeCode(leader.device_id, KEEPER_FOLDER, (leader.listen_address,))
    )
    assert k.call("keeper.serve", {"code": serve})["changed"] is True
    assert k.call("keeper.serve", {"code": serve})["changed"] is False

    def held() -> bool:
        folder = _k_folder(k, content)
        return folder is not None and folder["type"] == "receiveencrypted" and _holds(k, content)

    wait_until(held, CONVERGE_S, message="K holds the team folder as ciphertext")
    folder = _k_folder(k, content)
    assert folder is not None
    assert {d["deviceID"] for d in folder["devices"]} == {
        k.device_id,
        leader.device_id,
        member.device_id,
    }
    assert all(not d.get("encryptionPassword") for d in folder["devices"])
    devices = {d["deviceID"]: d for d in k.rest.get("/rest/config/devices")}
    assert devices[leader.device_id]["name"] == f"member {leader.device_id[:7]}"
    assert devices[leader.device_id]["addresses"] == [leader.listen_address]
    assert devices[member.device_id]["addresses"] == ["dynamic"]
    keeper_folder = _k_folder(k, KEEPER_FOLDER)
    assert keeper_folder is not None and keeper_folder["type"] == "receiveonly"
    served = _served(k)
    assert (served["control_seq"], served["epoch"], served.get("problem")) == (1, 1, None)
    assert served["devices"] == sorted([leader.device_id, member.device_id])
    wait_until(
        lambda: any(
            f["folder_id"] == content and (f.get("local_files") or 0) >= 1
            for f in _served(k)["folders"]
        ),
        30,
        message="keeper.status shows what K holds",
    )
    assert _planted(k.root) == []
    assert _planted(content_dir) != []  # the search finds them where they are plaintext
    applied = k.call("events.recent", {"topics": ["keeper.control.applied"]})["events"]
    assert [(e["data"]["folder"], e["data"]["seq"]) for e in applied] == [(KEEPER_FOLDER, 1)]
    first_ciphertext = _ciphertext(k, content)
    assert first_ciphertext != []

    # The leader goes away; the member, configured with K under the same password,
    # receives the leader's file from K alone.
    stop_plain(leader)
    Cluster.add_device(member, k)
    _put_content(member, content, "receiveonly", {k.device_id: password})
    received = member.folder_dir(content) / f"{PLANTED_NAME}.jsonl"
    wait_until(received.exists, CONVERGE_S, message="B receives through K")
    wait_until(lambda: _holds(member, content), CONVERGE_S, message="B complete")
    assert received.read_bytes() == (content_dir / f"{PLANTED_NAME}.jsonl").read_bytes()

    # K's folder directory is wiped while the leader is away: K notices it itself,
    # re-creates the folder and refills it from the member.
    assert k.karmad is not None
    shutil.rmtree(k.karmad.home.state / "folders" / content)
    wait_until(
        lambda: _ciphertext(k, content) and _holds(k, content),
        CONVERGE_S,
        message="K refills its wiped folder from the member",
    )
    repaired = k.call("events.recent", {"topics": ["keeper.repaired"]})["events"]
    assert [e["data"]["folder"] for e in repaired] == [content]
    first_ciphertext = _ciphertext(k, content)

    # The leader returns. A control file signed by another key (the member's) is
    # refused, recorded, and changes nothing K holds.
    launch_plain(leader)
    wait_started(leader)
    forged = _control(2, leader, k.device_id, content, [])
    (keeper_dir / "control").write_bytes(sign_control(_key(member), forged, folder=KEEPER_FOLDER))
    leader.rest.post("/rest/db/scan", folder=KEEPER_FOLDER)
    wait_until(
        lambda: "not signed by the leader" in (_served(k).get("problem") or ""),
        CONVERGE_S,
        message="K refuses the forged control file",
    )
    served = _served(k)
    assert served["control_seq"] == 1
    refused = k.call("events.recent", {"topics": ["keeper.control.refused"]})["events"]
    assert ["not signed by the leader" in e["data"]["reason"] for e in refused] == [True]
    finding = _doctor(k)[f"keeper.served.{KEEPER_FOLDER}"]
    assert finding["status"] == "warn"
    assert "not signed by the leader" in finding["message"]
    assert "seq 1" in finding["message"]
    folder = _k_folder(k, content)
    assert folder is not None and member.device_id in {d["deviceID"] for d in folder["devices"]}
    shown = subprocess.run(
        karmactl_command("keeper", "status"),
        env=k.karmad.home.env() if k.karmad else {},
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert "not signed by the leader" in shown.stdout
    assert content in shown.stdout

    # A rotation. The member has the new password at once; the leader stops listing K
    # on its folder (the fallback while K would drop the link) and writes a control file
    # at the next password generation. K re-creates the folder empty, and fills it again
    # under the new password from whoever lists K with it.
    second = "second-password-of-the-team-folder"
    _put_content(member, content, "receiveonly", {k.device_id: second})
    _put_content(leader, content, "sendonly", {})
    rotated = _control(3, leader, k.device_id, content, [member.device_id], epoch=2, generation=2)
    (keeper_dir / "control").write_bytes(sign_control(_key(leader), rotated, folder=KEEPER_FOLDER))
    leader.rest.post("/rest/db/scan", folder=KEEPER_FOLDER)
    wait_until(lambda: _served(k)["control_seq"] == 3, CONVERGE_S, message="K applies the rotation")
    served = _served(k)
    assert (served["epoch"], served.get("problem")) == (2, None)
    (entry,) = [f for f in served["folders"] if f["folder_id"] == content]
    assert entry["generation"] == 2
    # Wiped, not kept beside the new ciphertext (whose names differ under a new password).
    assert not any(p.exists() for p in first_ciphertext)
    _put_content(leader, content, "sendonly", {k.device_id: second})
    (content_dir / "after-rotation.jsonl").write_text('{"line":"written after"}\n')
    leader.rest.post("/rest/db/scan", folder=content)
    after = member.folder_dir(content) / "after-rotation.jsonl"
    wait_until(after.exists, CONVERGE_S, message="B receives through K under the new password")
    wait_until(lambda: _holds(k, content), CONVERGE_S, message="K refilled")
    assert received.exists()
    assert _planted(k.root) == []
    assert _ciphertext(k, content) != []
    assert not set(first_ciphertext) & set(_ciphertext(k, content))

    # The operator stops serving the team: K drops its folders, their ciphertext and
    # the devices no other team needs; the leader's control file no longer matters.
    left = subprocess.run(
        karmactl_command("keeper", "leave", "--yes", KEEPER_FOLDER),
        env=k.karmad.home.env() if k.karmad else {},
        capture_output=True,
        text=True,
        check=False,
    )
    assert left.returncode == 0, left.stderr
    wait_until(
        lambda: (
            not k.rest.get("/rest/config/folders")
            and not [d for d in k.rest.get("/rest/config/devices") if d["deviceID"] != k.device_id]
        ),
        CONVERGE_S,
        message="K holds nothing of the team",
    )
    assert k.call("keeper.status")["served"] == []
    assert _ciphertext(k, content) == []
    with pytest.raises(RpcFailure) as again:
        k.call("keeper.leave", {"folder_id": KEEPER_FOLDER})
    assert again.value.error["data"]["reason"] == "not_found"
