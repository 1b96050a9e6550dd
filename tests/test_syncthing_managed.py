"""Managed mode: real karmad processes supervising real Syncthing processes on loopback.

Each test runs karmad on asyncio and on trio (the `anyio_backend` parameter).
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from karmad.deviceid import parse as parse_device_id
from karmad.syncthing import proctree
from karmad.syncthing.configxml import ConfigXml
from tests.support.daemon import Home, KarmadProcess, RpcFailure, karmactl_command
from tests.support.syncthing import (
    Cluster,
    Node,
    Rest,
    RestError,
    attach_karmad_node,
    wait_until,
)

pytestmark = pytest.mark.syncthing

ClusterFactory = Callable[..., Cluster]


def rpc_error(node: Node, method: str, params: dict[str, Any] | None = None) -> RpcFailure:
    started = time.monotonic()
    with pytest.raises(RpcFailure) as info:
        node.call(method, params)
    # Answered from memory: never a wait on Syncthing.
    assert time.monotonic() - started < 2
    return info.value


def recent_topics(node: Node, prefix: str = "syncthing") -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = node.call("events.recent", {"topics": [prefix], "limit": 500})[
        "events"
    ]
    return events


def test_managed_start_on_a_fresh_home(
    syncthing_cluster: ClusterFactory, anyio_backend: str
) -> None:
    (node,) = syncthing_cluster(1, karmad=True, backend=anyio_backend)
    assert node.karmad is not None
    status = node.status()
    assert (status["mode"], status["state"], status["profile"]) == (
        "managed",
        "running",
        "loopback",
    )
    assert status["version"].startswith(("1.", "2."))
    assert parse_device_id(status["device_id"]) == status["device_id"]
    assert status["api_address"] == str(node.karmad.home.runtime / "karmad" / "syncthing.sock")
    (listen,) = status["listen_addresses"]
    assert listen.startswith("tcp://127.0.0.1:")
    assert [(lst["address"], lst["error"]) for lst in status["listeners"]] == [(listen, "")]
    assert status["stream"] == {**status["stream"], "live": True, "resyncs": 1}
    assert status["stream"]["last_resync_reason"] == "connected"
    assert proctree.is_syncthing_of(status["pid"], node.syncthing_home)
    subsystems = node.call("daemon.status")["subsystems"]
    assert subsystems["syncthing"]["state"] == "running"

    key_file = node.syncthing_home / "karmad-api-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert node.rest.get("/rest/system/status")["myID"] == status["device_id"]
    assert node.endpoint is not None
    stranger = Rest(node.endpoint, "not-the-key")
    with pytest.raises(RestError) as refused:
        stranger.get("/rest/system/status")
    stranger.close()
    assert refused.value.status == 403
    assert node.call("device.list") == {"devices": []}
    assert node.call("folder.list") == {"folders": []}
    assert node.call("pending.list") == {"devices": [], "folders": []}

    pids = node.syncthing_pids()
    assert len(pids) == 2, "the monitor and the real Syncthing"
    assert node.karmad.stop() == 0
    assert not [pid for pid in pids if proctree.alive(pid)], "Syncthing outlived karmad"


def test_identity_key_and_ports_persist_and_owned_settings_are_reapplied(
    syncthing_cluster: ClusterFactory, anyio_backend: str
) -> None:
    (node,) = syncthing_cluster(1, karmad=True, backend=anyio_backend)
    assert node.karmad is not None
    before = node.status()
    key = (node.syncthing_home / "karmad-api-key").read_text()
    assert node.karmad.stop() == 0

    config = node.syncthing_home / "config.xml"
    text = config.read_text()
    text = text.replace(
        "<relaysEnabled>false</relaysEnabled>", "<relaysEnabled>true</relaysEnabled>"
    )
    text = text.replace(key.strip(), "hand-edited-key")
    config.write_text(text)

    node.karmad.start(wait=True)
    after = attach_karmad_node(node)
    assert after["device_id"] == before["device_id"]
    assert after["listen_addresses"] == before["listen_addresses"]
    assert (node.syncthing_home / "karmad-api-key").read_text() == key
    xml = ConfigXml.load(config)
    assert xml.option("relaysEnabled") == "false"
    assert xml.gui().api_key == key.strip()
    assert node.rest.get("/rest/system/status")["myID"] == before["device_id"]


def _wait_restarted(node: Node, restarts: int, resyncs: int) -> dict[str, Any]:
    def recovered() -> dict[str, Any] | None:
        status = node.status()
        stream = status["stream"]
        if (
            status["state"] == "running"
            and status["restarts"] >= restarts
            and stream["live"]
            and stream["resyncs"] > resyncs
        ):
            return status
        return None

    return wait_until(recovered, 60, message=f"{node.name}: Syncthing restarted and resynced")


def test_kill_9_of_syncthing_is_restarted_and_resynced(
    syncthing_cluster: ClusterFactory, anyio_backend: str
) -> None:
    cluster = syncthing_cluster(2, karmad=True, backend=anyio_backend)
    a, b = cluster.nodes
    cluster.pair(a, b)
    cluster.share(a, [b], "karma-kill")
    wait_until(lambda: a.call("device.list")["devices"][0]["connected"], 15)

    for round_, victim in enumerate(("real", "monitor"), start=1):
        status = a.status()
        monitor = status["pid"]
        (real,) = proctree.children(monitor)
        os.kill(real if victim == "real" else monitor, signal.SIGKILL)
        after = _wait_restarted(a, round_, status["stream"]["resyncs"])
        assert after["stream"]["last_resync_reason"] == "restarted"
        assert after["pid"] != monitor
        # Nothing of the killed instance survives, the orphaned real process included.
        killed = (real, monitor)

        def all_gone(killed: tuple[int, int] = killed) -> bool:
            return not any(proctree.alive(pid) for pid in killed)

        wait_until(all_gone, 15, message="the killed instance is gone")
        assert len(a.syncthing_pids()) == 2
        # The view is whole again: the peer reconnects, the folder is known.
        wait_until(
            lambda: a.call("device.list")["devices"][0]["connected"], 30, message="reconnected"
        )
        assert [f["folder_id"] for f in a.call("folder.list")["folders"]] == ["karma-kill"]

    topics = [e["topic"] for e in recent_topics(a)]
    assert "syncthing.resynced" in topics
    downs = [e for e in recent_topics(a, "syncthing.stream") if e["data"]["live"] is False]
    assert len(downs) >= 2


def test_lost_events_are_detected_and_the_snapshot_rebuilt(
    syncthing_cluster: ClusterFactory, anyio_backend: str
) -> None:
    (node,) = syncthing_cluster(1, karmad=True, backend=anyio_backend)
    assert node.karmad is not None
    Cluster.add_folder(node, "karma-noise", "sendonly", [], watcher=False)
    Cluster.wait_idle(node, "karma-noise")
    resyncs = node.status()["stream"]["resyncs"]

    def latest() -> int:
        events = node.rest.get("/rest/events", since=0, limit=1, timeout=0)
        return int(events[-1]["id"])

    def noise(count: int) -> None:
        start = latest()
        while latest() < start + count:
            node.rest.post("/rest/db/scan", folder="karma-noise")

    node.karmad.signal(signal.SIGSTOP)
    try:
        noise(20)  # answers the long poll already in flight
        peer = "IPIEAN7-5CYUUEC-63LJ4E5-PQVJAN6-RUUIYWG-STZYP24-DWVZQA3-6HJVGQW"
        node.rest.put(
            f"/rest/config/devices/{peer}", {"deviceID": peer, "name": "added-while-away"}
        )
        Cluster.add_folder(node, "karma-missed", "sendonly", [], watcher=False)
        noise(1100)  # more than Syncthing's buffer: the changes above fall out of it
    finally:
        node.karmad.signal(signal.SIGCONT)

    def resynced() -> dict[str, Any] | None:
        stream = node.status()["stream"]
        return stream if stream["resyncs"] > resyncs else None

    stream = wait_until(resynced, 30, message="gap detected")
    assert stream["last_resync_reason"] == "gap"
    assert [d["name"] for d in node.call("device.list")["devices"]] == ["added-while-away"]
    folders = {f["folder_id"] for f in node.call("folder.list")["folders"]}
    assert folders == {"karma-noise", "karma-missed"}
    gap = [e for e in recent_topics(node, "syncthing.resynced") if e["data"]["reason"] == "gap"]
    assert gap


def test_unanswering_syncthing_is_reported_then_restarted(
    syncthing_cluster: ClusterFactory, anyio_backend: str
) -> None:
    # Short timeouts so the watchdog acts within the test's patience.
    (node,) = syncthing_cluster(
        1,
        karmad=True,
        backend=anyio_backend,
        syncthing="request_timeout_s = 3\nconnect_timeout_s = 2\n"
        "start_timeout_s = 6\nstop_timeout_s = 2",
    )
    status = node.status()
    frozen = node.syncthing_pids()
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(
            lambda: not node.status()["stream"]["live"], 30, message="stream noticed the hang"
        )
        for method in ("device.list", "folder.list", "pending.list"):
            assert rpc_error(node, method).reason == "syncthing_unavailable"
        assert rpc_error(node, "syncthing.rescan").reason == "syncthing_unavailable"
        after = _wait_restarted(node, 1, status["stream"]["resyncs"])
        assert "stopped answering" in " ".join(
            e["data"].get("detail", "") for e in recent_topics(node, "daemon.subsystem")
        )
        assert after["pid"] != status["pid"]
        wait_until(lambda: not any(proctree.alive(pid) for pid in frozen), 15)
    finally:
        for pid in frozen:
            if proctree.alive(pid):
                os.kill(pid, signal.SIGCONT)
    assert node.call("device.list") == {"devices": []}


def test_a_killed_karmad_leaves_no_syncthing_behind(
    syncthing_cluster: ClusterFactory, anyio_backend: str
) -> None:
    """SIGKILL gives karmad no chance to stop its children: its guard does, at once."""
    (node,) = syncthing_cluster(1, karmad=True, backend=anyio_backend)
    assert node.karmad is not None
    device = node.status()["device_id"]
    orphans = node.syncthing_pids()
    assert len(orphans) == 2  # the monitor and the Syncthing it forked
    node.karmad.kill()
    wait_until(
        lambda: not any(proctree.alive(pid) for pid in orphans),
        5,
        message="Syncthing gone with its karmad",
    )
    assert proctree.syncthings_of(node.syncthing_home) == []
    node.karmad.start()
    status = attach_karmad_node(node)
    assert status["device_id"] == device
    assert "stopped_leftover_syncthing" not in node.karmad.log()


def test_a_karmad_killed_while_syncthing_starts_leaves_none_behind(
    syncthing_cluster: ClusterFactory, anyio_backend: str
) -> None:
    """Killed before it knew the pid of the Syncthing the monitor forks: the guard finds
    every process serving karmad's home by its command line."""
    (node,) = syncthing_cluster(1, karmad=True, backend=anyio_backend)
    assert node.karmad is not None
    home = node.syncthing_home
    for _ in range(3):
        node.karmad.stop()
        assert proctree.syncthings_of(home) == []
        node.karmad.start(wait=False)
        wait_until(lambda: proctree.syncthings_of(home), 60, interval=0.005)
        node.karmad.kill()
        wait_until(
            lambda: not proctree.syncthings_of(home), 5, message="Syncthing gone with karmad"
        )
        node.karmad.start()
        attach_karmad_node(node)


def test_a_stopped_karmad_leaves_no_guard_behind(
    syncthing_cluster: ClusterFactory, anyio_backend: str
) -> None:
    (node,) = syncthing_cluster(1, karmad=True, backend=anyio_backend)
    assert node.karmad is not None
    guards = [
        p.pid
        for p in proctree.table()
        if "karmad.syncthing.guard" in proctree.command_line(p.pid)
        and str(node.syncthing_home) in proctree.command_line(p.pid)
    ]
    assert len(guards) == 1
    assert node.karmad.stop() == 0
    assert not proctree.alive(guards[0])


def test_a_removed_binary_is_reported_as_not_installed(
    syncthing_cluster: ClusterFactory, anyio_backend: str, tmp_path: Path
) -> None:
    installed = shutil.which("syncthing")
    assert installed is not None
    copy = tmp_path / "bin" / "syncthing"
    copy.parent.mkdir()
    shutil.copy2(installed, copy)
    (node,) = syncthing_cluster(
        1, karmad=True, backend=anyio_backend, syncthing=f'binary = "{copy}"'
    )
    assert node.status()["binary"] == str(copy)
    copy.unlink()  # uninstalled while running: nothing changes until it has to start again
    os.kill(node.status()["pid"], signal.SIGKILL)
    status = wait_until(
        lambda: (s := node.status())["state"] == "not-installed" and s, 30, message="noticed"
    )
    assert "apt-get install syncthing" in status["detail"]
    assert not node.syncthing_pids()


def _karmad_without_syncthing(
    karmad_factory: Callable[..., KarmadProcess], backend: str, tmp_path: Path, config: str
) -> KarmadProcess:
    home = Home(tmp_path / "nosync").create()
    home.write_config(config)
    empty = tmp_path / "empty-path"
    empty.mkdir()
    return karmad_factory(backend, home=home, env={"PATH": str(empty)})


def _settled_status(karmad: KarmadProcess) -> dict[str, Any]:
    """The socket answers before the Syncthing service has looked for its binary."""
    status: dict[str, Any] = wait_until(
        lambda: (s := karmad.call("syncthing.status"))["state"] != "starting" and s,
        15,
        message="the Syncthing service settled",
    )
    return status


def test_without_a_binary_karmad_runs_and_says_how_to_install(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str, tmp_path: Path
) -> None:
    karmad = _karmad_without_syncthing(
        karmad_factory, anyio_backend, tmp_path, '[syncthing]\nmode = "managed"\n'
    )
    status = _settled_status(karmad)
    assert status["state"] == "not-installed"
    assert "apt-get install syncthing" in status["detail"]
    assert status["stream"]["live"] is False
    assert karmad.call("daemon.status")["subsystems"]["syncthing"]["state"] == "not-installed"
    for method in ("device.list", "folder.list", "pending.list", "syncthing.rescan"):
        with pytest.raises(RpcFailure) as info:
            karmad.call(method)
        assert info.value.reason == "syncthing_not_installed"
    env = karmad.home.env({"KARMAD_SOCKET": str(karmad.socket)})
    shown = subprocess.run(
        karmactl_command("syncthing", "status"),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0
    assert "not-installed" in shown.stdout
    refused = subprocess.run(
        karmactl_command("devices"), env=env, capture_output=True, text=True, check=False
    )
    assert refused.returncode == 1
    assert "syncthing_not_installed" in refused.stderr


def test_mode_off(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str, tmp_path: Path
) -> None:
    karmad = _karmad_without_syncthing(
        karmad_factory, anyio_backend, tmp_path, '[syncthing]\nmode = "off"\n'
    )
    status = _settled_status(karmad)
    assert (status["mode"], status["state"]) == ("off", "off")
    with pytest.raises(RpcFailure) as info:
        karmad.call("folder.list")
    assert info.value.reason == "syncthing_unavailable"
    assert "mode is off" in info.value.error["data"]["detail"]
