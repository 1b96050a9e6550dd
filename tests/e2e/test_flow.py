"""Sessions flow between two real karmad + Syncthing nodes: packaged, sent, received.

A session written on A (where Claude Code would write it) must show up on B — redacted,
complete and with the same figures — and only where the subscriptions say so.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from karmad.domain import project_key
from karmad.redact import Redactor
from karmad.syncthing import proctree
from tests.support.daemon import karmactl_command
from tests.support.sessions import SessionWriter, corpus_records, dump, make_checkout
from tests.support.syncthing import Cluster, Node, wait_started, wait_until
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


def received_file(a: Node, b: Node, team_id: str, writer: SessionWriter) -> Path:
    """Where `writer`'s transcript on `a` arrives in `b`'s inbox of `a`'s team folder."""
    assert a.karmad is not None
    rel = writer.path.relative_to(a.karmad.home.claude / "projects")
    return folders_dir(b) / own_folder(a, team_id) / "projects" / project_key(IDENTITY) / rel


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
    inbox_file = received_file(a, b, team_id, writer)

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

    # The team's view of the project on both sides.
    def flow(node: Node) -> dict[str, Any]:
        projects = node.call("sync.status")["projects"]
        return next(p for p in projects if p["identity"] == IDENTITY)

    wait_until(lambda: flow(a)["sent"][0]["completion"] == 100, CONVERGE_S)
    mine = flow(a)
    assert (mine["sessions_local"], mine["sessions_packaged"]) == (1, 1)
    assert mine["sent"][0]["member"] == "bob.n2"
    assert flow(b)["received"] == [{"member": "alice.n1", "sessions": 1}]
    by_member = b.call("usage.summary", {"group_by": "member"})["rows"]
    assert {row["key"] for row in by_member} == {"alice.n1"}

    # Todos, task lists and plans go only where the team opted in; file history and
    # debug logs never go.
    claude = a.karmad.home.claude
    (claude / "todos").mkdir()
    todo = claude / "todos" / f"{writer.session_id}-agent-{writer.session_id}.json"
    todo.write_text('[{"content": "ship it", "status": "pending"}]')
    (claude / "tasks" / writer.session_id).mkdir(parents=True)
    (claude / "tasks" / writer.session_id / "1.json").write_text('{"subject": "ship"}')
    (claude / "plans").mkdir()
    (claude / "plans" / "brave-new-plan.md").write_text("# Plan\n1. ship\n")
    (claude / "file-history" / writer.session_id).mkdir(parents=True)
    (claude / "file-history" / writer.session_id / "abc@v1").write_text("source code")
    (claude / "debug").mkdir()
    (claude / "debug" / f"{writer.session_id}.txt").write_text("env details")
    written += writer.append(dict(records[40], slug="brave-new-plan"))
    project_root = inbox_file.parent.parent
    time.sleep(1.5)
    assert not (project_root / "todos").exists() and not (project_root / "plans").exists()
    a.call("project.share", {"team": team_id, "project": IDENTITY, "todos": True, "plans": True})
    wait_until(
        lambda: (
            (project_root / "todos" / todo.name).exists()
            and (project_root / "tasks" / writer.session_id / "1.json").exists()
            and (project_root / "plans" / "brave-new-plan.md").exists()
        ),
        CONVERGE_S,
        message="opted-in extras arrive",
    )
    names = {p.name for p in folders_dir(b).rglob("*")}
    assert "abc@v1" not in names and f"{writer.session_id}.txt" not in names


def test_secrets_subagents_tool_results_and_a_receive_only_member(
    syncthing_cluster: Callable[..., Cluster],
) -> None:
    import random

    from tests.support.secrets import (
        SecretFactory,
        find_leaks,
        find_leaks_in_tree,
        plant_records,
    )

    a, b, team_id, checkout = setup(syncthing_cluster, ("both", "receive"))
    assert a.karmad is not None and b.karmad is not None
    records = list(corpus_records(40))
    secrets = SecretFactory(7).all()
    rng = random.Random(7)
    writer = SessionWriter(a.karmad.home.claude, checkout)
    writer.append(*records[:10])
    for secret in secrets:
        writer.append(*plant_records(records, secret, rng))
    writer.append(*records[10:20])
    agent = writer.subagent("a1b2c3", *records[20:30])
    planted_env = next(s for s in secrets if s.kind != "private-key")
    tool = writer.tool_result("toolu_01.txt", f"output with {planted_env.text}\n".encode())

    # Bob has a session of the same project too, but only receives: it must not leave.
    bob_checkout = make_checkout(b.karmad.home.root / "src", REMOTE)
    bob = SessionWriter(b.karmad.home.claude, bob_checkout)
    bob.append(*records[:5])

    key = project_key(IDENTITY)
    inbox = folders_dir(b) / own_folder(a, team_id) / "projects" / key
    rel = writer.path.parent.name
    wait_until(lambda: writer.session_id in remote_sessions(b), CONVERGE_S)
    main = inbox / rel / f"{writer.session_id}.jsonl"
    sent_lines = len(writer.path.read_bytes().splitlines())
    # Syncthing delivers the session's files in any order: the index may know the session
    # from its subagent before the main transcript is there, so wait for every file whole.
    wait_until(
        lambda: (
            (inbox / rel / writer.session_id / "subagents" / agent.name).exists()
            and (inbox / rel / writer.session_id / "tool-results" / tool.name).exists()
            and main.exists()
            and len(main.read_bytes().splitlines()) == sent_lines
        ),
        CONVERGE_S,
        message="the transcript, its subagent and its tool results arrive whole",
    )
    # Nothing secret left A: grep everything bob received, in every spelling.
    leaks = find_leaks_in_tree(folders_dir(b), secrets)
    assert not leaks, [str(x) for x in leaks[:5]]
    leaks = find_leaks_in_tree(folders_dir(a), secrets)
    assert not leaks, [str(x) for x in leaks[:5]]
    received = main.read_text()
    assert "[REDACTED:" in received

    # The manifest says what was sent and what was redacted, never the secrets.
    manifest = json.loads((inbox / "manifests" / f"{writer.session_id}.json").read_text())
    assert manifest["session_id"] == writer.session_id
    assert manifest["redaction"]["replacements"] >= len(secrets)
    main_entry = manifest["files"][f"{rel}/{writer.session_id}.jsonl"]
    assert main_entry["size"] == len(received.encode())
    # Listed as soon as any of its files is indexed; the counts as soon as the manifest
    # is there too (Syncthing delivers files in no particular order).
    detail = wait_until(
        lambda: (d := session(b, writer.session_id))["redactions"] and d,
        CONVERGE_S,
        message="the session and its manifest reach bob",
    )
    assert detail["redactions"] and sum(detail["redactions"].values()) >= len(secrets)
    assert session(a, writer.session_id, "local")["redactions"] == detail["redactions"]

    # The preview on alice names what goes where and what is replaced, not the secrets.
    job = a.call("share.preview", {"session": writer.session_id})["job"]
    result = wait_until(
        lambda: (r := a.call("share.previewResult", {"job": job}))["state"] == "done" and r,
        CONVERGE_S,
    )
    previewed = result["sessions"][0]
    assert previewed["destinations"] == ["core"]
    assert sum(previewed["redactions"].values()) == sum(detail["redactions"].values())
    assert any(line["paths"] for f in previewed["files"] for line in f["redacted_lines"])
    assert not find_leaks(json.dumps(result).encode(), secrets)
    cli = subprocess.run(
        karmactl_command("share", "preview", writer.session_id[:8]),
        env=a.karmad.home.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "sent to: core" in cli.stdout and "nothing was written" in cli.stdout
    assert not find_leaks(cli.stdout.encode(), secrets)

    # Receive-only: bob's session never left bob, alice never received anything.
    assert bob.session_id not in remote_sessions(a)
    assert not (folders_dir(b) / own_folder(b, team_id) / "projects").exists()
    assert not (folders_dir(a) / own_folder(b, team_id) / "projects").exists()


def test_pause_resume_refused_files_and_a_crash_while_packaging(
    syncthing_cluster: Callable[..., Cluster],
) -> None:
    a, b = syncthing_cluster(
        2, karmad=True, config="[index]\nmax_received_file_bytes = 2000000\n"
    ).nodes
    init(a, "alice")
    init(b, "bob")
    team_id = form_team(a, b)
    assert a.karmad is not None and b.karmad is not None
    checkout = make_checkout(a.karmad.home.root / "src", REMOTE)
    key = share_and_accept(a, team_id, IDENTITY, [(a, "both"), (b, "both")])
    records = list(corpus_records(200))
    writer = SessionWriter(a.karmad.home.claude, checkout)
    written = writer.append(*records[:10])
    rel = writer.path.relative_to(a.karmad.home.claude / "projects")
    outbox_file = folders_dir(a) / own_folder(a, team_id) / "projects" / key / rel
    inbox_file = received_file(a, b, team_id, writer)
    wait_until(
        lambda: inbox_file.exists() and inbox_file.read_bytes() == expected(written), CONVERGE_S
    )

    # Bob pauses: nothing more arrives (what arrived stays); resuming catches up.
    b.call("subscription.pause", {"team": team_id, "project": key})
    wait_until(
        lambda: (
            f"!/projects/{key}"
            not in str(b.rest.get("/rest/db/ignores", folder=own_folder(a, team_id))["ignore"])
        ),
        CONVERGE_S,
    )
    written += writer.append(*records[10:20])
    wait_until(
        lambda: outbox_file.read_bytes() == expected(written),
        CONVERGE_S,
        message="alice still packages",
    )
    time.sleep(2)
    assert inbox_file.read_bytes() == expected(written[:10])
    b.call("subscription.resume", {"team": team_id, "project": key})
    wait_until(
        lambda: inbox_file.read_bytes() == expected(written),
        CONVERGE_S,
        message="resume catches up",
    )

    # Alice pauses: packaging stops at once; resuming catches up too.
    a.call("subscription.pause", {"team": team_id, "project": key})
    wait_until(
        lambda: (
            not a.call("sync.status")["failures"]
            and key
            not in str(a.rest.get("/rest/db/ignores", folder=own_folder(b, team_id))["ignore"])
        ),
        CONVERGE_S,
    )
    time.sleep(0.5)
    before = outbox_file.read_bytes()
    written += writer.append(*records[20:25])
    time.sleep(2)
    assert outbox_file.read_bytes() == before
    a.call("subscription.resume", {"team": team_id, "project": key})
    wait_until(lambda: inbox_file.read_bytes() == expected(written), CONVERGE_S)

    # Files planted in alice's outbox by hand: refused on bob, recorded, others still flow.
    project_dir = outbox_file.parent
    bad = project_dir / f"{uuid.uuid4()}.jsonl"
    bad.write_bytes(b'{"type":"user"}\nthis is not json\n')
    big = project_dir / f"{uuid.uuid4()}.jsonl"
    line = dump({"type": "user", "sessionId": big.stem, "message": {"content": "x" * 1000}})
    big.write_bytes(line * 2500)  # 2.5 MB, over this test's 2 MB limit
    a.rest.post("/rest/db/scan", folder=own_folder(a, team_id))

    def refused() -> set[str]:
        events = b.call("team.activity", {"limit": 200})["events"]
        return {
            e["detail"].get("path", "").rsplit("/", 1)[-1]
            for e in events
            if e["kind"] == "session.rejected"
        }

    wait_until(lambda: {bad.name, big.name} <= refused(), CONVERGE_S, message="refused, recorded")
    status = b.call("index.status")
    reasons = {Path(r["path"]).name: r["reason"] for r in status["rejected"]}
    assert "JSON" in reasons[bad.name] and "larger than" in reasons[big.name]
    assert bad.stem not in remote_sessions(b) and big.stem not in remote_sessions(b)
    written += writer.append(*records[25:30])
    wait_until(
        lambda: inbox_file.read_bytes() == expected(written),
        CONVERGE_S,
        message="other sessions keep flowing",
    )

    # kill -9 alice's karmad while it packages a stream of appends; restart; converge.
    killed = False
    for i, record in enumerate(records[30:200]):
        written += writer.append(record)
        if i == 60:
            os.kill(a.karmad.pid, signal.SIGKILL)
            a.karmad.wait()
            killed = True
        time.sleep(0.01)
    assert killed
    a.karmad.start(wait=False)
    wait_started(a)
    want = expected(written)
    wait_until(
        lambda: outbox_file.read_bytes() == want,
        CONVERGE_S * 2,
        message="alice's outbox complete after the crash",
    )
    data = outbox_file.read_bytes()
    assert data.endswith(b"\n")
    lines = data.splitlines()
    assert len(lines) == len(set(lines)) or lines == want.splitlines()  # no duplicates
    wait_until(lambda: inbox_file.read_bytes() == want, CONVERGE_S, message="bob converges")


def test_a_hand_edit_in_an_inbox_is_undone(syncthing_cluster: Callable[..., Cluster]) -> None:
    """Receive-only is not read-only: an edited or deleted file in an inbox would stop the
    owner's newer versions from arriving. karmad never writes there, so it reverts."""
    a, b, team_id, checkout = setup(syncthing_cluster, ("both", "both"))
    assert a.karmad is not None
    records = list(corpus_records(30))
    writer = SessionWriter(a.karmad.home.claude, checkout)
    written = writer.append(*records[:10])
    inbox_file = received_file(a, b, team_id, writer)
    manifest = inbox_file.parent.parent / "manifests" / f"{writer.session_id}.json"
    wait_until(
        lambda: inbox_file.exists() and inbox_file.read_bytes() == expected(written), CONVERGE_S
    )
    wait_until(manifest.exists, CONVERGE_S)

    with inbox_file.open("ab") as f:
        f.write(b'{"type":"user","note":"edited by hand on bob"}\n')
    manifest.unlink()
    wait_until(
        lambda: (
            inbox_file.read_bytes() == expected(written)
            and manifest.exists()
            and not b.rest.get("/rest/db/status", folder=own_folder(a, team_id))[
                "receiveOnlyChangedFiles"
            ]
        ),
        CONVERGE_S,
        message="bob's inbox equals alice's folder again",
    )
    recent = b.call("events.recent", {"topics": ["sync.inbox.reverted"]})["events"]
    assert [e["data"]["folder"] for e in recent] == [own_folder(a, team_id)]

    written += writer.append(*records[10:20])
    wait_until(
        lambda: inbox_file.read_bytes() == expected(written),
        CONVERGE_S,
        message="alice's later lines still arrive",
    )


KILL_TRIALS = int(os.environ.get("KARMAD_KILL_TRIALS", "3"))
"""Raise it for a soak: `KARMAD_KILL_TRIALS=20 pytest tests/e2e/test_flow.py -k kill`."""
BACKLOG_MB = 24


def backlog(writer: SessionWriter, trial: int) -> list[bytes]:
    """Large lines, as a long tool output makes them: the catch-up append takes a while."""
    rng = random.Random(trial)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    records = []
    for n in range(BACKLOG_MB * 10):
        text = " ".join(rng.choice(words) for _ in range(16_000))  # ~100 KB
        records.append(
            {
                "type": "user",
                "sessionId": writer.session_id,
                "cwd": str(writer.checkout),
                "uuid": str(uuid.UUID(int=rng.getrandbits(128))),
                "message": {"role": "user", "content": f"{trial}.{n} {text}"},
            }
        )
    return writer.append(*records)


def test_a_kill_during_a_catch_up_append_never_sends_a_partial_line(
    syncthing_cluster: Callable[..., Cluster],
) -> None:
    """kill -9 of the sender's karmad in the middle of appending a backlog to an outbox:
    its Syncthing dies with it, the next karmad cuts the file back before Syncthing
    starts, and the teammate's copy never ends in the middle of a line."""
    a, b, team_id, checkout = setup(syncthing_cluster, ("both", "both"))
    assert a.karmad is not None
    writer = SessionWriter(a.karmad.home.claude, checkout)
    written = writer.append(*corpus_records(5))
    key = project_key(IDENTITY)
    rel = writer.path.relative_to(a.karmad.home.claude / "projects")
    outbox_file = folders_dir(a) / own_folder(a, team_id) / "projects" / key / rel
    inbox_file = received_file(a, b, team_id, writer)
    wait_until(
        lambda: inbox_file.exists() and inbox_file.read_bytes() == expected(written), CONVERGE_S
    )
    seen: list[int] = []

    def whole_lines() -> bytes:
        data = inbox_file.read_bytes()
        assert data.endswith(b"\n"), f"the receiver's copy ends mid-line at {len(data)}"
        seen.append(len(data))
        return data

    cut_mid_line = 0
    for trial in range(KILL_TRIALS):
        a.karmad.stop()
        recorded = outbox_file.stat().st_size
        written += backlog(writer, trial)
        a.karmad.start(wait=False)
        syncthing_home = a.syncthing_home
        # Kill as soon as the outbox grows: in the middle of the catch-up append.
        deadline = time.monotonic() + 120
        fd = os.open(outbox_file, os.O_RDONLY)
        try:
            while os.fstat(fd).st_size <= recorded:
                assert time.monotonic() < deadline, "the catch-up append never started"
            os.kill(a.karmad.pid, signal.SIGKILL)
        finally:
            os.close(fd)
        a.karmad.wait()
        mid_line = not outbox_file.read_bytes().endswith(b"\n")
        cut_mid_line += mid_line
        wait_until(
            lambda: not proctree.syncthings_of(syncthing_home),  # noqa: B023
            5,
            message="the killed karmad's Syncthing is gone",
        )
        # The window in which a surviving Syncthing would send what it found.
        until = time.monotonic() + 5
        while time.monotonic() < until:
            whole_lines()
            time.sleep(0.02)
        a.karmad.start(wait=False)
        wait_started(a)
        if mid_line:
            # Cut back before the new Syncthing could scan it, not when packaging gets there.
            events = [e.get("event") for e in a.karmad.log_events()]
            assert "outbox_cut_back" in events, events
            assert events.index("outbox_cut_back") < events.index("syncthing_started")
        want = expected(written)
        wait_until(
            lambda: whole_lines() == want,  # noqa: B023
            CONVERGE_S * 4,
            interval=0.02,
            message="bob converges, never seeing a partial line",
        )
    # The kill hit the middle of a line at least once; the pieces that were written
    # before it (whole lines) may also have been cut back.
    print(f"kill -9 trials: {KILL_TRIALS}, mid-line on disk: {cut_mid_line}, reads: {len(seen)}")
