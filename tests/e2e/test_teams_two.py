"""Two members, two real karmad + Syncthing nodes: the whole subscription life cycle.

After each step, Syncthing's configuration on both nodes is compared with what the
design says it must be, and the state files are checked on disk.
"""

from __future__ import annotations

from collections.abc import Callable

from karmad.domain import folder_id
from tests.support.syncthing import Cluster, wait_until
from tests.support.teams import (
    CONVERGE_S,
    device,
    folders_dir,
    form_team,
    ignores,
    init,
    karma_config,
    own_folder,
    share_and_accept,
    team,
    topology_ok,
)

REMOTE = "github.com/acme/app"


def test_two_members_full_cycle(syncthing_cluster: Callable[..., Cluster]) -> None:
    a, b = syncthing_cluster(2, karmad=True).nodes
    init(a, "alice")
    init(b, "bob")

    team_id = form_team(a, b)
    assert team(a, team_id)["role"] == "leader"
    assert team(b, team_id)["role"] == "member"
    wait_until(
        lambda: topology_ok([a, b], team_id, {a.name: [b], b.name: [a]}),
        CONVERGE_S,
        message="one own folder and one inbox each",
    )

    # The state files arrived, each in the other's inbox.
    fa, fb = own_folder(a, team_id), own_folder(b, team_id)
    wait_until((folders_dir(b) / fa / "state").exists, CONVERGE_S)
    wait_until((folders_dir(a) / fb / "state").exists, CONVERGE_S)
    # Before any project is accepted, inboxes admit only the state file.
    assert ignores(a, fb) == ["!/state", "*"]
    assert ignores(b, fa) == ["!/state", "*"]
    assert ignores(a, fa) == [".karma-tmp-*"]

    key = share_and_accept(a, team_id, REMOTE, [(a, "both"), (b, "both")])
    project = f"!/projects/{key}"
    wait_until(lambda: ignores(a, fb) == ["!/state", project, "*"], CONVERGE_S)
    wait_until(lambda: ignores(b, fa) == ["!/state", project, "*"], CONVERGE_S)
    # The leader sees B's acceptance (published in B's state file).
    wait_until(
        lambda: (
            next(m for m in team(a, team_id)["members"] if not m["is_me"])["subscriptions"].get(key)
            == "accepted/both"
        ),
        CONVERGE_S,
        message="leader sees bob's subscription",
    )
    outboxes = a.call("sync.status")
    assert outboxes["state"] == "idle"

    # Pause on B: B stops receiving A's project (received data stays); A still receives B's.
    b.call("subscription.pause", {"team": team_id, "project": key})
    wait_until(lambda: ignores(b, fa) == ["!/state", "*"], CONVERGE_S)
    assert ignores(a, fb) == ["!/state", project, "*"]
    b.call("subscription.resume", {"team": team_id, "project": key})
    wait_until(lambda: ignores(b, fa) == ["!/state", project, "*"], CONVERGE_S)

    # Send-only on B: B receives nothing, A still receives from B.
    b.call("subscription.setDirection", {"team": team_id, "project": key, "direction": "send"})
    wait_until(lambda: ignores(b, fa) == ["!/state", "*"], CONVERGE_S)
    assert ignores(a, fb) == ["!/state", project, "*"]
    # Receive-only on B: B receives A's project.
    b.call("subscription.setDirection", {"team": team_id, "project": key, "direction": "receive"})
    wait_until(lambda: ignores(b, fa) == ["!/state", project, "*"], CONVERGE_S)

    # Nothing changes over further cycles: the configuration is stable.
    _, before = karma_config(a)
    seq_before = (folders_dir(b) / fa / "state").read_bytes()
    for node in (a, b):
        node.call("syncthing.rescan", {})
    wait_until(lambda: a.call("sync.status")["cycles"] >= 1, CONVERGE_S)
    _, after = karma_config(a)
    assert before == after
    assert (folders_dir(b) / fa / "state").read_bytes() == seq_before
    assert topology_ok([a, b], team_id, {a.name: [b], b.name: [a]})
    assert folder_id(team_id, device(a)) == fa


def test_decline_with_purge_deletes_what_was_received_and_nothing_else(
    syncthing_cluster: Callable[..., Cluster],
) -> None:
    a, b = syncthing_cluster(2, karmad=True).nodes
    init(a, "alice")
    init(b, "bob")
    team_id = form_team(a, b)
    key = share_and_accept(a, team_id, REMOTE, [(a, "both"), (b, "receive")])
    fa = own_folder(a, team_id)
    wait_until(lambda: ignores(b, fa) == ["!/state", f"!/projects/{key}", "*"], CONVERGE_S)

    # A session in alice's outbox reaches bob's inbox.
    sent = folders_dir(a) / fa / "projects" / key / "s1.jsonl"
    sent.parent.mkdir(parents=True)
    sent.write_text('{"type":"user"}\n')
    a.call("syncthing.rescan", {"folder": fa, "paths": [f"projects/{key}/s1.jsonl"]})
    received = folders_dir(b) / fa / "projects" / key
    wait_until((received / "s1.jsonl").exists, CONVERGE_S, message="the session arrives")

    # Paused: what was received stays.
    b.call("subscription.pause", {"team": team_id, "project": key})
    wait_until(lambda: ignores(b, fa) == ["!/state", "*"], CONVERGE_S)
    b.call("syncthing.rescan", {})
    wait_until(lambda: b.call("sync.status")["cycles"] >= 1, CONVERGE_S)
    assert (received / "s1.jsonl").exists()

    # Declined with purge: deleted once ignored, so Syncthing sees no local change.
    b.call("subscription.decline", {"team": team_id, "project": key, "purge": True})
    wait_until(lambda: not received.exists(), CONVERGE_S, message="the purge")
    b.rest.post("/rest/db/scan", folder=fa)
    Cluster.wait_idle(b, fa)
    assert b.rest.get("/rest/db/status", folder=fa)["receiveOnlyChangedFiles"] == 0
    assert sent.exists()  # the sender's copy is untouched
    assert b.call("sync.status")["failures"] == []
