"""Two teams on one project, a restart mid-way, and hostile peers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

from karmad.domain import new_team
from karmad.sync import statefile
from tests.support.syncthing import Cluster, wait_started, wait_until
from tests.support.teams import (
    CONVERGE_S,
    device,
    folders_dir,
    form_team,
    ignores,
    init,
    karma_config,
    member_states,
    own_folder,
    share_and_accept,
    team,
    topology_ok,
)

REMOTE = "github.com/acme/shared"


def test_two_teams_share_one_project_without_touching_each_other(
    syncthing_cluster: Callable[..., Cluster],
) -> None:
    a, b, c = syncthing_cluster(3, karmad=True).nodes
    for node, user in ((a, "alice"), (b, "bob"), (c, "carol")):
        init(node, user)
    x = form_team(a, b, name="x")  # alice leads x with bob
    y = form_team(c, a, name="y")  # carol leads y with alice
    key_x = share_and_accept(a, x, REMOTE, [(a, "both"), (b, "both")])
    key_y = share_and_accept(c, y, REMOTE, [(c, "both"), (a, "both")])
    assert key_x == key_y  # one project identity, one key

    def converged() -> bool:
        return (
            topology_ok([a, b], x, {a.name: [b], b.name: [a]})
            and topology_ok([a, c], y, {a.name: [c], c.name: [a]})
            and ignores(a, own_folder(b, x)) == ["!/state", f"!/projects/{key_x}", "*"]
            and ignores(a, own_folder(c, y)) == ["!/state", f"!/projects/{key_y}", "*"]
        )

    # topology_ok checks each node's inboxes per team; a node's folders of the other
    # team must not exist at all: bob and carol never even pair.
    wait_until(converged, CONVERGE_S, message="both teams converged")
    _, folders_b = karma_config(b)
    _, folders_c = karma_config(c)
    assert own_folder(c, y) not in folders_b and own_folder(a, y) not in folders_b
    assert own_folder(b, x) not in folders_c and own_folder(a, x) not in folders_c
    assert device(c) not in karma_config(b)[0]
    assert device(b) not in karma_config(c)[0]

    # Nothing changes across further cycles: no flapping device lists.
    before = [karma_config(n) for n in (a, b, c)]
    for node in (a, b, c):
        node.call("syncthing.rescan", {})
    time.sleep(3)
    assert [karma_config(n) for n in (a, b, c)] == before


def test_restart_mid_join_converges_without_duplicates(
    syncthing_cluster: Callable[..., Cluster],
) -> None:
    a, b = syncthing_cluster(2, karmad=True).nodes
    init(a, "alice")
    init(b, "bob")
    team_id = a.call("team.create", {"name": "core"})["team_id"]
    code = b.call("pair.code")["code"]
    invite = a.call("team.addMember", {"team": team_id, "code": code})["invite"]
    b.call("team.join", {"invite": invite})
    # Restart bob's karmad right away, before the join can have completed.
    assert b.karmad is not None
    b.karmad.stop()
    b.karmad.start(wait=False)
    wait_started(b)
    wait_until(
        lambda: (
            member_states(a, team_id).get("bob.n2") == "active"
            and team(b, team_id)["phase"] == "member"
        ),
        CONVERGE_S,
        message="join completes across the restart",
    )
    wait_until(lambda: topology_ok([a, b], team_id, {a.name: [b], b.name: [a]}), CONVERGE_S)
    for node in (a, b):
        _, folders = karma_config(node)
        assert len(folders) == 2, folders.keys()  # own folder and one inbox, nothing else


def test_hostile_peer_cannot_get_anything_accepted(
    syncthing_cluster: Callable[..., Cluster],
) -> None:
    a, b, c = syncthing_cluster(3, karmad=True).nodes
    for node, user in ((a, "alice"), (b, "bob"), (c, "carol")):
        init(node, user)
    team_id = form_team(a, b, c)
    wait_until(
        lambda: topology_ok([a, b, c], team_id, {a.name: [b, c], b.name: [a, c], c.name: [a, b]}),
        CONVERGE_S,
    )
    before_a = karma_config(a)

    # 1. Bob's Syncthing offers alice a folder nobody expects, with a path-like label.
    bob_dir = folders_dir(b).parent / "evil"
    bob_dir.mkdir()
    b.rest.put(
        "/rest/config/folders/shared-evil",
        {
            "id": "shared-evil",
            "label": "../../../../etc",
            "path": str(bob_dir),
            "type": "sendonly",
            "devices": [{"deviceID": device(b)}, {"deviceID": device(a)}],
        },
    )
    wait_until(
        lambda: "shared-evil" in {f["folder_id"] for f in a.call("pending.list")["folders"]},
        CONVERGE_S,
        message="the offer reaches alice",
    )

    # 2. Bob publishes a state file that claims leadership and removes carol.
    forged = new_team(team_id, "core", "bob.n2", device(b), _now())
    state = statefile.StateFile(
        team_id=team_id,
        owner_tag="bob.n2",
        owner_device=device(b),
        seq=10_000,
        written_at=_now(),
        team=statefile.team_to_wire(forged),
    )
    bob_folder = folders_dir(b) / own_folder(b, team_id)
    statefile.write_atomic(bob_folder, "state", statefile.encode(state))
    b.rest.post("/rest/db/scan", folder=own_folder(b, team_id))

    def rejected(node_events: list[dict[str, object]]) -> bool:
        kinds = {(e["kind"], json.dumps(e["detail"], sort_keys=True)) for e in node_events}
        return any(k == "state.rejected" and "not its leader" in d for k, d in kinds)

    for node in (a, c):
        wait_until(
            lambda n=node: rejected(n.call("team.activity", {"limit": 200})["events"]),  # type: ignore[misc]
            CONVERGE_S,
            message=f"{node.name} recorded the forged state",
        )
    events_a = a.call("team.activity", {"limit": 200})["events"]
    assert any(
        e["kind"] == "offer.rejected" and e["detail"].get("folder") == "shared-evil"
        for e in events_a
    )
    # Nothing was accepted or acted on: same configuration, same roster, carol still in.
    time.sleep(2)
    assert karma_config(a) == before_a
    assert "shared-evil" not in karma_config(a)[1]
    for node in (a, c):
        states = member_states(node, team_id)
        assert states["carol.n3"] == "active" and team(node, team_id)["leader_tag"] == "alice.n1"
    assert not (folders_dir(a).parent / "etc").exists()


def _now() -> datetime:
    return datetime.now(UTC)
