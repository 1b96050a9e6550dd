"""`session.resume` without the real client: the rules it follows (paths, ids, where
Claude Code looks) and what the daemon and karmactl answer, errors included.
The real client's view is in tests/test_resume_claude.py."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from karmad.archive import layout
from karmad.resume import plan
from karmad.resume.claudecode import command, encoded, project_dir_name
from karmad.resume.rewrite import Places, Rewriter, Rule, rules
from karmad.resume.writer import Copy
from karmad.state_schema import STATE_SCHEMA
from karmad.store import Store
from tests.support.daemon import KarmadProcess
from tests.support.resume import archived, indexed, karmactl, resume, wait_for
from tests.support.sessions import SessionWriter, corpus_records, make_checkout

REMOTE = "git@github.com:acme/app.git"
IDENTITY = "github.com/acme/app"


# ---------------------------------------------------------------------- Claude Code's names


def test_project_directory_names_follow_claude_code() -> None:
    assert project_dir_name("/home/bob/work/app") == "-home-bob-work-app"
    # Every UTF-16 code unit that is not [A-Za-z0-9] is one dash: é one, an emoji two.
    assert project_dir_name("a b.c_d-é😀") == "a-b-c-d----"
    # Over 200 characters: cut, then the base-36 hash of the path; the name Claude Code
    # 2.1.328 gave this directory.
    long = "/work/scratch/claude/exp4/runs/H_long/" + "/".join(
        f"segment_{'x' * 20}é{i}" for i in range(9)
    )
    name = project_dir_name(long)
    assert len(name) == 207 and name.endswith("-segment-11f6lz")
    assert encoded(long).startswith(name[:200])


def test_the_command_quotes_the_directory() -> None:
    assert command("/w/my app", "abc") == "cd '/w/my app' && claude --resume abc"


# ---------------------------------------------------------------------- paths


ALICE = Places(
    roots=("/Users/alice/src/app/.claude/worktrees/fix", "/Users/alice/src/app"),
    home="/Users/alice",
    config="/Users/alice/.claude",
    project_dir="-Users-alice-src-app",
    session_id="old-id",
)
BOB = Places(
    roots=("/home/bob/work/app",),
    home="/home/bob",
    config="/home/bob/.claude",
    project_dir="-home-bob-work-app",
    session_id="new-id",
)


def rewrite(text: str, *, as_json: bool = False) -> str:
    return Rewriter(rules(ALICE, BOB), json=as_json)(text.encode()).decode()


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("/Users/alice/src/app", "/home/bob/work/app"),
        ("cat /Users/alice/src/app/main.py", "cat /home/bob/work/app/main.py"),
        ("in /Users/alice/src/app.", "in /home/bob/work/app."),
        ("'/Users/alice/src/app'", "'/home/bob/work/app'"),
        ("file:///Users/alice/src/app/x", "file:///home/bob/work/app/x"),
        ("/Users/alice/src/app/.claude/worktrees/fix/a.py", "/home/bob/work/app/a.py"),
        ("/Users/alice/notes.txt", "/home/bob/notes.txt"),
        ("/Users/alice", "/home/bob"),
        # Never inside another name.
        ("/Users/alice/src/app-old/x", "/home/bob/src/app-old/x"),
        ("/Users/alice/src/app.py", "/home/bob/src/app.py"),
        ("/Users/alicex/y", "/Users/alicex/y"),
        ("/mnt/Users/alice/src/app", "/mnt/Users/alice/src/app"),
        ("x/Users/alice", "x/Users/alice"),
        ("/Users/al", "/Users/al"),
        # Claude Code's places: memory, saved tool output (with the session's new id).
        (
            "/Users/alice/.claude/projects/-Users-alice-src-app/memory/",
            "/home/bob/.claude/projects/-home-bob-work-app/memory/",
        ),
        (
            "/Users/alice/.claude/projects/-Users-alice-src-app/old-id/tool-results/b.txt",
            "/home/bob/.claude/projects/-home-bob-work-app/new-id/tool-results/b.txt",
        ),
        ("/Users/alice/.claude/settings.json", "/home/bob/.claude/settings.json"),
        # Encoded names: temporary directories, other project directories.
        (
            "/tmp/claude-501/-Users-alice-src-app/tasks/a.output",
            "/tmp/claude-501/-home-bob-work-app/tasks/a.output",
        ),
        ("-Users-alice-src-app-backend", "-home-bob-work-app-backend"),
        ("-Users-alice-other", "-home-bob-other"),
        ("x-Users-alice-src-app", "x-Users-alice-src-app"),
        ("-Users-alicex", "-Users-alicex"),
    ],
)
def test_paths_move_on_path_boundaries_only(before: str, after: str) -> None:
    assert rewrite(before) == after


def test_paths_are_matched_as_json_writes_them() -> None:
    sender = Places(('/Users/al ice/"a"/app',), None, None, "-Users-al-ice--a--app", "s")
    local = Places(("/home/bob/é",), None, None, "-home-bob--", "s")
    line = json.dumps({"cwd": '/Users/al ice/"a"/app/x'}, ensure_ascii=False).encode()
    out = Rewriter(rules(sender, local), json=True)(line)
    assert json.loads(out) == {"cwd": "/home/bob/é/x"}


def test_a_replaced_text_is_not_replaced_again() -> None:
    chain = [Rule("path", "/a/one", "/a/two"), Rule("path", "/a/two", "/a/three")]
    assert Rewriter(chain)(b"/a/one /a/two") == b"/a/two /a/three"


def test_nothing_to_rewrite_when_nothing_moved() -> None:
    assert rules(BOB, BOB) == []
    assert Rewriter([]).empty


def test_copies_are_marked_and_renamed_line_by_line() -> None:
    copy = Copy(
        rewrite=Rewriter(rules(ALICE, BOB)),
        rewrite_text=Rewriter(rules(ALICE, BOB), json=False),
        old_id="old-id",
        new_id="new-id",
        copy_of="old-id",
    )
    data = (
        b'{"sessionId":"old-id","cwd":"/Users/alice/src/app"}\n'
        b"not json\n"
        b'{"sessionId": "old-id"}\n'
        b"{}\n"
    )
    out, dropped = copy.lines(data)
    assert dropped == 1
    assert [json.loads(x) for x in out.splitlines()] == [
        {"karmadCopyOf": "old-id", "sessionId": "new-id", "cwd": "/home/bob/work/app"},
        {"karmadCopyOf": "old-id", "sessionId": "new-id"},
        {"karmadCopyOf": "old-id"},
    ]


# ---------------------------------------------------------------------- ids and places


def test_another_members_session_gets_an_id_of_its_own_the_same_every_time() -> None:
    original = str(uuid.uuid4())
    mine = plan.derived_id(original, "bob.laptop")
    assert mine == plan.derived_id(original, "bob.laptop")
    assert mine != original and mine != plan.derived_id(original, "bob.desktop")
    assert uuid.UUID(mine).version == 5


def test_where_a_session_ran_maps_to_the_local_checkout() -> None:
    cwds = ["/Users/alice/src/app/backend", "/Users/alice/src/app/.worktrees/w1/x"]
    roots = plan.sender_roots(cwds, "/Users/alice/src/app")
    assert roots == ("/Users/alice/src/app/.worktrees/w1", "/Users/alice/src/app")
    assert plan.start_directory(cwds[0], roots, "/w/app") == "/w/app/backend"
    assert plan.start_directory("/elsewhere", roots, "/w/app") == "/w/app"
    assert plan.sender_checkout("/u/a/repo/.claude/worktrees/n/src") == "/u/a/repo"
    assert plan.sender_checkout("/u/a/repo/src", known="/u/a/repo") == "/u/a/repo"
    assert plan.worktree_root("/h/.claude-worktrees/repo/name/sub") == (
        "/h/.claude-worktrees/repo/name",
        None,
    )


def test_the_senders_config_and_home_come_from_what_the_session_names() -> None:
    head = (
        b'{"content":"memory at `/Users/alice/.config/claude/projects/-Users-alice-app/memory/`"}'
    )
    config = plan.sender_config(head, "-Users-alice-app")
    assert config == "/Users/alice/.config/claude"
    assert plan.sender_home(["/Users/alice/app"], config) == "/Users/alice"
    assert plan.sender_home(["/srv/x"], "/Users/carol/.claude") == "/Users/carol"
    assert plan.sender_home(["/srv/x"], None) is None
    assert plan.sender_config(b"nothing", "-x") is None


# ---------------------------------------------------------------------- the daemon


def _session(daemon: KarmadProcess, checkout: Path, records: int = 20) -> SessionWriter:
    writer = SessionWriter(daemon.home.claude, checkout)
    writer.append(*corpus_records(records))
    indexed(daemon, writer.session_id)
    return writer


def test_resuming_twice_is_idempotent_and_says_so(karmad: KarmadProcess) -> None:
    home = karmad.home.home
    old = make_checkout(home / "src", REMOTE)
    writer = _session(karmad, old)
    archived(karmad, writer.session_id)
    shutil.rmtree(writer.path.parent)
    new = make_checkout(home / "work", REMOTE)  # another clone, where no session ran yet
    first = resume(karmad, writer.session_id, "--checkout", str(new))
    assert (first["outcome"], first["session_id"]) == ("materialised", writer.session_id)
    written = Path(first["path"]).read_bytes()
    # karmad records what it wrote, and from whose session.
    state = Store.open(karmad.home.state / "karmad.db", STATE_SCHEMA, migrate=False)
    try:
        [made] = state.query("SELECT * FROM resumes")
    finally:
        state.close()
    assert (made["path"], made["session_id"], made["origin_session"]) == (
        first["path"],
        writer.session_id,
        writer.session_id,
    )
    assert (made["origin"], made["outcome"], made["files"]) == ("local", "materialised", 1)
    assert made["bytes"] == made["main_bytes"] == len(written) == first["bytes"]
    again = resume(karmad, writer.session_id, "--checkout", str(new))
    assert again["outcome"] == "already" and "nothing to do" in again["message"]
    assert (again["session_id"], again["path"]) == (first["session_id"], first["path"])
    assert Path(first["path"]).read_bytes() == written
    # Claude Code continued it meanwhile: still the same, still nothing to do.
    with Path(first["path"]).open("ab") as f:
        f.write(b'{"type":"user","sessionId":"' + writer.session_id.encode() + b'"}\n')
    third = karmactl(karmad, "sessions", "resume", writer.session_id, "--checkout", str(new))
    assert third.returncode == 0, third.stderr
    assert "continued since" in third.stdout
    assert f"cd {new} && claude --resume {writer.session_id}" in third.stdout


def test_an_own_session_in_place_needs_nothing(karmad: KarmadProcess) -> None:
    checkout = make_checkout(karmad.home.home / "src", REMOTE)
    writer = _session(karmad, checkout)
    answer = resume(karmad, writer.session_id)  # the checkout is found by itself
    assert answer["outcome"] == "present" and answer["path"] == str(writer.path)
    assert answer["checkout"] == str(checkout) and answer["bytes"] == 0


def test_a_deleted_own_session_goes_back_as_it_was(karmad: KarmadProcess) -> None:
    checkout = make_checkout(karmad.home.home / "src", REMOTE)
    writer = _session(karmad, checkout)
    agent = writer.subagent("a1", *corpus_records(3))
    archived(karmad, writer.session_id)
    before = writer.path.read_bytes()
    shutil.rmtree(writer.path.parent)
    answer = resume(karmad, writer.session_id)
    assert (answer["outcome"], answer["path"], answer["bytes"]) == (
        "restored",
        str(writer.path),
        0,
    )
    assert writer.path.read_bytes() == before and agent.exists()
    kept = karmad.home.state / "archive" / "projects" / writer.path.parent.name / writer.path.name
    side = list(layout.side_files(kept.parent.parent, kept.parent.name, writer.session_id))
    assert [rel for _, rel in side] == [f"subagents/{agent.name}"]
    assert os.path.samefile(side[0][0], agent)
    assert os.path.samefile(kept, writer.path), "linked back: the archive follows it again"
    assert resume(karmad, writer.session_id)["outcome"] == "already"


def test_a_second_copy_of_an_own_session_gets_its_own_id(
    karmad_factory: Callable[..., KarmadProcess],
) -> None:
    k = karmad_factory()
    home = k.home.home
    writer = _session(k, make_checkout(home / "src", REMOTE))
    clone = make_checkout(home / "clone", REMOTE)
    refused = karmactl(k, "sessions", "resume", writer.session_id, "--checkout", str(clone))
    assert refused.returncode == 1 and "[not_initialised]" in refused.stderr
    k.call("identity.init", {"user": "bob", "machine": "laptop"})
    answer = resume(k, writer.session_id, "--checkout", str(clone))
    expected = plan.derived_id(writer.session_id, "bob.laptop")
    assert answer["session_id"] == expected and answer["outcome"] == "materialised"
    lines = Path(answer["path"]).read_text().splitlines()
    assert all(json.loads(x)["sessionId"] == expected for x in lines if '"sessionId"' in x)
    assert writer.session_id not in Path(answer["path"]).read_text().replace(
        f'"karmadCopyOf":"{writer.session_id}"', ""
    )


def test_errors_say_what_is_wrong_and_change_nothing(
    karmad_factory: Callable[..., KarmadProcess],
) -> None:
    k = karmad_factory()
    home = k.home.home
    checkout = make_checkout(home / "src", REMOTE)
    writer = _session(k, checkout)
    k.call("identity.init", {"user": "bob", "machine": "laptop"})
    projects = sorted(p.name for p in (k.home.claude / "projects").iterdir())

    unknown = karmactl(k, "sessions", "resume", "0123abcd")
    assert unknown.returncode == 1 and "[not_found]" in unknown.stderr

    other = make_checkout(home / "other", "git@github.com:acme/other.git")
    wrong = karmactl(k, "sessions", "resume", writer.session_id, "--checkout", str(other))
    assert wrong.returncode == 1 and "[invalid_argument]" in wrong.stderr
    assert f"a checkout of github.com/acme/other, not of {IDENTITY}" in wrong.stderr

    plain = home / "plain"
    plain.mkdir()
    no_git = karmactl(k, "sessions", "resume", writer.session_id, "--checkout", str(plain))
    assert no_git.returncode == 1 and "not a checkout with a git remote" in no_git.stderr

    # The only known checkout went away: none is left to continue in.
    checkout.rename(home / "gone")
    lost = karmactl(k, "sessions", "resume", writer.session_id)
    assert lost.returncode == 1 and "[not_found]" in lost.stderr
    assert f"no local checkout of {IDENTITY} is known" in lost.stderr
    assert "--checkout" in lost.stderr

    # Something already where the transcript would go: never replaced.
    clone = make_checkout(home / "clone", REMOTE)
    target_dir = k.home.claude / "projects" / project_dir_name(str(clone))
    target = target_dir / f"{plan.derived_id(writer.session_id, 'bob.laptop')}.jsonl"
    target_dir.mkdir(parents=True)
    target.write_text("mine\n")
    exists = karmactl(k, "sessions", "resume", writer.session_id, "--checkout", str(clone))
    assert exists.returncode == 1 and "[already_exists]" in exists.stderr
    assert target.read_text() == "mine\n"
    assert sorted(p.name for p in (k.home.claude / "projects").iterdir()) == sorted(
        [*projects, target_dir.name]
    )
    assert not any(p.name.startswith(".") for p in target_dir.iterdir())


def test_a_session_without_a_remote_continues_only_where_it_ran(karmad: KarmadProcess) -> None:
    folder = karmad.home.home / "notes"
    folder.mkdir()
    writer = _session(karmad, folder)
    elsewhere = karmad.home.home / "elsewhere"
    elsewhere.mkdir()
    refused = karmactl(
        karmad, "sessions", "resume", writer.session_id, "--checkout", str(elsewhere)
    )
    assert refused.returncode == 1 and "can only continue in" in refused.stderr
    assert resume(karmad, writer.session_id, "--checkout", str(folder))["outcome"] == "present"


def test_a_resume_in_progress_is_joined(karmad: KarmadProcess) -> None:
    home = karmad.home.home
    writer = _session(karmad, make_checkout(home / "src", REMOTE), records=200)
    karmad.call("identity.init", {"user": "bob", "machine": "laptop"})
    clone = make_checkout(home / "clone", REMOTE)
    params = {"id": writer.session_id, "checkout": str(clone)}
    first = karmad.call("session.resume", params)
    second = karmad.call("session.resume", params)
    assert second["job"] == first["job"] or second["outcome"] == "already"
    done = wait_for(
        lambda: (
            (r := karmad.call("session.resumeResult", {"job": first["job"]}))["state"] != "running"
            and r
        ),
        what="the resume",
    )
    assert done["state"] == "done" and done["files"] == 1
