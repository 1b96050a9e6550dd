"""Three members: removal reaches everyone; dissolution reaches a member that was away."""

from __future__ import annotations

from collections.abc import Callable

from tests.support.sessions import SessionWriter, corpus_records, make_checkout
from tests.support.syncthing import Cluster, Node, wait_started, wait_until
from tests.support.teams import (
    CONVERGE_S,
    device,
    form_team,
    init,
    karma_config,
    own_folder,
    share_and_accept,
    team,
    topology_ok,
)

REMOTE = "github.com/acme/app"

FAST_TEAMS = "[teams]\nack_linger_s = 8\n"


def no_team_left(node: Node) -> bool:
    _, folders = karma_config(node)
    return not folders and not node.call("team.list")["teams"]


def test_removal_reaches_the_third_member_and_the_removed_one_leaves(
    syncthing_cluster: Callable[..., Cluster],
) -> None:
    a, b, c = syncthing_cluster(3, karmad=True, config=FAST_TEAMS).nodes
    for node, user in ((a, "alice"), (b, "bob"), (c, "carol")):
        init(node, user)
    team_id = form_team(a, b, c)
    wait_until(
        lambda: topology_ok([a, b, c], team_id, {a.name: [b, c], b.name: [a, c], c.name: [a, b]}),
        CONVERGE_S,
        message="full mesh of three",
    )
    bob = device(b)

    # Bob's sessions of a shared project reach carol...
    share_and_accept(a, team_id, REMOTE, [(a, "both"), (b, "both"), (c, "both")])
    assert b.karmad is not None
    checkout = make_checkout(b.karmad.home.root, "https://github.com/acme/app.git")
    writer = SessionWriter(b.karmad.home.claude, checkout)
    writer.append(*corpus_records(6))
    wait_until(
        lambda: (
            writer.session_id
            in {s["id"] for s in c.call("session.list", {"origin": "remote"})["sessions"]}
        ),
        CONVERGE_S,
        message="bob's session reaches carol",
    )

    a.call("team.removeMember", {"team": team_id, "member": "bob.n2"})

    # The third member drops bob: from its own folder, its inbox, and its devices.
    wait_until(
        lambda: topology_ok([c], team_id, {c.name: [a]}) and bob not in karma_config(c)[0],
        CONVERGE_S,
        message="carol dropped bob entirely",
    )
    # Bob sees itself removed, acknowledges, and tears everything down by itself.
    wait_until(lambda: no_team_left(b), CONVERGE_S, message="bob left by itself")
    devices_b, _ = karma_config(b)
    assert device(a) not in devices_b and device(c) not in devices_b
    # The leader, once bob acknowledged, drops bob too.
    wait_until(
        lambda: topology_ok([a], team_id, {a.name: [c]}) and bob not in karma_config(a)[0],
        CONVERGE_S,
        message="alice dropped bob after the acknowledgement",
    )
    states = {m["member_tag"]: m["state"] for m in team(a, team_id)["members"]}
    assert states == {"alice.n1": "active", "bob.n2": "removed", "carol.n3": "active"}
    # ...and leave carol's views with him (the files stay on disk until purged).
    wait_until(
        lambda: not c.call("session.list", {"origin": "remote", "member": "bob.n2"})["sessions"],
        CONVERGE_S,
        message="bob's sessions leave carol's views",
    )
    kinds = [e["kind"] for e in b.call("team.activity", {"limit": 100})["events"]]
    assert "member.removed" in kinds and "team.cleaned_up" in kinds


def test_member_leaving_by_itself(syncthing_cluster: Callable[..., Cluster]) -> None:
    a, b = syncthing_cluster(2, karmad=True, config=FAST_TEAMS).nodes
    init(a, "alice")
    init(b, "bob")
    team_id = form_team(a, b)
    b.call("team.leave", {"team": team_id})
    wait_until(lambda: no_team_left(b), CONVERGE_S, message="bob left")
    wait_until(
        lambda: (
            {m["member_tag"]: m["state"] for m in team(a, team_id)["members"]}["bob.n2"]
            == "removed"
        ),
        CONVERGE_S,
    )
    wait_until(lambda: topology_ok([a], team_id, {a.name: []}), CONVERGE_S)


def test_dissolve_while_a_member_is_offline(syncthing_cluster: Callable[..., Cluster]) -> None:
    a, b, c = syncthing_cluster(3, karmad=True, config=FAST_TEAMS).nodes
    for node, user in ((a, "alice"), (b, "bob"), (c, "carol")):
        init(node, user)
    team_id = form_team(a, b, c)
    wait_until(
        lambda: topology_ok([a, b, c], team_id, {a.name: [b, c], b.name: [a, c], c.name: [a, b]}),
        CONVERGE_S,
    )
    carol = device(c)
    assert c.karmad is not None
    assert c.karmad.stop() == 0  # carol's machine is off

    a.call("team.dissolve", {"team": team_id})
    wait_until(lambda: no_team_left(b), CONVERGE_S, message="bob cleaned up")
    # The leader keeps its folder for carol, who has not acknowledged yet.
    _, folders_a = karma_config(a)
    assert own_folder(a, team_id) in folders_a
    assert carol in {d["deviceID"] for d in folders_a[own_folder(a, team_id)]["devices"]}

    c.karmad.start(wait=False)
    wait_started(c)
    wait_until(lambda: no_team_left(c), CONVERGE_S * 2, message="carol cleaned up on return")
    wait_until(lambda: no_team_left(a), CONVERGE_S, message="the leader finished dissolving")
