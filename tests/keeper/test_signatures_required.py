"""A team that had a keeper requires signed state files for good.

Files forged through the keeper stay in the members' folders after it is removed, so a
member keeps refusing unsigned state once its team has had a keeper. Real karmad
processes: alice leads (managed), bob's karmad is attached to a plain Syncthing (so the
test can stop his karmad and leave his Syncthing running); the keeper is a plain
Syncthing node, enough for the members' side.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import KarmadProcess
from tests.support.keeper import keeper_code
from tests.support.syncthing import Node, start_karmad_node, start_plain_node, wait_until
from tests.support.teams import (
    CONVERGE_S,
    external_member,
    folders_dir,
    form_team,
    init,
    own_folder,
    team,
)

pytestmark = pytest.mark.syncthing


def _lists(node: Node, fid: str, device: str) -> bool:
    folder = node.rest.get(f"/rest/config/folders/{fid}")
    return device in {d["deviceID"] for d in folder["devices"]}


def _rejected(node: Node, fid: str, reason: str) -> bool:
    events: list[dict[str, Any]] = node.call("team.activity", {"limit": 500})["events"]
    return any(
        e["kind"] == "state.rejected"
        and e["detail"].get("folder") == fid
        and str(e["detail"].get("reason", "")).startswith(reason)
        for e in events
    )


def _roster(record: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    return record["name"], sorted((m["member_tag"], m["state"]) for m in record["members"])


def test_after_its_keeper_is_gone_a_team_still_refuses_unsigned_state(
    tmp_path: Path,
    nodes: list[Node],
    karmad_factory: Callable[..., KarmadProcess],
    anyio_backend: str,
) -> None:
    alice = start_karmad_node(tmp_path / "alice", "alice", backend=anyio_backend)
    nodes.append(alice)
    bob = external_member(tmp_path / "bob", karmad_factory, anyio_backend)
    nodes.append(bob)
    k = start_plain_node(tmp_path / "keeper", "keeper")
    nodes.append(k)
    init(alice, "alice")
    init(bob, "bob")
    team_id = form_team(alice, bob)
    fid = own_folder(alice, team_id)
    copy = folders_dir(bob) / fid / "state"

    alice.call("keeper.add", {"team": team_id, "code": keeper_code(k)})
    wait_until(lambda: _lists(bob, fid, k.device_id), CONVERGE_S, message="bob lists K")
    alice.call("keeper.remove", {"team": team_id})
    wait_until(
        lambda: (
            not _lists(bob, fid, k.device_id)
            and json.loads(copy.read_bytes().splitlines()[0]).get("keeper") is None
        ),
        CONVERGE_S,
        message="bob drops K and holds alice's file without it",
    )
    roster = team(bob, team_id)

    # Alice is away; what bob's copy of her folder now says is a roster nobody signed.
    assert alice.karmad is not None and bob.karmad is not None
    assert alice.karmad.stop() == 0
    assert bob.karmad.stop() == 0
    forged = json.loads(copy.read_bytes().splitlines()[0])
    forged["seq"] += 1000
    forged["team"]["name"] = "owned"
    copy.write_bytes(json.dumps(forged, separators=(",", ":")).encode() + b"\n")
    bob.karmad.start()
    try:
        wait_until(
            lambda: _rejected(bob, fid, "unsigned:"),
            CONVERGE_S,
            message="bob refuses the unsigned roster",
        )
    except AssertionError as exc:
        pytest.fail(f"{exc}\n{bob.karmad.log()[-4000:]}")
    assert _roster(team(bob, team_id)) == _roster(roster) == ("core", _roster(roster)[1])
