"""Continue a teammate's session: Claude Code writes it on Alice's machine, real Syncthing
carries it to Bob, Bob resumes it in his own checkout at another path, and the real
Claude Code continues it there. What Bob's Claude Code then appends is Bob's: it flows
back to Alice as Bob's session, and nothing Alice did is counted twice or as Bob's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from karmad.resume.plan import COPY_FIELD, derived_id
from tests.support.claude import run_claude, why_not
from tests.support.resume import (
    assert_continues,
    claude_session,
    indexed,
    resume,
    sender_traces,
    strings,
)
from tests.support.secrets import SecretFactory
from tests.support.sessions import SessionWriter, corpus_records, make_checkout
from tests.support.syncthing import Cluster, Node, wait_until
from tests.support.teams import CONVERGE_S, form_team, init, share_and_accept

pytestmark = pytest.mark.skipif(why_not() is not None, reason=str(why_not()))

REMOTE = "git@github.com:acme/app.git"
IDENTITY = "github.com/acme/app"
NEXT = "Pick it up from here, please."


def by_member(node: Node) -> dict[str, int]:
    rows = node.call("usage.summary", {"group_by": "member"})["rows"]
    return {row["key"]: row["tokens"]["requests"] for row in rows}


def test_a_teammates_session_continues_in_my_checkout(
    syncthing_cluster: Callable[..., Cluster],
) -> None:
    a, b = syncthing_cluster(2, karmad=True).nodes
    assert a.karmad is not None and b.karmad is not None
    alice_tag, bob_tag = init(a, "alice"), init(b, "bob")
    team_id = form_team(a, b)
    share_and_accept(a, team_id, IDENTITY, [(a, "both"), (b, "both")])

    # Alice works with Claude Code; her prompt holds a credential, which never leaves.
    alice_home = a.karmad.home.home
    alice_checkout = make_checkout(alice_home / "src", REMOTE)
    secret = next(s for s in SecretFactory(15).all() if s.where == "prompt")
    made = claude_session(alice_home, alice_checkout, f"Read the readme. {secret.text}")
    mine = indexed(a.karmad, made.session_id, "local")

    # Bob has his own clone somewhere else, where Claude Code has run before.
    bob_home = b.karmad.home.home
    bob_checkout = make_checkout(bob_home / "code" / "acme", REMOTE, "app-clone")
    bobs = SessionWriter(b.karmad.home.claude, bob_checkout)
    bobs.append(*corpus_records(6))
    bob_before = indexed(b.karmad, bobs.session_id, "local")["tokens"]["requests"]
    received = indexed(b.karmad, made.session_id, "remote")
    assert received["member"] == alice_tag

    answer = resume(b.karmad, made.session_id)  # the checkout is found from the project
    new_id = answer["session_id"]
    assert new_id == derived_id(made.session_id, bob_tag)
    assert (answer["checkout"], answer["member"]) == (str(bob_checkout), alice_tag)
    assert answer["command"] == f"cd {bob_checkout} && claude --resume {new_id}"
    again = resume(b.karmad, made.session_id)
    assert (again["outcome"], again["session_id"]) == ("already", new_id)

    run = run_claude(
        bob_home, bob_checkout, ["--resume", new_id, "-p", NEXT], script=[{"text": "On it."}]
    )
    assert run.exit_code == 0, run.stdout + run.stderr
    assert_continues(
        run,
        prompt="Read the readme.",
        directory=bob_checkout,
        forbidden=sender_traces(alice_checkout, alice_home),
        new_prompt=NEXT,
    )
    # Claude Code saw the placeholder, never the credential.
    sent = "\n".join(strings(run.last))
    assert "[REDACTED:" in sent
    assert not any(fragment in run.wire for fragment in secret.fragments)

    # Bob's continuation is Bob's, and reaches Alice as Bob's session; the part copied
    # from Alice's session counts once, as hers, on both machines.
    theirs = indexed(a.karmad, new_id, "remote")
    assert theirs["member"] == bob_tag
    # Its own view shows it whole: the copied requests and the new one.
    wait_until(
        lambda: (
            a.call("session.get", {"id": new_id})["tokens"]["requests"]
            == mine["tokens"]["requests"] + 1
        ),
        CONVERGE_S,
        message="Bob's continuation on Alice's machine",
    )
    expected = {alice_tag: mine["tokens"]["requests"], bob_tag: bob_before + 1}
    for node in (a, b):
        wait_until(
            lambda node=node: by_member(node) == expected,  # type: ignore[misc]
            CONVERGE_S,
            message=f"each request counted once, for whoever made it, on {node.name}",
        )
    lines = _lines(a, new_id)
    copied = [x for x in lines if COPY_FIELD in x]
    assert copied and all(x[COPY_FIELD] == made.session_id for x in copied)
    assert any(COPY_FIELD not in x and x.get("type") == "assistant" for x in lines)


def _lines(node: Node, session_id: str) -> list[dict[str, Any]]:
    detail = node.call("session.get", {"id": session_id})
    main = next(f["path"] for f in detail["files"] if f["kind"] == "main")
    return [json.loads(x) for x in Path(main).read_text().splitlines()]
