"""A device the user accepted offers what no team expects: recorded, left pending, harmless.

The hostile peer is a plain Syncthing (no karmad): it can offer any folder id and call
itself anything, as a buggy or compromised teammate's device could.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.syncthing import Cluster, Node, wait_until
from tests.support.teams import CONVERGE_S, init, karma_config, own_folder

HOSTILE_IDS = ("../../etc", "acme-backup")


def _offer(peer: Node, to: Node, fid: str, directory: Path) -> None:
    """A folder offered under any id: POSTed, since on a PUT the URL would carry it."""
    directory.mkdir(parents=True, exist_ok=True)
    peer.rest.post(
        "/rest/config/folders",
        {
            "id": fid,
            "label": f"team {fid}",
            "path": str(directory),
            "type": "sendonly",
            "devices": [{"deviceID": peer.device_id}, {"deviceID": to.device_id}],
        },
    )


def _offered(node: Node) -> dict[str, Any]:
    result: dict[str, Any] = node.rest.get("/rest/cluster/pending/folders")
    return result or {}


def _rejected(node: Node) -> set[str]:
    events = node.call("team.activity", {"limit": 200})["events"]
    return {e["detail"].get("folder", "") for e in events if e["kind"] == "offer.rejected"}


def test_unexpected_offers_from_an_accepted_device_never_stop_the_reconciler(
    syncthing_cluster: Callable[..., Cluster],
) -> None:
    (bob,) = syncthing_cluster(1, karmad=True).nodes
    (peer,) = syncthing_cluster(1).nodes
    init(bob, "bob")
    # The peer calls itself by a member tag it does not own.
    peer.rest.patch(f"/rest/config/devices/{peer.device_id}", {"name": "alice.laptop"})
    Cluster.add_device(peer, bob)

    (pending,) = wait_until(
        lambda: bob.call("pending.list")["devices"], CONVERGE_S, message="the peer knocks"
    )
    assert pending["device_id"] == peer.device_id
    assert pending["known_as"] == ""  # no invite or roster names it

    bob.call("pending.accept", {"device": peer.device_id})
    devices = wait_until(
        lambda: (d := karma_config(bob)[0]).get(peer.device_id) and d,
        CONVERGE_S,
        message="bob configures the accepted device",
    )
    # The name it gave itself is not adopted.
    assert devices[peer.device_id]["name"] != "alice.laptop"
    accepted = [
        e
        for e in bob.call("team.activity", {"limit": 50})["events"]
        if e["kind"] == "offer.accepted"
    ]
    assert [e["member_tag"] for e in accepted] == [f"device.{peer.device_id[:7].lower()}"]

    for n, fid in enumerate(HOSTILE_IDS):
        _offer(peer, bob, fid, peer.root / f"offered{n}")
    wait_until(
        lambda: set(HOSTILE_IDS) <= set(_offered(bob)), CONVERGE_S, message="offers reach bob"
    )
    wait_until(
        lambda: set(HOSTILE_IDS) <= _rejected(bob),
        CONVERGE_S,
        message="both offers recorded as not expected",
    )
    listed = {f["folder_id"] for f in bob.call("pending.list")["folders"]}
    assert set(HOSTILE_IDS) <= listed  # left for the user

    # The reconciler still works: a change made now is applied.
    team_id = bob.call("team.create", {"name": "core"})["team_id"]
    wait_until(
        lambda: own_folder(bob, team_id) in karma_config(bob)[1],
        CONVERGE_S,
        message="a team created after the offers gets its folder",
    )
    assert bob.call("sync.status")["state"] == "idle"

    # Dismissing the path-like offer works, once and for good; the other stays pending.
    bob.call("pending.dismiss", {"folder": "../../etc"})
    wait_until(
        lambda: "../../etc" not in _offered(bob), CONVERGE_S, message="the offer is dismissed"
    )
    assert "acme-backup" in _offered(bob)
    status = bob.call("sync.status")
    assert status["state"] == "idle" and status["failures"] == []
    assert not list(bob.root.rglob("etc"))  # no path was ever made of it
