"""`karmactl doctor`: healthy, and each broken condition it claims to detect."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from karmad.bus import Bus
from karmad.checks.claude import cleanup_findings, data_dir_findings
from karmad.checks.syncthing import binary_findings
from karmad.doctor import Doctor, ok
from karmad.protocol import DoctorCheck
from tests.support.daemon import REPO, Home, KarmadProcess, karmactl_command
from tests.support.doctor import by_name, doctor, healthy_home, service_running
from tests.support.stubs import ServiceStubs


@pytest.fixture
def stubs(tmp_path: Path) -> Iterator[ServiceStubs]:
    s = ServiceStubs(tmp_path / "stubs")
    yield s
    s.cleanup()


def start(
    karmad_factory: Callable[..., KarmadProcess], home: Home, backend: str = "asyncio", **kw: Any
) -> KarmadProcess:
    return karmad_factory(backend, home=home, **kw)


# --------------------------------------------------------------------------- end to end


def test_healthy_daemon_passes_everything(
    karmad_factory: Callable[..., KarmadProcess],
    anyio_backend: str,
    home: Home,
    stubs: ServiceStubs,
) -> None:
    karmad = start(karmad_factory, healthy_home(home), anyio_backend)
    service_running(stubs, karmad.pid)
    code, report = doctor(home, stubs)
    assert code == 0, [c for c in report["checks"] if c["status"] != "pass"]
    assert report["ok"] is True
    checks = by_name(report)
    expected = {
        "daemon.reachable",
        "daemon.version",
        "socket.permissions",
        "service.installed",
        "store.integrity",
        "store.schema",
        "claude.data_dir",
        "claude.cleanup",
        "disk.state_dir",
        "syncthing.binary",
        "syncthing.reachable",
        "index.integrity",
        "index.schema",
        "index.state",
        "index.lag",
        "index.errors",
        "index.files",
        "sync.reconciler",
        "archive.coverage",
        "keeper.teams",
    }
    assert set(checks) == expected
    assert {c["status"] for c in checks.values()} == {"pass"}, checks
    assert (
        "Syncthing 1." in checks["syncthing.binary"]["message"]
        or "Syncthing 2." in (checks["syncthing.binary"]["message"])
    )


def test_human_output_has_a_line_per_check_and_the_fix(
    karmad_factory: Callable[..., KarmadProcess], home: Home, stubs: ServiceStubs
) -> None:
    home.write_config("[archive]\nenabled = false\n")  # Claude Code's cleanup loses data
    start(karmad_factory, home)
    done = subprocess.run(
        karmactl_command("doctor", "--manager", "systemd"),
        env=stubs.env(home.env()),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr  # warnings only
    lines = done.stdout.splitlines()
    assert any(line.startswith("WARN  claude.cleanup") for line in lines)
    assert any('fix: set "cleanupPeriodDays": 99999' in line for line in lines)
    assert any(line.startswith("PASS  store.integrity") for line in lines)


def test_daemon_down(home: Home, stubs: ServiceStubs, tmp_path: Path) -> None:
    code, report = doctor(home, stubs, socket_path=tmp_path / "nothing.sock")
    assert code == 3
    assert report["ok"] is False
    reachable = by_name(report)["daemon.reachable"]
    assert reachable["status"] == "fail"
    assert "no socket" in reachable["message"]
    assert "karmactl service install" in reachable["fix"]
    # The checks that do not need the daemon still ran.
    assert "service.installed" in by_name(report)


def test_service_installed_but_not_running(home: Home, stubs: ServiceStubs, tmp_path: Path) -> None:
    stubs.scenario(
        {
            "systemctl": [
                {
                    "match": ["show"],
                    "stdout": "LoadState=loaded\nActiveState=failed\nSubState=failed\nMainPID=0\n",
                }
            ]
        }
    )
    code, report = doctor(home, stubs, socket_path=tmp_path / "nothing.sock")
    assert code == 3
    service = by_name(report)["service.installed"]
    assert service["status"] == "fail"
    assert "not running (failed (failed))" in service["message"]


def test_wrong_socket_permissions(
    karmad_factory: Callable[..., KarmadProcess], home: Home, stubs: ServiceStubs
) -> None:
    karmad = start(karmad_factory, healthy_home(home))
    service_running(stubs, karmad.pid)
    karmad.socket.chmod(0o666)
    code, report = doctor(home, stubs)
    assert code == 1
    check = by_name(report)["socket.permissions"]
    assert check["status"] == "fail"
    assert "mode 0666, not 0600" in check["message"]
    karmad.socket.chmod(0o600)
    karmad.socket.parent.chmod(0o755)
    code, report = doctor(home, stubs)
    assert code == 1
    assert "mode 0755, not 0700" in by_name(report)["socket.permissions"]["message"]


def corrupt_store(path: Path) -> None:
    """Fill the meta table over several pages, then overwrite one of them with noise."""
    conn = sqlite3.connect(path)
    conn.executemany(
        "INSERT INTO meta(key, value) VALUES (?, ?)",
        [(f"k{i:05d}", "v" * 200) for i in range(400)],
    )
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    assert pages > 4
    with path.open("r+b") as f:
        f.seek(page_size * (pages // 2))
        f.write(os.urandom(page_size))


def test_corrupt_store(
    karmad_factory: Callable[..., KarmadProcess], home: Home, stubs: ServiceStubs
) -> None:
    karmad = start(karmad_factory, healthy_home(home))
    karmad.stop()
    corrupt_store(home.state / "karmad.db")
    karmad = start(karmad_factory, home)  # the damage is in a page start-up never reads
    service_running(stubs, karmad.pid)
    code, report = doctor(home, stubs)
    assert code == 1
    check = by_name(report)["store.integrity"]
    assert check["status"] == "fail"
    assert "karmad.db" in check["message"]
    assert ".recover" in check["fix"]


def test_store_from_a_newer_karmad(
    karmad_factory: Callable[..., KarmadProcess], home: Home, stubs: ServiceStubs
) -> None:
    karmad = start(karmad_factory, healthy_home(home))
    service_running(stubs, karmad.pid)
    conn = sqlite3.connect(home.state / "karmad.db")
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    code, report = doctor(home, stubs)
    assert code == 1
    check = by_name(report)["store.schema"]
    assert check["status"] == "fail"
    assert "schema version 99, newer than this karmad knows" in check["message"]


def test_low_disk_by_threshold(
    karmad_factory: Callable[..., KarmadProcess], home: Home, stubs: ServiceStubs
) -> None:
    healthy_home(home)
    home.write_config("[doctor]\nmin_free_mb = 1000000000\nwarn_free_mb = 1000000000\n")
    karmad = start(karmad_factory, home)
    service_running(stubs, karmad.pid)
    code, report = doctor(home, stubs)
    assert code == 1
    check = by_name(report)["disk.state_dir"]
    assert check["status"] == "fail"
    assert "below 1000000000 MiB" in check["message"]


def test_warn_disk_by_threshold(
    karmad_factory: Callable[..., KarmadProcess], home: Home, stubs: ServiceStubs
) -> None:
    healthy_home(home)
    home.write_config("[doctor]\nmin_free_mb = 0\nwarn_free_mb = 1000000000\n")
    karmad = start(karmad_factory, home)
    service_running(stubs, karmad.pid)
    code, report = doctor(home, stubs)
    assert code == 0
    assert by_name(report)["disk.state_dir"]["status"] == "warn"


def test_syncthing_missing_from_the_daemons_path(
    karmad_factory: Callable[..., KarmadProcess],
    home: Home,
    stubs: ServiceStubs,
    tmp_path: Path,
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    karmad = start(karmad_factory, healthy_home(home), env={"PATH": str(empty)})
    service_running(stubs, karmad.pid)
    code, report = doctor(home, stubs)
    assert code == 1
    check = by_name(report)["syncthing.binary"]
    assert check["status"] == "fail"
    assert str(empty) in check["message"]
    assert "apt install syncthing" in check["fix"]


def test_unreadable_claude_dir_through_the_daemon(
    karmad_factory: Callable[..., KarmadProcess],
    home: Home,
    stubs: ServiceStubs,
    tmp_path: Path,
) -> None:
    healthy_home(home)
    link = tmp_path / "dotclaude"
    link.symlink_to(tmp_path / "unmounted-disk" / ".claude")  # a disk that is not there
    karmad = start(karmad_factory, home, env={"CLAUDE_CONFIG_DIR": str(link)})
    service_running(stubs, karmad.pid)
    code, report = doctor(home, stubs)
    assert code == 1
    check = by_name(report)["claude.data_dir"]
    assert check["status"] == "fail"
    assert "does not exist" in check["message"]


def fake_daemon(path: Path, version: str, protocol: int) -> threading.Thread:
    """Something answering on karmad's socket as another karmad build would."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn, server:
            conn.recv(65536)
            result = {"protocol": protocol, "version": version, "capabilities": []}
            conn.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "result": result}).encode() + b"\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    ("version", "protocol", "status"), [("0.0.1", 1, "warn"), ("9.0.0", 2, "fail")]
)
def test_version_mismatch(
    home: Home, stubs: ServiceStubs, tmp_path: Path, version: str, protocol: int, status: str
) -> None:
    sock = tmp_path / "old.sock"
    thread = fake_daemon(sock, version, protocol)
    code, report = doctor(home, stubs, socket_path=sock)
    thread.join(10)
    check = by_name(report)["daemon.version"]
    assert check["status"] == status
    assert version in check["message"]
    assert "karmactl service restart" in check["fix"]
    # The stand-in closed the connection before doctor.run: reported, not a crash.
    assert by_name(report)["daemon.doctor"]["status"] == "fail"
    assert code == 1


# --------------------------------------------------------------------------- the checks


def test_cleanup_period(tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    [default] = cleanup_findings(settings)
    assert default.status == "warn"
    assert "30 days (by default)" in default.message
    assert '"cleanupPeriodDays": 99999' in default.fix
    settings.write_text('{"cleanupPeriodDays": 7, "model": "opus"}')
    assert cleanup_findings(settings)[0].status == "warn"
    assert "7 days" in cleanup_findings(settings)[0].message
    settings.write_text('{"cleanupPeriodDays": 0}')
    assert cleanup_findings(settings)[0].status == "fail"
    settings.write_text('{"cleanupPeriodDays": 99999}')
    assert cleanup_findings(settings)[0].status == "pass"
    settings.write_text('{"cleanupPeriodDays": "never"}')
    assert "not a number" in cleanup_findings(settings)[0].message
    settings.write_text('{"cleanupPeriodDays": 30,')
    broken = cleanup_findings(settings)[0]
    assert broken.status == "warn"
    assert "not valid JSON" in broken.message
    # With karmad's archive, what Claude Code deletes is kept anyway; nothing is fine.
    settings.write_text('{"cleanupPeriodDays": 7}')
    [archived] = cleanup_findings(settings, archived=True)
    assert archived.status == "pass" and "archive keeps them" in archived.message
    settings.write_text('{"cleanupPeriodDays": 0}')
    assert cleanup_findings(settings, archived=True)[0].status == "fail"


def test_claude_data_dir(tmp_path: Path) -> None:
    claude = tmp_path / ".claude"
    assert data_dir_findings(claude)[0].status == "warn"  # no Claude Code here at all
    claude.mkdir()
    assert "no projects/" in data_dir_findings(claude)[0].message
    (claude / "projects").write_text("a file where a directory belongs")
    assert data_dir_findings(claude)[0].status == "fail"
    (claude / "projects").unlink()
    (claude / "projects" / "-home-u-app").mkdir(parents=True)
    (claude / "projects" / "-home-u-lib").mkdir()
    healthy = data_dir_findings(claude)[0]
    assert healthy.status == "pass"
    assert "2 project directories" in healthy.message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads directories whatever their mode")
def test_claude_project_dir_without_permission(tmp_path: Path) -> None:
    claude = tmp_path / ".claude"
    locked = claude / "projects" / "-home-u-secret"
    locked.mkdir(parents=True)
    locked.chmod(0)
    try:
        check = data_dir_findings(claude)[0]
    finally:
        locked.chmod(0o700)
    assert check.status == "fail"
    assert "-home-u-secret" in check.message


def fake_syncthing(bin_dir: Path, output: str, code: int = 0) -> None:
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "syncthing"
    script.write_text(f"#!/bin/sh\necho '{output}'\nexit {code}\n")
    script.chmod(0o755)


@pytest.mark.anyio
async def test_syncthing_versions(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    [missing] = await binary_findings(str(tmp_path / "nowhere"))
    assert missing.status == "fail"
    fake_syncthing(bin_dir, 'syncthing v1.18.6 "Fermium Flea" (go1.17 linux-amd64)')
    [old] = await binary_findings(str(bin_dir))
    assert old.status == "fail"
    assert "1.18.6" in old.message
    fake_syncthing(bin_dir, 'syncthing v2.0.3 "Hafnium Hornet" (go1.24 linux-amd64)')
    [new] = await binary_findings(str(bin_dir))
    assert new.status == "pass"
    assert "2.0.3" in new.message
    fake_syncthing(bin_dir, "what version?")
    assert (await binary_findings(str(bin_dir)))[0].status == "warn"
    fake_syncthing(bin_dir, "broken", code=2)
    assert (await binary_findings(str(bin_dir)))[0].status == "fail"


@pytest.mark.anyio
async def test_registry_isolates_crashes_and_hangs() -> None:
    doctor = Doctor(timeout=0.3)

    async def fine() -> list[DoctorCheck]:
        return [ok("a.fine", "fine")]

    async def crashes() -> list[DoctorCheck]:
        raise RuntimeError("boom")

    async def hangs() -> list[DoctorCheck]:
        await anyio.sleep(30)
        return []

    def blocks() -> list[DoctorCheck]:
        return [ok("d.thread", "ran in a worker thread")]

    doctor.register("a", fine)
    doctor.register("b", crashes)
    doctor.register("c", hangs)
    doctor.register_blocking("d", blocks)
    with pytest.raises(KeyError):
        doctor.register("a", fine)
    with anyio.fail_after(10):
        report = await doctor.run()
    assert [(c.name, c.status) for c in report.checks] == [
        ("a.fine", "pass"),
        ("b", "fail"),
        ("c", "fail"),
        ("d.thread", "pass"),
    ]
    assert "boom" in report.checks[1].message
    assert "did not finish within 0.3s" in report.checks[2].message
    assert doctor.last is report


@pytest.mark.anyio
async def test_concurrent_requests_share_one_run() -> None:
    bus = Bus()
    finished = bus.subscribe(["doctor.finished"])
    doctor = Doctor(bus)
    started = anyio.Event()
    release = anyio.Event()

    async def slow() -> list[DoctorCheck]:
        started.set()
        await release.wait()
        return [ok("slow", "done")]

    doctor.register("slow", slow)
    async with anyio.create_task_group() as tg:
        await tg.start(doctor.serve)
        first = doctor.request_run()
        assert doctor.request_run() == first, "queued, not yet running: joined"
        await started.wait()
        assert doctor.request_run() == first, "running: joined"
        release.set()
        with anyio.fail_after(5):
            event = await finished.receive.receive()
        assert event.data == {"run": first, "pass": 1, "warn": 0, "fail": 0}
        assert doctor.last is not None
        assert doctor.last.run == first
        second = doctor.request_run()
        assert second == first + 1
        tg.cancel_scope.cancel()
    bus.unsubscribe(finished)
    finished.receive.close()
