"""External mode: karmad attaches to a Syncthing it did not start, and leaves it alone."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from karmad.syncthing import proctree
from tests.support.daemon import Home, KarmadProcess, RpcFailure
from tests.support.syncthing import (
    Cluster,
    Node,
    launch_plain,
    start_plain_node,
    stop_plain,
    wait_started,
    wait_until,
)

pytestmark = pytest.mark.syncthing


@pytest.fixture
def plain_nodes() -> Iterator[list[Node]]:
    nodes: list[Node] = []
    try:
        yield nodes
    finally:
        for node in nodes:
            node.teardown()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def attached(karmad: KarmadProcess, timeout: float = 30) -> dict[str, Any]:
    def live() -> dict[str, Any] | None:
        status: dict[str, Any] = karmad.call("syncthing.status")
        return status if status["state"] == "running" and status["stream"]["live"] else None

    return wait_until(live, timeout, message="karmad attached to the external Syncthing")


def test_by_configured_address_and_key(
    tmp_path: Path,
    plain_nodes: list[Node],
    karmad_factory: Callable[..., KarmadProcess],
    anyio_backend: str,
) -> None:
    node = start_plain_node(tmp_path / "user", "user")
    plain_nodes.append(node)
    Cluster.add_folder(node, "users-photos", "sendreceive", [])
    Cluster.add_folder(node, "karma-team", "sendonly", [])
    config = node.syncthing_home / "config.xml"
    before = digest(config)
    assert node.endpoint is not None

    home = Home(tmp_path / "k").create()
    home.write_config(
        f'[syncthing]\nmode = "external"\naddress = "{node.endpoint}"\napi_key = "{node.api_key}"\n'
    )
    karmad = karmad_factory(anyio_backend, home=home)
    status = attached(karmad)
    assert (status["mode"], status["device_id"]) == ("external", node.device_id)
    assert status["api_address"] == str(node.endpoint)
    assert status["pid"] is None
    assert status["detail"].endswith("(syncthing.address)")
    # Only karmad's own folders are listed; the user's are not its business.
    assert [f["folder_id"] for f in karmad.call("folder.list")["folders"]] == ["karma-team"]

    pids = node.syncthing_pids()
    assert karmad.stop() == 0
    # Stopping karmad never stops (or rewrites) a Syncthing it does not own.
    assert all(proctree.alive(pid) for pid in pids)
    assert node.rest.get("/rest/system/ping") == {"ping": "pong"}
    assert digest(config) == before


@pytest.mark.parametrize("where", [".local/state/syncthing", ".config/syncthing"])
def test_discovered_from_a_default_home(
    tmp_path: Path,
    plain_nodes: list[Node],
    karmad_factory: Callable[..., KarmadProcess],
    anyio_backend: str,
    where: str,
) -> None:
    home = Home(tmp_path / "k").create()
    node = start_plain_node(
        tmp_path / "user", "user", syncthing_home=home.home / where, gui_socket=tmp_path / "u.sock"
    )
    plain_nodes.append(node)
    home.write_config('[syncthing]\nmode = "external"\n')
    karmad = karmad_factory(anyio_backend, home=home)
    status = attached(karmad)
    assert status["device_id"] == node.device_id
    assert status["home"] == str(home.home / where)
    assert str(home.home / where / "config.xml") in status["detail"]


def test_retries_stay_unreachable_with_the_reason(
    tmp_path: Path, karmad_factory: Callable[..., KarmadProcess], anyio_backend: str
) -> None:
    """Between retries the state keeps saying why the last attempt failed; it does not
    flip back to `connecting` at each one (what `karmactl doctor` would then show)."""
    home = Home(tmp_path / "k").create()
    home.write_config(
        "[syncthing]\n"
        'mode = "external"\n'
        f'address = "{tmp_path / "nobody-listens.sock"}"\napi_key = "{"k" * 32}"\n'
        "restart_delay_s = 0.05\nrestart_delay_max_s = 0.05\n"
    )
    karmad = karmad_factory(anyio_backend, home=home)
    wait_until(lambda: karmad.call("syncthing.status")["state"] == "unreachable", 20)

    time.sleep(0.5)  # ten retries or so
    states = set()
    for _ in range(100):
        status = karmad.call("syncthing.status")
        states.add(status["state"])
        assert "nobody-listens.sock" in status["detail"], status
    assert states == {"unreachable"}
    states_logged = [e["state"] for e in karmad.log_events() if e.get("event") == "syncthing_state"]
    first = states_logged.index("unreachable")
    assert "connecting" not in states_logged[first:], states_logged


def test_wrong_key_and_absence_are_reported_not_fixed(
    tmp_path: Path,
    plain_nodes: list[Node],
    karmad_factory: Callable[..., KarmadProcess],
    anyio_backend: str,
) -> None:
    node = start_plain_node(tmp_path / "user", "user")
    plain_nodes.append(node)
    assert node.endpoint is not None
    home = Home(tmp_path / "k").create()
    home.write_config(
        "[syncthing]\n"
        'mode = "external"\n'
        f'address = "{node.endpoint}"\napi_key = "wrong-key"\nrestart_delay_s = 0.2\n'
    )
    karmad = karmad_factory(anyio_backend, home=home)
    status = wait_until(
        lambda: (s := karmad.call("syncthing.status"))["state"] == "unreachable" and s, 20
    )
    assert "refused the API key" in status["detail"]
    with pytest.raises(RpcFailure) as info:
        karmad.call("device.list")
    assert info.value.reason == "syncthing_unavailable"
    karmad.stop()

    # With the right key karmad attaches; when that Syncthing goes away karmad waits for
    # it to come back and never starts one itself.
    home.write_config(
        "[syncthing]\n"
        'mode = "external"\n'
        f'address = "{node.endpoint}"\napi_key = "{node.api_key}"\nrestart_delay_s = 0.2\n'
    )
    karmad.start()
    first = attached(karmad)
    stop_plain(node)
    wait_until(lambda: karmad.call("syncthing.status")["state"] == "unreachable", 30)
    assert not node.syncthing_pids()
    launch_plain(node)
    wait_started(node)
    again = attached(karmad)
    assert again["stream"]["resyncs"] > first["stream"]["resyncs"]
    assert again["stream"]["last_resync_reason"] == "restarted"
