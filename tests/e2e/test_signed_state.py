"""State files carry their owner's signature, and a member believes nothing else.

Alice leads, bob is a member whose karmad is attached to a plain Syncthing (so that
stopping his karmad leaves his Syncthing running, for the test to drive). Both write
signed state files. Then what reaches bob's copy of alice's folder while his karmad is
away is refused when it comes back:

- an older genuine file of alice's, put back into the folder (a replay);
- a roster forged by a third device that bob's Syncthing lets write into that folder
  (as any device behind a keeper can: docs/keeper.md 2.3), unsigned, while alice is
  away (once she is back her karmad restores her file: tests/e2e/test_owner_override.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from karmad.sync import statefile
from karmad.trust import signed
from karmad.trust.keys import BadSignature
from tests.support.daemon import KarmadProcess
from tests.support.syncthing import Cluster, Node, start_karmad_node, start_plain_node, wait_until
from tests.support.teams import (
    CONVERGE_S,
    device,
    external_member,
    folders_dir,
    form_team,
    init,
    own_folder,
    share_and_accept,
    team,
)

pytestmark = pytest.mark.syncthing


def _payload(data: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(data.splitlines()[0])
    return doc


def _verified(data: bytes, fid: str, owner: str) -> bool:
    try:
        signed.verify_file(data, kind="state", folder=fid, path="state", owner=owner)
    except BadSignature:
        return False
    return True


def _rejected(node: Node, fid: str, reason: str) -> list[dict[str, Any]]:
    events = node.call("team.activity", {"limit": 500})["events"]
    return [
        e
        for e in events
        if e["kind"] == "state.rejected"
        and e["detail"].get("folder") == fid
        and str(e["detail"].get("reason", "")).startswith(reason)
    ]


def _roster(node: Node, team_id: str) -> tuple[str, list[tuple[str, str]]]:
    record = team(node, team_id)
    return record["name"], sorted((m["member_tag"], m["state"]) for m in record["members"])


def _restart(node: Node) -> None:
    assert node.karmad is not None
    node.karmad.start()
    wait_until(
        lambda: node.call("syncthing.status")["stream"]["live"],
        CONVERGE_S,
        message=f"{node.name}'s karmad attached again",
    )


def test_a_member_believes_only_its_leaders_signed_and_latest_state(
    tmp_path: Path,
    nodes: list[Node],
    karmad_factory: Callable[..., KarmadProcess],
    anyio_backend: str,
) -> None:
    alice = start_karmad_node(tmp_path / "alice", "alice", backend=anyio_backend)
    nodes.append(alice)
    bob = external_member(tmp_path / "bob", karmad_factory, anyio_backend)
    nodes.append(bob)
    init(alice, "alice")
    init(bob, "bob")
    team_id = form_team(alice, bob)
    fid = own_folder(alice, team_id)
    leader = device(alice)
    original = folders_dir(alice) / fid / "state"
    copy = folders_dir(bob) / fid / "state"

    # 1. Both sign what they publish, and bob's copy of alice's file is hers, signed.
    wait_until(
        lambda: copy.exists() and copy.read_bytes() == original.read_bytes(),
        CONVERGE_S,
        message="bob holds alice's state file",
    )
    assert _verified(original.read_bytes(), fid, leader)
    bob_fid = own_folder(bob, team_id)
    assert _verified((folders_dir(bob) / bob_fid / "state").read_bytes(), bob_fid, device(bob))
    before = _roster(bob, team_id)

    # 2. A replay: alice publishes a newer file; her older one is put back in bob's copy.
    old = copy.read_bytes()
    share_and_accept(alice, team_id, "github.com/acme/signed", [(bob, "receive")])
    wait_until(
        lambda: _payload(copy.read_bytes())["seq"] > _payload(old)["seq"],
        CONVERGE_S,
        message="bob holds alice's newer file",
    )
    current = _roster(bob, team_id)
    projects = {p["key"] for p in team(bob, team_id)["projects"]}
    assert bob.karmad is not None
    assert bob.karmad.stop() == 0
    copy.write_bytes(old)
    _restart(bob)
    try:
        wait_until(
            lambda: _rejected(bob, fid, "stale:"),
            CONVERGE_S,
            message="bob refuses alice's older file",
        )
    except AssertionError as exc:
        pytest.fail(f"{exc}\n{bob.karmad.log()[-4000:]}")
    assert _roster(bob, team_id) == current
    assert {p["key"] for p in team(bob, team_id)["projects"]} == projects

    # 3. A forgery: a third device, mallory, may write into bob's copy of alice's folder
    # while bob's karmad is away, and replaces the roster (unsigned, a higher seq).
    wait_until(
        lambda: copy.read_bytes() == original.read_bytes(),
        CONVERGE_S,
        message="bob's copy is alice's file again (reverted)",
    )
    assert bob.karmad.stop() == 0
    # Alice is away too (else her karmad restores her folder at once: the override).
    assert alice.karmad is not None
    assert alice.karmad.stop() == 0
    mallory = start_plain_node(tmp_path / "mallory", "mallory")
    nodes.append(mallory)
    Cluster([bob, mallory]).pair(bob, mallory)
    inbox = bob.rest.get(f"/rest/config/folders/{fid}")
    bob.rest.patch(
        f"/rest/config/folders/{fid}",
        {"devices": [*inbox["devices"], {"deviceID": mallory.device_id}]},
    )
    theirs = Cluster.add_folder(mallory, fid, "sendreceive", [bob], watcher=False)
    wait_until(
        lambda: (
            (theirs / "state").exists() and (theirs / "state").read_bytes() == original.read_bytes()
        ),
        CONVERGE_S,
        message="mallory holds alice's file",
    )
    genuine = _payload(original.read_bytes())
    forged = json.loads(json.dumps(genuine))
    forged["seq"] += 1000
    forged["team"]["name"] = "owned"
    forged["team"]["members"] = [m for m in forged["team"]["members"] if m["device_id"] == leader]
    forged_bytes = json.dumps(forged, separators=(",", ":")).encode() + b"\n"
    statefile.write_atomic(theirs, "state", forged_bytes)
    mallory.rest.post("/rest/db/scan", folder=fid)
    wait_until(
        lambda: copy.read_bytes() == forged_bytes,
        CONVERGE_S,
        message="mallory's roster reaches bob's copy of alice's folder",
    )
    _restart(bob)
    try:
        wait_until(
            lambda: _rejected(bob, fid, "unsigned:"),
            CONVERGE_S,
            message="bob refuses the forged roster",
        )
    except AssertionError as exc:
        pytest.fail(f"{exc}\n{bob.karmad.log()[-4000:]}")
    assert _roster(bob, team_id) == current == before
    assert team(bob, team_id)["phase"] == "member"
    # Alice's own file never changed; mallory is taken off bob's folder, and what she
    # wrote, still there until alice is back, is still not believed.
    assert _payload(original.read_bytes())["team"]["name"] == "core"
    wait_until(
        lambda: (
            mallory.device_id
            not in {d["deviceID"] for d in bob.rest.get(f"/rest/config/folders/{fid}")["devices"]}
        ),
        CONVERGE_S,
        message="bob's karmad takes mallory off the folder",
    )
    cycles = bob.call("sync.status")["cycles"]
    wait_until(
        lambda: bob.call("sync.status")["cycles"] >= cycles + 2,
        CONVERGE_S,
        message="bob's karmad ran again",
    )
    assert copy.read_bytes() == forged_bytes
    assert _roster(bob, team_id) == current
