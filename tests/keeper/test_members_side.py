"""A leader names a keeper; every member's karmad lists it with the same passwords.

Real karmad processes (leader and member) over the real socket; the keeper here is a
plain Syncthing node, because what is checked is the members' side: the keeper folder
with the leader's signed files, the secret each member opens from them, the password
each lists the keeper with, neutral labels, and an invite that carries the keeper.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

from karmad import codes, deviceid
from karmad.keeper import control as kc
from karmad.keeper.plan import keeper_folder_id
from karmad.sync import keeper_files
from karmad.trust import wrap
from tests.support.daemon import karmactl_command
from tests.support.keeper import keeper_code
from tests.support.syncthing import Cluster, Node, wait_until
from tests.support.teams import CONVERGE_S, device, folders_dir, form_team, init, karma_config


def k_passwords(node: Node, keeper: str, team_id: str) -> dict[str, str]:
    """Folder -> the password `node` lists the keeper with there."""
    _, folders = karma_config(node)
    found: dict[str, str] = {}
    for fid, folder in folders.items():
        for d in folder["devices"]:
            if d["deviceID"] == keeper:
                found[fid] = d.get("encryptionPassword", "")
    return found


def test_members_list_the_keeper_with_the_passwords_the_leader_derives(
    syncthing_cluster: Callable[..., Cluster],
) -> None:
    a, b = syncthing_cluster(2, karmad=True).nodes
    (k,) = syncthing_cluster(1).nodes
    init(a, "alice")
    init(b, "bob")
    team_id = form_team(a, b, name="hushhush")
    keeper = k.rest.get("/rest/system/status")["myID"]

    # The leader names the keeper with karmactl; what it prints is the serve code.
    assert a.karmad is not None
    done = subprocess.run(
        karmactl_command("keeper", "add", "hushhush", keeper_code(k), "--yes"),
        env=a.karmad.home.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    serve = codes.decode_serve(done.stdout.strip())
    assert "karmactl keeper serve" in done.stderr
    kfid = keeper_folder_id(team_id)
    assert (serve.leader_device, serve.folder_id) == (device(a), kfid)
    assert a.call("keeper.add", {"team": team_id, "code": keeper_code(k)})["changed"] is False

    # The leader writes the signed files; the control file lists both readers' folders.
    control_path = folders_dir(a) / kfid / kc.CONTROL_NAME

    def control() -> kc.Control | None:
        try:
            data = control_path.read_bytes()
        except FileNotFoundError:
            return None
        return kc.read_control(data, folder=kfid, leader=device(a), keeper=keeper)

    ctl = wait_until(control, CONVERGE_S, message="the leader writes the control file")
    content = {f.id for f in ctl.folders if f.kind == "content"}
    assert len(content) == 2
    assert all(set(f.devices) == {device(a), device(b)} for f in ctl.folders)

    # Bob receives the key file directly from the leader, opens it, and lists K with the
    # same password as the leader on every team folder.
    def listed_alike() -> dict[str, str] | None:
        on_a = k_passwords(a, keeper, team_id)
        on_b = k_passwords(b, keeper, team_id)
        wanted = content | {kfid}
        if set(on_a) != wanted or set(on_b) != wanted:
            return None
        return on_a if on_a == on_b else None

    passwords = wait_until(listed_alike, CONVERGE_S, message="both list the keeper alike")
    assert passwords[kfid] == ""  # the keeper folder is plaintext for K
    assert all(len(passwords[f]) == 52 for f in content), passwords
    keys_data = (folders_dir(b) / kfid / kc.KEYS_NAME).read_bytes()
    assert b.karmad is not None
    sealing = wrap.SealingKey.from_bytes((b.karmad.home.state / "sealing.key").read_bytes())
    opened = keeper_files.open_keys(
        keys_data,
        folder=kfid,
        leader=device(a),
        me=device(b),
        sealing_key=sealing,
        join_secret=None,
    )
    assert opened.epoch == 1 and opened.secret is not None

    # Labels name nothing: not the team, not a member.
    _, folders = karma_config(b)
    for folder in folders.values():
        assert "hushhush" not in folder["label"] and "alice" not in folder["label"]

    # Both see the keeper in `keeper.status`; karmactl says so in words.
    assert b.karmad is not None
    shown = subprocess.run(
        karmactl_command("keeper", "status"),
        env=b.karmad.home.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "hushhush (member)" in shown and "on every team folder" in shown, shown
    for node, role in ((a, "leader"), (b, "member")):
        status: dict[str, Any] = node.call("keeper.status")
        (view,) = status["teams"]
        assert (view["role"], view["epoch"], view["listed"]) == (role, 1, True), view

    # An invite now carries the keeper and a join secret; the code's keeper is K.
    code = codes.encode_member(codes.MemberCode("carol.n9", deviceid.from_bytes(b"\x33" * 32)))
    invite = codes.decode_invite(
        a.call("team.addMember", {"team": team_id, "code": code})["invite"]
    )
    assert invite.keeper is not None and invite.keeper.device_id == keeper

    # Removing the keeper leaves it only the keeper folder, with a control file holding
    # nothing, and members drop it.
    a.call("keeper.remove", {"team": team_id})
    wait_until(
        lambda: (
            set(k_passwords(b, keeper, team_id)) == set()
            and set(k_passwords(a, keeper, team_id)) == {kfid}
        ),
        CONVERGE_S,
        message="the keeper is dropped",
    )

    def emptied() -> kc.Control | None:
        c = control()
        return c if c is not None and len(c.folders) == 1 and not c.folders[0].devices else None

    final = wait_until(emptied, CONVERGE_S, message="the last control file holds nothing")
    assert [f.kind for f in final.folders] == ["control"]
