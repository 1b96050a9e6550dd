"""The README's walkthrough as people see it through karmactl, on two real nodes: the
overview says what waits for whom, team views read plainly, refusals come once and
before any question, and every session says whose it is."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

from tests.support.daemon import karmactl_command
from tests.support.golden import check_golden
from tests.support.sessions import SessionWriter, corpus_records, make_checkout
from tests.support.syncthing import Cluster, Node, wait_until
from tests.support.teams import CONVERGE_S, form_team, init

REMOTE = "git@github.com:acme/app.git"
IDENTITY = "github.com/acme/app"


def ctl(node: Node, *args: str, columns: int | None = None) -> subprocess.CompletedProcess[str]:
    assert node.karmad is not None
    extra = {"KARMAD_SOCKET": str(node.karmad.socket), "TZ": "UTC", "PAGER": "cat"}
    if columns is not None:
        extra["COLUMNS"] = str(columns)
    env = node.karmad.home.env(extra)
    return subprocess.run(
        karmactl_command(*args),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_walkthrough_as_people_see_it(syncthing_cluster: Callable[..., Cluster]) -> None:
    a, b = syncthing_cluster(2, karmad=True).nodes
    init(a, "alice")
    init(b, "bob")

    # The hint under the pairing code can be copied as it is.
    paired = ctl(b, "pair", "code")
    assert paired.returncode == 0, paired.stderr
    code = paired.stdout.strip()
    assert f"karmactl team add TEAM {code}\n" in paired.stderr

    team_id = form_team(a, b)
    listed = ctl(b, "team", "ls")
    header, row = listed.stdout.splitlines()[:2]
    assert dict(zip(header.split(), row.split(), strict=False))["STATE"] == "active"
    shown = ctl(a, "team", "show", "core")
    assert "you are  the leader\n" in shown.stdout

    # Refusals are said once, and before any question.
    refused = ctl(b, "project", "share", "core", IDENTITY)
    assert refused.returncode == 1
    assert refused.stderr == "karmactl: only alice.n1 (the leader) can do this [not_leader]\n"
    leaving = ctl(a, "team", "leave", "core")
    assert leaving.returncode == 1
    assert "team dissolve core" in leaving.stderr and "--yes" not in leaving.stderr

    # The leader shares and forgets to accept: both overviews say what that means.
    a.call("project.share", {"team": team_id, "project": IDENTITY})
    mine = ctl(a, "status").stdout
    assert f"you shared {IDENTITY} with core but have not accepted it yourself" in mine
    assert f"karmactl sub accept core {IDENTITY}" in mine
    wait_until(
        lambda: "has not accepted it (offered)" in ctl(b, "status").stdout,
        CONVERGE_S,
        message="bob hears that alice has not accepted her own project",
    )
    theirs = ctl(b, "status").stdout
    assert f"core shares {IDENTITY}; you have not accepted or declined it" in theirs
    assert "alice.n1  online  (core)" in theirs
    overview = json.loads(ctl(b, "status", "--json").stdout)
    assert {item["kind"] for item in overview["attention"]} == {"offer", "sharer_not_accepted"}
    assert overview["teams"][0]["state"] == "active"

    # Once both accept, alice's session reaches bob, who can tell whose it is.
    for node in (a, b):
        assert ctl(node, "sub", "accept", "core", IDENTITY).returncode == 0
    assert a.karmad is not None
    writer = SessionWriter(a.karmad.home.claude, make_checkout(a.karmad.home.root / "src", REMOTE))
    writer.append(*corpus_records(6))
    wait_until(
        lambda: writer.session_id[:8] in ctl(b, "sessions", "ls").stdout,
        CONVERGE_S,
        message="alice's session in bob's list",
    )
    header, row = ctl(b, "sessions", "ls").stdout.splitlines()[:2]
    assert row[header.index("MEMBER") :].startswith("alice ")
    for who in ("alice", "alice.n1"):
        found = json.loads(ctl(b, "sessions", "ls", "--member", who, "--json").stdout)
        assert [s["id"] for s in found] == [writer.session_id], who
    assert json.loads(ctl(b, "sessions", "ls", "--member", "carol", "--json").stdout) == []
    settled = ctl(b, "status").stdout
    assert f"received  alice.n1: {writer.session_id[:8]}" in settled
    assert "waiting for you" not in settled

    # The team's tables, as golden files (the team id is random: masked, same width).
    for columns in (80, 120):
        for name, node, args in (
            ("team-show", a, ("team", "show", "core")),
            ("team-ls", b, ("team", "ls")),
        ):
            text = ctl(node, *args, columns=columns).stdout
            assert all(len(line) <= columns for line in text.splitlines()), (name, columns)
            text = text.replace(team_id, "x" * len(team_id)).replace(team_id[:8], "x" * 8)
            check_golden(f"{name}-{columns}", text)
