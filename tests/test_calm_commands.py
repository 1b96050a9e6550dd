"""Naming projects and repeating commands, on one real node (karmad managing its own
Syncthing): the rule at the RPC level, the wording through karmactl. Each trap here was
met by a new user following the README."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from karmad import codes, deviceid
from karmad.sync.teams import new_team_id
from tests.support.daemon import RpcFailure, karmactl_command
from tests.support.syncthing import Cluster, Node

IDENTITY = "github.com/acme/app"


def ctl(node: Node, *args: str) -> subprocess.CompletedProcess[str]:
    assert node.karmad is not None
    env = node.karmad.home.env({"KARMAD_SOCKET": str(node.karmad.socket), "PAGER": "cat"})
    return subprocess.run(
        karmactl_command(*args),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def failure(node: Node, method: str, params: dict[str, object]) -> RpcFailure:
    with pytest.raises(RpcFailure) as info:
        node.call(method, params)
    return info.value


def pairing_code(tag: str) -> str:
    return codes.encode_member(codes.MemberCode(tag, deviceid.from_bytes(os.urandom(32))))


def test_names_and_repeats(syncthing_cluster: Callable[..., Cluster], tmp_path: Path) -> None:
    (a,) = syncthing_cluster(1, karmad=True).nodes
    renamed = ctl(a, "init", "--user", "alice", "--machine", "vm")
    assert renamed.stdout == "You are alice.vm.\n", renamed.stderr
    assert ctl(a, "init", "--user", "bob").stdout == "Renamed alice.vm → bob.vm.\n"
    assert ctl(a, "init", "--user", "alice").stdout == "Renamed bob.vm → alice.vm.\n"
    assert ctl(a, "init", "--user", "alice").stdout == "You are already alice.vm.\n"

    team_id = a.call("team.create", {"name": "core"})["team_id"]
    duplicate = failure(a, "team.create", {"name": "Core"})
    assert duplicate.reason == "already_exists"
    assert f"core ({team_id[:8]}, you lead it)" in str(duplicate)

    # One project, however it is named; a short form is never a new project.
    shared = ctl(a, "project", "share", "core", IDENTITY)
    assert shared.returncode == 0, shared.stderr
    assert "You have not accepted it yourself" in shared.stdout
    assert f"karmactl sub accept core {IDENTITY}" in shared.stdout
    again = a.call("project.share", {"team": team_id, "project": "acme/app"})
    assert (again["identity"], again["changed"]) == (IDENTITY, False)
    assert [p["identity"] for p in a.call("project.list")["projects"]] == [IDENTITY]
    unknown = failure(a, "project.share", {"team": team_id, "project": "acme/other"})
    assert unknown.reason == "not_found"

    # Two projects a short form could mean: refused, before any question, nothing unshared.
    a.call("project.share", {"team": team_id, "project": "gitlab.com/acme/app"})
    ambiguous = ctl(a, "project", "unshare", "core", "acme/app", "--yes")
    assert ambiguous.returncode == 1
    assert "github.com/acme/app, gitlab.com/acme/app" in ambiguous.stderr
    asked = ctl(a, "project", "unshare", "core", "gitlab.com/acme/app")
    assert "[y/N]" not in asked.stderr and "refusing without --yes" in asked.stderr
    assert {p["state"] for p in a.call("project.list")["projects"]} == {"shared"}
    assert ctl(a, "project", "unshare", "core", "gitlab.com/acme/app", "--yes").returncode == 0
    calm = ctl(a, "project", "unshare", "core", "gitlab.com/acme/app")
    assert calm.returncode == 0 and "already not shared" in calm.stdout
    # An unshared project is no longer offered.
    offered = a.call("subscription.list")["subscriptions"]
    assert [s["project_identity"] for s in offered] == [IDENTITY]
    preview = failure(a, "share.preview", {"project": "acme/app"})
    assert preview.reason == "conflict"

    # A folder without a git remote would publish its path: refused.
    plain = tmp_path / "notgit"
    plain.mkdir()
    refused = failure(a, "project.share", {"team": team_id, "project": str(plain)})
    assert refused.reason == "invalid_argument" and "git remote" in str(refused)

    # Accepting twice is calm; another direction says what to do instead.
    assert ctl(a, "sub", "accept", "core", "acme/app").returncode == 0
    twice = ctl(a, "sub", "accept", "core", "acme/app")
    assert (twice.returncode, twice.stdout) == (0, f"{IDENTITY} in core: already accepted (both)\n")
    other = ctl(a, "sub", "accept", "core", "acme/app", "-d", "send")
    assert other.returncode == 1
    assert f"karmactl sub direction core {IDENTITY} -d send" in other.stderr
    assert ctl(a, "sub", "pause", "core", "acme/app").returncode == 0
    paused = ctl(a, "sub", "pause", "core", "acme/app")
    assert (paused.returncode, paused.stdout) == (0, f"{IDENTITY} in core: already paused (both)\n")

    # Adding a member twice gives the invite again; the confirmation states consequences.
    code = pairing_code("carol.lab")
    first = ctl(a, "team", "add", "core", code, "--yes")
    assert first.stdout.startswith("Added carol.lab to core."), first.stderr
    second = ctl(a, "team", "add", "core", code)  # no terminal, no --yes: no question either
    assert second.returncode == 0 and second.stdout.startswith("Already added: carol.lab")
    removing = ctl(a, "team", "remove", "core", "carol.lab")
    assert "Permanent: that device cannot rejoin core" in removing.stderr
    assert ctl(a, "team", "remove", "core", "carol.lab", "--yes").returncode == 0
    gone = ctl(a, "team", "remove", "core", "carol.lab")
    assert gone.returncode == 0 and "already out of core" in gone.stdout
    back = failure(a, "team.addMember", {"team": team_id, "code": code})
    assert back.reason == "invalid_transition" and "create a new team" in str(back)

    # Joining a team this machine is in already: said, no question.
    leader = deviceid.from_bytes(os.urandom(32))
    invite = codes.encode_invite(
        codes.InviteCode(new_team_id(), "ops", "ghost.m", leader, ("tcp://127.0.0.1:1",))
    )
    assert ctl(a, "team", "join", invite, "--yes").returncode == 0
    rejoin = ctl(a, "team", "join", invite)
    assert (rejoin.returncode, rejoin.stdout) == (
        0,
        "You are already in ops (joining); nothing to do.\n",
    )
    assert a.call("team.join", {"invite": invite})["changed"] is False
    leave = ctl(a, "team", "leave", "ops")
    assert "Permanent: this device cannot rejoin ops" in leave.stderr
