"""karmactl for people: tables that fit, usage errors, JSON errors, whose session it is,
titles and empty sessions, against a real daemon; the main tables as golden files at 80
and 120 columns (`KARMAD_UPDATE_GOLDEN=1` rewrites them after a deliberate change)."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from karmactl import render
from karmad.index.title import readable
from tests.support.daemon import KarmadProcess, karmactl_command
from tests.support.golden import check_golden
from tests.support.transcripts import CORPUS, assistant, copy_corpus, user, write

needs_corpus = pytest.mark.skipif(
    not (CORPUS / "projects").is_dir(), reason=f"no corpus at {CORPUS} (KARMAD_TEST_CORPUS)"
)


def run(
    daemon: KarmadProcess, *args: str, columns: int | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    extra = {"KARMAD_SOCKET": str(daemon.socket), "PAGER": "cat", "TZ": "UTC", **env}
    if columns is not None:
        extra["COLUMNS"] = str(columns)
    return subprocess.run(
        karmactl_command(*args),
        env=daemon.home.env(extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def idle(daemon: KarmadProcess, sessions: int) -> None:
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = daemon.call("index.status")
        if status["state"] == "idle" and status["lag_s"] == 0 and status["sessions"] >= sessions:
            return
        time.sleep(0.05)
    raise AssertionError(f"the index did not settle: {status}")


# --------------------------------------------------------------------------- render


def table_text(columns: int | None, monkeypatch: pytest.MonkeyPatch, **kwargs: object) -> str:
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", str(columns))
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    render.table(
        ["ID", "WHEN", "NOTE"],
        [("a1", "2026-01-01 10:00", "a long note that will not fit in a narrow terminal")],
        **kwargs,  # type: ignore[arg-type]
    )
    return out.getvalue()


def test_a_table_fits_its_width_headers_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    fit = render.Fit(shrink={2: 10}, drop=(1,))
    wide = table_text(None, monkeypatch, fit=fit)  # not a terminal: whole lines
    assert "a long note that will not fit in a narrow terminal" in wide
    cut = table_text(50, monkeypatch, fit=fit)
    assert max(map(len, cut.splitlines())) <= 50
    assert "WHEN" in cut and cut.splitlines()[1].endswith("…")
    dropped = table_text(28, monkeypatch, fit=fit)
    assert "WHEN" not in dropped and max(map(len, dropped.splitlines())) <= 28
    # A header wider than every value sizes its column.
    out = io.StringIO()
    render.table(["LONG HEADER", "X"], [("a", "b")], out)
    assert out.getvalue().splitlines()[1] == "a            b"


def test_wide_shows_every_column(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render, "WIDE", True)
    text = table_text(28, monkeypatch, fit=render.Fit(shrink={2: 10}, drop=(1,)))
    assert "WHEN" in text and "narrow terminal" in text


def test_colour_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert render.colour_enabled(Terminal())
    assert not render.colour_enabled(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not render.colour_enabled(Terminal())
    assert render.by_state("fail") == "\033[31mfail\033[0m"
    assert render.by_state("active") == "\033[32mactive\033[0m"
    assert render.by_state("whatever") == "whatever"


@pytest.mark.parametrize(
    ("title", "shown"),
    [
        ("<command-name>/clear</command-name>", "/clear"),
        ("<command-name>/clear</command-nam…", "/clear"),
        (
            "<command-message>review is running…</command-message> "
            "<command-name>/review</command-name> <command-args>12 fix</command-args>",
            "/review 12 fix",
        ),
        ("<system-reminder>be brief</system-reminder> fix the login", "be brief fix the login"),
        ("fix a < b in the parser", "fix a < b in the parser"),
        ("Fix the login bug", "Fix the login bug"),
    ],
)
def test_titles_never_show_claude_codes_tags(title: str, shown: str) -> None:
    assert readable(title) == shown


# --------------------------------------------------------------------------- usage errors


def test_usage_errors_exit_2_and_say_what_was_meant(home_daemon: KarmadProcess) -> None:
    for args in (
        ("sessions", "ls", "-n", "0"),
        ("sessions", "search", "x", "-n", "-3"),
        ("usage", "--tz", "Mars/Olympus"),
        ("events", "--lines", "-1"),
        ("team", "activity", "-n", "0"),
    ):
        out = run(home_daemon, *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
    typo = run(home_daemon, "sesions")
    assert typo.returncode == 2
    assert "maybe you meant 'sessions'?" in typo.stderr
    verb = run(home_daemon, "sessions", "lss")
    assert verb.returncode == 2 and "maybe you meant 'ls'?" in verb.stderr
    assert run(home_daemon, "usage", "--tz", "UTC").returncode == 0


def test_json_errors_are_json_on_stdout(home_daemon: KarmadProcess, tmp_path: Path) -> None:
    failed = run(home_daemon, "team", "show", "nosuch", "--json")
    assert failed.returncode == 1
    error = json.loads(failed.stdout)
    assert error["exit"] == 1
    assert error["error"]["reason"] == "not_found" and error["error"]["code"] == 1000
    assert "nosuch" in error["error"]["detail"]

    usage = run(home_daemon, "--json", "sessions", "ls", "-n", "0")
    assert usage.returncode == 2
    assert json.loads(usage.stdout)["error"]["reason"] == "usage"

    gone = run(home_daemon, "status", "--json", KARMAD_SOCKET=str(tmp_path / "absent.sock"))
    assert gone.returncode == 3
    assert json.loads(gone.stdout)["error"]["reason"] == "unreachable"

    refused = run(home_daemon, "share", "preview", "--json")
    assert refused.returncode == 2
    assert json.loads(refused.stdout)["error"]["reason"] == "usage"


# --------------------------------------------------------------------------- content


@pytest.fixture
def home_daemon(karmad_factory: Callable[..., KarmadProcess]) -> KarmadProcess:
    """A daemon whose Claude Code data holds a slash-command session, a summary-only
    session and an ordinary one; this member is alice.desk."""
    daemon = karmad_factory("asyncio", start=False)
    projects = daemon.home.claude / "projects" / "-tmp-project"
    write(
        projects / "11111111-1111-1111-1111-111111111111.jsonl",
        [
            user(
                "<command-message>clear</command-message>\n<command-name>/clear</command-name>\n"
                "<command-args></command-args>",
                session="11111111-1111-1111-1111-111111111111",
                ts="2026-01-10T09:00:00.000Z",
            ),
            user("and now fix the login", session="11111111-1111-1111-1111-111111111111"),
            assistant("m1", "r1", session="11111111-1111-1111-1111-111111111111", output=10),
        ],
    )
    (projects / "22222222-2222-2222-2222-222222222222.jsonl").write_text(
        json.dumps({"type": "summary", "summary": "Login fix", "leafUuid": "x"}) + "\n"
    )
    write(
        projects / "33333333-3333-3333-3333-333333333333.jsonl",
        [
            user("write the docs", session="33333333-3333-3333-3333-333333333333"),
            assistant("m2", "r2", session="33333333-3333-3333-3333-333333333333", input=5),
        ],
    )
    daemon.start()
    idle(daemon, 3)
    daemon.call("identity.init", {"user": "alice", "machine": "desk"})
    return daemon


def test_titles_empty_sessions_and_whose_they_are(home_daemon: KarmadProcess) -> None:
    listed = run(home_daemon, "sessions", "ls")
    assert listed.returncode == 0, listed.stderr
    assert "<command" not in listed.stdout
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert rows["11111111"].rstrip().endswith("/clear")
    assert "MEMBER" in listed.stdout.splitlines()[0]
    assert all(" alice " in row for row in rows.values())

    summary_only = run(home_daemon, "sessions", "show", "2222", "--info")
    assert summary_only.returncode == 0, summary_only.stderr
    assert "(only a summary: no messages)" in summary_only.stdout
    assert "(0ms)" not in summary_only.stdout and " → " not in summary_only.stdout

    # --member takes a user name or a member tag, and this member's own sessions are found.
    for who in ("alice", "alice.desk"):
        mine = json.loads(run(home_daemon, "sessions", "ls", "--member", who, "--json").stdout)
        assert len(mine) == 3 and {s["member"] for s in mine} == {"alice.desk"}, who
    assert json.loads(run(home_daemon, "sessions", "ls", "--member", "bob", "--json").stdout) == []

    by_session = run(home_daemon, "usage", "--by", "session")
    assert by_session.returncode == 0, by_session.stderr
    assert "33333333 write the docs" in by_session.stdout
    assert "33333333-3333" not in by_session.stdout


def test_an_error_is_said_once(home_daemon: KarmadProcess) -> None:
    out = run(home_daemon, "team", "show", "nosuch")
    assert out.returncode == 1
    assert out.stderr.count("no team") == 1
    assert not out.stderr.startswith("karmactl: Not found:")


# --------------------------------------------------------------------------- golden tables


@needs_corpus
def test_golden_tables(karmad_factory: Callable[..., KarmadProcess]) -> None:
    daemon = karmad_factory("asyncio", start=False)
    projects = daemon.home.claude / "projects"
    projects.rmdir()
    copy_corpus(projects)
    daemon.start()
    idle(daemon, 13)
    daemon.call("identity.init", {"user": "alice", "machine": "desk"})
    for columns in (80, 120):
        for name, args in (
            ("sessions-ls", ("sessions", "ls")),
            ("sessions-search", ("sessions", "search", "curry", "-n", "5")),
            ("usage-by-session", ("usage", "--by", "session")),
            ("usage-by-project", ("usage", "--by", "project")),
        ):
            out = run(daemon, *args, columns=columns)
            assert out.returncode == 0, (args, out.stderr)
            text = out.stdout
            lines = text.splitlines()
            assert all(len(line) <= columns for line in lines), (name, columns)
            check_golden(f"{name}-{columns}", text)
    wide = run(daemon, "sessions", "ls", "--wide", columns=80)
    assert "DURATION" in wide.stdout and max(map(len, wide.stdout.splitlines())) > 80
