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
