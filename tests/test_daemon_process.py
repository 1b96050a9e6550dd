"""karmad as a process: start-up, single instance, signals, stale sockets, bad config."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Callable

import pytest

from tests.support.daemon import Home, KarmadProcess, karmad_command


def test_sigterm_and_sigint_stop_cleanly(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str
) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        daemon = karmad_factory(anyio_backend)
        assert daemon.socket.exists()
        daemon.signal(signum)
        assert daemon.wait() == 0
        assert not daemon.socket.exists(), "socket left behind"
        events = [e.get("event") for e in daemon.log_events()]
        assert "stopping" in events
        assert events[-1] == "stopped"


def test_daemon_shutdown_method(karmad: KarmadProcess) -> None:
    assert karmad.call("daemon.shutdown") == {"ok": True}
    assert karmad.wait() == 0
    assert not karmad.socket.exists()


def test_second_instance_is_refused(karmad: KarmadProcess) -> None:
    second = subprocess.run(
        karmad_command(),
        env=karmad.home.env(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert second.returncode == 1
    err = second.stderr.decode()
    assert "already running" in err
    assert f"pid {karmad.pid}" in err
    # The first one is untouched and still serving.
    assert karmad.call("daemon.hello")["protocol"] == 1


def test_second_instance_on_another_socket_same_state_is_refused(karmad: KarmadProcess) -> None:
    other_socket = karmad.home.root / "other.sock"
    second = subprocess.run(
        [*karmad_command(), "--socket", str(other_socket)],
        env=karmad.home.env(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert second.returncode == 1
    assert "already running" in second.stderr.decode()
    assert not other_socket.exists()


def test_stale_socket_from_crash_is_replaced(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str
) -> None:
    first = karmad_factory(anyio_backend)
    first.kill()  # SIGKILL: no cleanup at all
    assert first.socket.exists(), "a crashed daemon leaves its socket"
    with pytest.raises(ConnectionRefusedError), socket.socket(socket.AF_UNIX) as s:
        s.connect(str(first.socket))
    second = karmad_factory(anyio_backend, home=first.home)
    assert second.call("daemon.status")["pid"] == second.pid


def test_store_survives_restart_and_reports_schema(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str
) -> None:
    first = karmad_factory(anyio_backend)
    status = first.call("daemon.status")
    assert status["store"]["schema_version"] >= 1
    store_path = status["paths"]["store"]
    assert first.stop() == 0
    assert os.path.exists(store_path)
    second = karmad_factory(anyio_backend, home=first.home)
    again = second.call("daemon.status")
    assert again["store"] == status["store"]


def test_invalid_config_is_a_clear_error(home: Home) -> None:
    home.write_config("[rpc]\nmax_mesage_bytes = 10\n")
    result = subprocess.run(
        karmad_command(), env=home.env(), capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 1
    err = result.stderr.decode()
    assert "invalid configuration" in err
    assert "max_mesage_bytes" in err
    assert not home.socket.exists()


def test_usage_error_exit_status(home: Home) -> None:
    result = subprocess.run(
        [*karmad_command(), "--backend", "curio"],
        env=home.env(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2


def test_store_newer_than_daemon_is_refused(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str
) -> None:
    import sqlite3

    first = karmad_factory(anyio_backend)
    store_path = first.call("daemon.status")["paths"]["store"]
    first.stop()
    with sqlite3.connect(store_path) as conn:
        conn.execute("PRAGMA user_version = 999")
    second = karmad_factory(anyio_backend, home=first.home, start=False)
    second.start(wait=False)
    assert second.wait() == 1
    assert "newer than this karmad knows" in second.log()
    assert not second.socket.exists()


def test_refuses_a_socket_directory_owned_by_someone_else(home: Home) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to create a directory owned by another user")
    import pwd

    nobody = pwd.getpwnam("nobody")
    squatted = home.root / "squat"
    squatted.mkdir(mode=0o755)
    os.chown(squatted, nobody.pw_uid, nobody.pw_gid)
    result = subprocess.run(
        [*karmad_command(), "--socket", str(squatted / "karmad.sock")],
        env=home.env(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "owned by uid" in result.stderr.decode()


def _start_failure(home: Home, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [*karmad_command(), *args],
        env=home.env(env),
        capture_output=True,
        timeout=60,
        check=False,
    )
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("karmad: ")
    return lines[0]


def test_a_socket_path_too_long_is_one_line_naming_it(home: Home) -> None:
    deep = home.root / ("d" * 120)
    deep.mkdir(mode=0o700)
    line = _start_failure(home, "--socket", str(deep / "karmad.sock"))
    assert "AF_UNIX path too long" in line
    assert str(deep) in line
    assert "--socket" in line


def test_a_state_dir_that_cannot_exist_is_one_line(home: Home) -> None:
    blocker = home.root / "a-file"
    blocker.write_text("")
    line = _start_failure(home, "--state-dir", str(blocker / "state"))
    assert "cannot prepare directories" in line
    assert str(blocker / "state") in line


def test_a_broken_event_loop_package_is_one_line(home: Home) -> None:
    shadow = home.root / "shadow" / "trio"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("simulated breakage")\n')
    line = _start_failure(home, "--backend", "trio", env={"PYTHONPATH": str(shadow.parent)})
    assert "trio event loop cannot be imported (simulated breakage)" in line
    assert "--backend asyncio" in line


def test_a_store_that_is_not_a_database_is_one_line(home: Home) -> None:
    home.state.mkdir(parents=True, mode=0o700)
    (home.state / "karmad.db").write_bytes(b"this is not sqlite" * 100)
    line = _start_failure(home)
    assert "karmad.db" in line


def test_a_full_disk_at_start_is_one_line(
    home: Home, tmp_path_factory: pytest.TempPathFactory
) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    mount = tmp_path_factory.mktemp("full")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    try:
        (mount / "filler").write_bytes(b"\0" * 60_000)
        with pytest.raises(OSError):
            (mount / "more").write_bytes(b"\0" * 8_192)
        line = _start_failure(home, "--state-dir", str(mount / "state"))
        assert "free some disk space" in line or "disk" in line
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
