"""Where karmad's log lines go and what they look like: the journal, a rotated file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.daemon import REPO, Home, KarmadProcess, karmad_command, request


def start_with_stderr_file(
    home: Home, stderr_path: Path, env: dict[str, str], *args: str
) -> subprocess.Popen[bytes]:
    with stderr_path.open("wb") as out:
        return subprocess.Popen(
            karmad_command(*args), env=home.env(env), stdout=out, stderr=out, cwd=REPO
        )


def wait_answering(home: Home, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "karmad exited during start-up"
        try:
            request(home.socket, "daemon.hello", timeout=2)
        except OSError:
            time.sleep(0.05)
            continue
        return
    raise AssertionError("karmad did not answer")


def journal_stream_of(path: Path) -> str:
    st = path.stat()
    return f"{st.st_dev}:{st.st_ino}"


def test_journal_lines_carry_syslog_priorities(home: Home, tmp_path: Path) -> None:
    """systemd connects stderr to the journal and says so in $JOURNAL_STREAM."""
    err = tmp_path / "stderr"
    err.touch()
    proc = start_with_stderr_file(home, err, {"JOURNAL_STREAM": journal_stream_of(err)})
    try:
        wait_answering(home, proc)
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
    lines = err.read_text().splitlines()
    assert lines, "karmad logged nothing"
    assert all(line[:1] == "<" and line[2] == ">" for line in lines), lines
    assert any(line.startswith("<6>event='ready'") for line in lines), lines
    # No timestamp: the journal adds its own.
    assert not any("timestamp" in line for line in lines)


def test_journal_errors_are_priority_3(home: Home, tmp_path: Path) -> None:
    home.state.mkdir(parents=True)
    (home.state / "karmad.db").write_bytes(b"not a database, not at all" * 200)
    err = tmp_path / "stderr"
    err.touch()
    proc = start_with_stderr_file(home, err, {"JOURNAL_STREAM": journal_stream_of(err)})
    assert proc.wait(20) == 1
    lines = err.read_text().splitlines()
    assert any(line.startswith("<3>event='store_failed'") for line in lines), lines


def test_journal_stream_of_another_file_is_not_trusted(home: Home, tmp_path: Path) -> None:
    """A child that inherited $JOURNAL_STREAM but writes elsewhere must not use `<N>`."""
    err = tmp_path / "stderr"
    err.touch()
    other = tmp_path / "other"
    other.touch()
    proc = start_with_stderr_file(home, err, {"JOURNAL_STREAM": journal_stream_of(other)})
    try:
        wait_answering(home, proc)
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
    events = [json.loads(line) for line in err.read_text().splitlines()]
    assert any(e["event"] == "ready" for e in events)


def test_log_file_replaces_stderr(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str, tmp_path: Path
) -> None:
    log_dir = tmp_path / "logs"
    karmad = karmad_factory(
        anyio_backend,
        args=("--log-file", "--log-format", "auto"),
        env={"KARMAD_LOG_DIR": str(log_dir)},
    )
    status = karmad.call("daemon.status")
    assert status["paths"]["log_dir"] == str(log_dir)
    assert karmad.stop() == 0
    assert oct(log_dir.stat().st_mode & 0o777) == "0o700"
    events = [json.loads(line) for line in (log_dir / "karmad.log").read_text().splitlines()]
    assert [e["event"] for e in events if e["event"] in ("ready", "stopped")] == [
        "ready",
        "stopped",
    ]
    assert karmad.log() == "", "nothing goes to stderr when a log file is used"


def test_config_error_reaches_the_log_file(home: Home, tmp_path: Path) -> None:
    """Under launchd nobody reads stderr: a daemon that cannot start must say why in its file."""
    home.write_config("[daemon]\nlog_levle = 'debug'\n")
    log_dir = tmp_path / "logs"
    done = subprocess.run(
        karmad_command("--log-file"),
        env=home.env({"KARMAD_LOG_DIR": str(log_dir)}),
        capture_output=True,
        timeout=30,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 1
    assert b"log_levle" in done.stderr
    events = [json.loads(line) for line in (log_dir / "karmad.log").read_text().splitlines()]
    assert events[-1]["event"] == "invalid_config"
    assert events[-1]["level"] == "error"
    assert "log_levle" in events[-1]["error"]


def test_unwritable_log_file_is_a_clear_error(home: Home, tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    log_dir.mkdir(mode=0o700)
    (log_dir / "karmad.log").mkdir()  # a directory where the file should be
    done = subprocess.run(
        karmad_command("--log-file"),
        env=home.env({"KARMAD_LOG_DIR": str(log_dir)}),
        capture_output=True,
        timeout=30,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 1
    assert b"cannot open the log file" in done.stderr


ROTATE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from karmad import logs
    logs.configure("info", "auto", file=Path(sys.argv[1]), max_bytes=4096, backups=2)
    log = logs.get("karmad.test")
    for i in range(400):
        log.info("line", number=i, padding="x" * 40)
    """
)


def test_log_file_rotation_is_bounded(tmp_path: Path) -> None:
    log = tmp_path / "karmad.log"
    subprocess.run([sys.executable, "-c", ROTATE, str(log)], check=True, timeout=60, cwd=REPO)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["karmad.log", "karmad.log.1", "karmad.log.2"]
    for name in files:
        assert (tmp_path / name).stat().st_size <= 4096
    # The newest lines are in the live file, intact.
    last = json.loads(log.read_text().splitlines()[-1])
    assert last["number"] == 399
    assert os.path.getsize(tmp_path / "karmad.log.2") > 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[daemon]\nlog_max_bytes = 10\n", "daemon.log_max_bytes"),
        ("[daemon]\nlog_backups = 0\n", "daemon.log_backups"),
        ("[doctor]\nmin_free_mb = 900\nwarn_free_mb = 100\n", "doctor.warn_free_mb"),
        ("[doctor]\ncheck_timeout_s = 0\n", "doctor.check_timeout_s"),
    ],
)
def test_bad_limits_are_refused(home: Home, text: str, message: str) -> None:
    home.write_config(text)
    done = subprocess.run(
        karmad_command(), env=home.env(), capture_output=True, timeout=30, cwd=REPO, check=False
    )
    assert done.returncode == 1
    assert message.encode() in done.stderr


CHATTY = textwrap.dedent(
    """
    import logging
    from karmad import logs
    logs.configure("info", "json")
    for name in ("watchfiles.main", "httpx", "httpcore.connection"):
        logging.getLogger(name).info("chatter from %s", name)
        logging.getLogger(name).warning("warning from %s", name)
    logs.get("karmad.test").info("ours")
    """
)


def test_libraries_chatter_is_kept_out_at_info(tmp_path: Path) -> None:
    """A Claude Code write or a REST call must not become a journal line each."""
    done = subprocess.run(
        [sys.executable, "-c", CHATTY], capture_output=True, timeout=60, cwd=REPO, check=True
    )
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    events = [line["event"] for line in lines]
    assert "ours" in events
    assert not [e for e in events if e.startswith("chatter")]
    assert sum(e.startswith("warning from") for e in events) == 3
