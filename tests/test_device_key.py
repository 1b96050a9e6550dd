"""The key this member signs with: Syncthing's device key, read from real Syncthing homes
and checked against the device ID the running Syncthing reports (docs/keeper.md, 2.3)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from karmad.health import Health
from karmad.syncthing import binary as binary_mod
from karmad.syncthing import home as home_mod
from karmad.syncthing.devicekey import DeviceKeys, KeySource
from karmad.trust.keys import load_device_key
from tests.support.daemon import Home, KarmadProcess, RpcFailure
from tests.support.syncthing import Node, start_karmad_node, start_plain_node, wait_until

pytestmark = pytest.mark.syncthing


def trust_state(karmad: KarmadProcess) -> dict[str, Any]:
    subsystems: dict[str, Any] = karmad.call("daemon.status")["subsystems"]
    return dict(subsystems["trust"])


def doctor_findings(karmad: KarmadProcess) -> dict[str, dict[str, Any]]:
    run = karmad.call("doctor.run")["run"]

    def finished() -> dict[str, Any] | None:
        try:
            report: dict[str, Any] = karmad.call("doctor.report")
        except RpcFailure:
            return None
        return report if report["run"] >= run else None

    report = wait_until(finished, 30, message="the doctor's findings")
    return {c["name"]: c for c in report["checks"]}


def key_of(syncthing_home: Path) -> str:
    return load_device_key(syncthing_home / home_mod.CERT, syncthing_home / home_mod.KEY).device_id


def signs_as(karmad: KarmadProcess, device_id: str) -> dict[str, Any]:
    def ok() -> dict[str, Any] | None:
        state = trust_state(karmad)
        return state if state["state"] == "ok" else None

    state = wait_until(ok, 30, message="karmad holds its device key")
    assert state["detail"].startswith(f"signs as {device_id[:7]} (ecdsa-p")
    return state


def problem(keys: DeviceKeys) -> str | None:
    """Read afresh each time (the attribute changes with every answer)."""
    return keys.problem


def prepared_home(root: Path) -> home_mod.PreparedHome:
    path = binary_mod.locate("")
    assert path is not None, "the test suite needs Syncthing (./dev test installs it)"
    return home_mod.prepare(
        binary_mod.probe(path),
        home_mod.HomeSettings(
            home=root, api_key_file=root / "api-key", gui_socket=root / "gui.sock"
        ),
    )


def test_the_key_is_cached_per_file_and_checked_against_each_reported_id(
    tmp_path: Path,
) -> None:
    a, b = prepared_home(tmp_path / "a"), prepared_home(tmp_path / "b")
    source = KeySource(a.home, a.device_id)
    health = Health()
    keys = DeviceKeys(lambda: source, health)

    first = keys.current()
    assert first is not None and first.device_id == a.device_id
    assert problem(keys) is None
    assert keys.current() is first  # nothing changed: nothing read again
    state = health.get("trust")
    assert state is not None and state.state == "ok"

    # Syncthing now says it is another device: the same files are not its key.
    source = KeySource(a.home, b.device_id)
    assert keys.current() is None
    assert "is not the home" in str(problem(keys))
    state = health.get("trust")
    assert state is not None and (state.state, state.detail) == ("degraded", problem(keys))

    # The files are replaced by that device's: read again, and believed.
    own_cert = (a.home / home_mod.CERT).read_bytes()
    for name in (home_mod.CERT, home_mod.KEY):
        (a.home / name).write_bytes((b.home / name).read_bytes())
    again = keys.current()
    assert again is not None and again.device_id == b.device_id

    # A certificate that is not the key's is refused, with the reason.
    (a.home / home_mod.CERT).write_bytes(own_cert)
    source = KeySource(a.home, a.device_id)
    assert keys.current() is None
    assert "does not belong" in str(problem(keys))

    source = KeySource(None, b.device_id, "no Syncthing home")
    assert keys.current() is None and problem(keys) == "no Syncthing home"


def test_managed_node_signs_with_the_key_of_its_syncthing(
    tmp_path: Path, nodes: list[Node], anyio_backend: str
) -> None:
    node = start_karmad_node(tmp_path / "m", "m", backend=anyio_backend)
    nodes.append(node)
    assert node.karmad is not None
    # The key in the managed home is the device Syncthing itself says it is.
    assert key_of(node.syncthing_home) == node.device_id
    assert node.rest.get("/rest/system/status")["myID"] == node.device_id
    signs_as(node.karmad, node.device_id)
    finding = doctor_findings(node.karmad)["trust.key"]
    assert finding["status"] == "pass"
    assert node.device_id[:7] in finding["message"]
    # Its own name, which Syncthing sends to every peer, is not the host name.
    own = node.rest.get(f"/rest/config/devices/{node.device_id}")
    assert own["name"] == "karmad"


def external_karmad(
    karmad_factory: Callable[..., KarmadProcess], root: Path, backend: str, config: str
) -> KarmadProcess:
    home = Home(root).create()
    home.write_config(f'[syncthing]\nmode = "external"\n{config}')
    return karmad_factory(backend, home=home)


def test_external_node_signs_with_the_key_of_the_discovered_home(
    tmp_path: Path,
    nodes: list[Node],
    karmad_factory: Callable[..., KarmadProcess],
    anyio_backend: str,
) -> None:
    node = start_plain_node(tmp_path / "user", "user")
    nodes.append(node)
    karmad = external_karmad(
        karmad_factory, tmp_path / "k", anyio_backend, f'home = "{node.syncthing_home}"\n'
    )
    assert key_of(node.syncthing_home) == node.device_id
    signs_as(karmad, node.device_id)
    assert doctor_findings(karmad)["trust.key"]["status"] == "pass"


def test_external_node_with_a_foreign_certificate_has_no_key(
    tmp_path: Path,
    nodes: list[Node],
    karmad_factory: Callable[..., KarmadProcess],
    anyio_backend: str,
) -> None:
    node = start_plain_node(tmp_path / "user", "user")
    nodes.append(node)
    # Another device's home: a real identity, but not the running Syncthing's.
    other = start_plain_node(tmp_path / "other", "other", wait=False)
    nodes.append(other)
    assert other.device_id != node.device_id
    karmad = external_karmad(
        karmad_factory,
        tmp_path / "k",
        anyio_backend,
        f'address = "{node.endpoint}"\napi_key = "{node.api_key}"\n'
        f'home = "{other.syncthing_home}"\n',
    )

    def refused() -> dict[str, Any] | None:
        state = trust_state(karmad)
        return state if "is not the home" in state["detail"] else None

    state = wait_until(refused, 30, message="karmad refuses the foreign certificate")
    assert state["state"] == "degraded"
    assert f"is device {other.device_id[:7]}" in state["detail"]
    assert f"Syncthing reports {node.device_id[:7]}" in state["detail"]
    finding = doctor_findings(karmad)["trust.key"]
    assert finding["status"] == "warn"
    assert finding["message"].startswith("this member cannot sign: the certificate in")
    assert "keeper" in finding["fix"]


def test_external_node_known_by_address_alone_has_no_key(
    tmp_path: Path,
    nodes: list[Node],
    karmad_factory: Callable[..., KarmadProcess],
    anyio_backend: str,
) -> None:
    node = start_plain_node(tmp_path / "user", "user")
    nodes.append(node)
    karmad = external_karmad(
        karmad_factory,
        tmp_path / "k",
        anyio_backend,
        f'address = "{node.endpoint}"\napi_key = "{node.api_key}"\n',
    )

    def refused() -> dict[str, Any] | None:
        state = trust_state(karmad)
        return state if "set syncthing.home" in state["detail"] else None

    assert wait_until(refused, 30, message="no key without a home")["state"] == "degraded"
    finding = doctor_findings(karmad)["trust.key"]
    assert finding["status"] == "warn"
    assert "does not know its home" in finding["message"]
