"""Sessions flow between two real karmad + Syncthing nodes: packaged, sent, received.

A session written on A (where Claude Code would write it) must show up on B — redacted,
complete and with the same figures — and only where the subscriptions say so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from karmad.domain import project_key
from karmad.redact import Redactor
from tests.support.sessions import SessionWriter, corpus_records, make_checkout
from tests.support.syncthing import Cluster, Node, wait_until
from tests.support.teams import (
    CONVERGE_S,
    folders_dir,
    form_team,
    init,
    own_folder,
    share_and_accept,
)

REMOTE = "git@github.com:acme/app.git"
IDENTITY = "github.com/acme/app"


def remote_sessions(node: Node) -> dict[str, dict[str, Any]]:
    listed = node.call("session.list", {"origin": "remote", "limit": 500})["sessions"]
    return {s["id"]: s for s in listed}


def session(node: Node, session_id: str, origin: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"id": session_id}
    if origin:
        params["origin"] = origin
    result: dict[str, Any] = node.call("session.get", params)
    return result


def received_file(b: Node, team_id: str, a_folder: str, rel: Path) -> Path:
    return folders_dir(b) / a_folder / "projects" / project_key(IDENTITY) / rel


def expected(lines: list[bytes]) -> bytes:
    return Redactor().redact_chunk(b"".join(lines)).data


def setup(
    syncthing_cluster: Callable[..., Cluster], directions: tuple[str, str]
) -> tuple[Node, Node, str, Path]:
    a, b = syncthing_cluster(2, karmad=True).nodes
    init(a, "alice")
    init(b, "bob")
    team_id = form_team(a, b)
    assert a.karmad is not None
    checkout = make_checkout(a.karmad.home.root / "src", REMOTE)
    share_and_accept(a, team_id, IDENTITY, [(a, directions[0]), (b, directions[1])])
    return a, b, team_id, checkout


def test_a_session_flows_line_by_line(syncthing_cluster: Callable[..., Cluster]) -> None:
    a, b, team_id, checkout = setup(syncthing_cluster, ("both", "both"))
    assert a.karmad is not None
    records = list(corpus_records(60))
    writer = SessionWriter(a.karmad.home.claude, checkout)
    written = writer.append(*records[:20])
    rel = writer.path.relative_to(a.karmad.home.claude / "projects")
    inbox_file = received_file(b, team_id, own_folder(a, team_id), rel)

    wait_until(
        lambda: writer.session_id in remote_sessions(b),
        CONVERGE_S,
        message="the session reaches bob's index",
    )
    wait_until(
        lambda: inbox_file.exists() and inbox_file.read_bytes() == expected(written),
        CONVERGE_S,
        message="identical lines after redaction",
    )

    # Line by line, as Claude Code writes: every line arrives, in order, once.
    for record in records[20:40]:
        written += writer.append(record)
        want = expected(written)
        wait_until(
            lambda want=want: inbox_file.read_bytes() == want,  # type: ignore[misc]
            CONVERGE_S,
            message="an appended line arrives",
        )

    # Same figures on both sides once the index caught up.
    def same_figures() -> bool:
        mine = session(a, writer.session_id, "local")
        theirs = session(b, writer.session_id)
        keys = ("tokens", "user_prompts", "models", "by_model")
        return all(mine.get(k) == theirs.get(k) for k in keys) and theirs["origin"] != "local"

    wait_until(same_figures, CONVERGE_S, message="identical aggregates")
    theirs = session(b, writer.session_id)
    assert theirs["member"] == "alice.n1"
    assert theirs["project"] == IDENTITY
