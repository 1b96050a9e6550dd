"""A change someone else makes in a member's own folder is undone by its owner.

With a keeper, any device that reaches it can write into any team folder (docs/keeper.md,
2.3). Here the writer is the teammate itself: bob's karmad is stopped, and his Syncthing
(a plain one karmad was attached to) is turned to list alice's folder as send-receive
and changes her `state` file. Alice's Syncthing then needs that item in her send-only
folder, and her karmad (a real process) overrides it: bob's copy is hers again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.daemon import KarmadProcess
from tests.support.syncthing import Node, start_karmad_node, wait_until
from tests.support.teams import (
    CONVERGE_S,
    external_member,
    folders_dir,
    form_team,
    init,
    own_folder,
)

pytestmark = pytest.mark.syncthing


def test_the_owner_restores_its_own_folder(
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
    original = folders_dir(alice) / fid / "state"
    copy = folders_dir(bob) / fid / "state"
    wait_until(
        lambda: copy.exists() and copy.read_bytes() == original.read_bytes(),
        CONVERGE_S,
        message="bob holds alice's state file",
    )

    # Bob's device goes rogue: no karmad to keep its inbox receive-only.
    assert bob.karmad is not None
    assert bob.karmad.stop() == 0
    bob.rest.patch(f"/rest/config/folders/{fid}", {"type": "sendreceive"})
    wait_until(
        lambda: bob.rest.get("/rest/db/status", folder=fid)["state"] == "idle",
        CONVERGE_S,
        message="bob's folder running as send-receive",
    )
    theirs = original.read_bytes()
    forged = theirs.replace(b'"owner_tag":"alice.alice"', b'"owner_tag":"mallory.x"', 1)
    assert forged != theirs
    copy.write_bytes(forged)
    bob.rest.post("/rest/db/scan", folder=fid)

    try:
        wait_until(
            lambda: copy.read_bytes() == original.read_bytes(),
            CONVERGE_S,
            message="bob's copy is alice's version again",
        )
    except AssertionError as exc:
        pytest.fail(f"{exc}\n" + "\n".join(n.diagnose() for n in (alice, bob)))
    # Alice's own file never changed, and her folder needs nothing any more.
    assert original.read_bytes() == theirs
    wait_until(
        lambda: alice.rest.get("/rest/db/status", folder=fid)["needTotalItems"] == 0,
        CONVERGE_S,
        message="alice's folder needs nothing",
    )
    events = alice.call("team.activity", {"team": team_id, "limit": 200})["events"]
    overridden = [e for e in events if e["kind"] == "folder.overridden"]
    assert overridden, events
    assert {e["detail"]["folder"] for e in overridden} == {fid}
    assert {e["device_id"] for e in overridden} == {alice.device_id}
