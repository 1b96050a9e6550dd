"""karmad's REST client against a real Syncthing on loopback (asyncio and trio)."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from karmad import codec
from karmad.syncthing.addresses import parse_endpoint
from karmad.syncthing.client import SyncthingClient
from karmad.syncthing.errors import AuthFailed, Rejected, Unreachable
from karmad.syncthing.models import (
    ConfigView,
    DeviceConfig,
    DevicePatch,
    FolderConfig,
    FolderDevice,
    FolderPatch,
)
from tests.support.syncthing import Node, start_plain_node

pytestmark = [pytest.mark.anyio, pytest.mark.syncthing]

PEER = "IPIEAN7-5CYUUEC-63LJ4E5-PQVJAN6-RUUIYWG-STZYP24-DWVZQA3-6HJVGQW"
PEER2 = "NQD7OIA-TMDREG2-N4PUATS-76QERI4-XVC2KIF-AX73U5R-MUGSJDK-KBGOFAO"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    started = start_plain_node(tmp_path_factory.mktemp("client"), "solo")
    try:
        yield started
    finally:
        started.teardown()


@pytest.fixture
async def client(node: Node) -> AsyncIterator[SyncthingClient]:
    assert node.endpoint is not None
    async with SyncthingClient(node.endpoint, node.api_key, request_timeout=10) as c:
        yield c


def folder(node: Node, folder_id: str, **kw: object) -> FolderConfig:
    path = node.root / "folders" / folder_id
    path.mkdir(parents=True, exist_ok=True)
    values: dict[str, object] = {
        "id": folder_id,
        "path": str(path),
        "type": "sendonly",
        "devices": [FolderDevice(device_id=node.device_id)],
    }
    values.update(kw)
    return FolderConfig(**values)  # type: ignore[arg-type]


async def test_system_and_options(client: SyncthingClient, node: Node) -> None:
    version = await client.version()
    assert version.version.startswith("v1.") or version.version.startswith("v2.")
    status = await client.status()
    assert status.my_id == node.device_id
    assert status.start_time is not None
    (listener,) = status.connection_service_status.values()
    assert listener.error is None
    options = await client.options()
    assert options.listen_addresses == [node.listen_address]
    assert not options.global_announce_enabled
    assert not options.relays_enabled
    assert options.ur_accepted == -1
    connections = await client.connections()
    assert not any(c.connected for c in connections.connections.values())
    await client.ping()


async def test_device_put_patch_remove(client: SyncthingClient) -> None:
    await client.put_device(
        DeviceConfig(device_id=PEER.lower(), name="peer", addresses=["tcp://127.0.0.1:9"])
    )
    (device,) = [d for d in await client.devices() if d.device_id == PEER]
    assert (device.name, device.addresses) == ("peer", ["tcp://127.0.0.1:9"])
    # PATCH changes only what it names: the address stays (a PUT would reset it).
    await client.patch_device(PEER, DevicePatch(name="renamed"))
    (device,) = [d for d in await client.devices() if d.device_id == PEER]
    assert (device.name, device.addresses) == ("renamed", ["tcp://127.0.0.1:9"])
    assert not device.introducer
    await client.remove_device(PEER)
    assert PEER not in {d.device_id for d in await client.devices()}


async def test_folders_are_batched_and_patched(client: SyncthingClient, node: Node) -> None:
    await client.put_folder(folder(node, "karma-keep", rescan_interval_s=77, label="keep"))
    batch = [folder(node, "karma-b1"), folder(node, "karma-b2", type="receiveonly")]
    await client.put_folders(batch)
    by_id = {f.id: f for f in await client.folders()}
    assert {"karma-keep", "karma-b1", "karma-b2"} <= set(by_id)
    assert by_id["karma-keep"].rescan_interval_s == 77
    assert by_id["karma-b2"].type == "receiveonly"
    await client.patch_folder("karma-keep", FolderPatch(label="patched", paused=True))
    kept = {f.id: f for f in await client.folders()}["karma-keep"]
    assert (kept.label, kept.paused, kept.rescan_interval_s) == ("patched", True, 77)
    marker = Path(by_id["karma-b1"].path) / "data.txt"
    marker.write_text("stays")
    for folder_id in ("karma-keep", "karma-b1", "karma-b2"):
        await client.remove_folder(folder_id)
    assert not {"karma-keep", "karma-b1", "karma-b2"} & {f.id for f in await client.folders()}
    assert marker.read_text() == "stays"


async def test_garbage_is_refused_before_it_reaches_syncthing(
    client: SyncthingClient, node: Node
) -> None:
    before = await client.folders()
    for bad in (
        folder(node, "karma-bad", path=""),
        folder(node, "karma-bad", type="readwrite"),
        folder(node, "karma-bad", devices=[FolderDevice(device_id="x")]),
    ):
        with pytest.raises(Rejected) as info:
            await client.put_folder(bad)
        assert info.value.status is None
    with pytest.raises(Rejected, match="twice"):
        await client.put_folders([folder(node, "karma-dup"), folder(node, "karma-dup")])
    with pytest.raises(Rejected):
        await client.scan("karma-x", ["../escape"])
    with pytest.raises(Rejected):
        await client.set_ignores("karma-x", ["two\nlines"])
    assert await client.folders() == before


async def test_syncthings_own_refusals_carry_its_message(client: SyncthingClient) -> None:
    with pytest.raises(Rejected, match="no such folder") as info:
        await client.scan("karma-unknown")
    assert info.value.status is not None
    assert info.value.status >= 400
    with pytest.raises(Rejected) as info:
        await client.folder_status("karma-unknown")
    assert info.value.status == 404


async def test_scan_ignores_and_status(client: SyncthingClient, node: Node) -> None:
    config = folder(node, "karma-scan", fs_watcher_enabled=False)
    await client.put_folder(config)
    try:
        await client.set_ignores("karma-scan", ["*.tmp", "// comment"])
        assert (await client.ignores("karma-scan")).ignore == ["*.tmp", "// comment"]
        await anyio.Path(config.path, "a.jsonl").write_text("{}\n")
        await anyio.Path(config.path, "b.tmp").write_text("ignored")
        with anyio.fail_after(20):
            # Polling Syncthing's own state is the point here.
            while (await client.folder_status("karma-scan")).state != "idle":  # noqa: ASYNC110
                await anyio.sleep(0.05)
        await client.scan("karma-scan", ["a.jsonl", "b.tmp"])
        status = await client.folder_status("karma-scan")
        assert (status.local_files, status.local_bytes) == (1, 3)
        assert (await client.completion("karma-scan")).completion == 100
        assert not (await client.folder_errors("karma-scan")).errors
    finally:
        await client.remove_folder("karma-scan")


async def test_events_since(client: SyncthingClient, node: Node) -> None:
    latest = await client.latest_event_id()
    assert latest > 0
    await client.put_device(DeviceConfig(device_id=PEER2, name="evented"))
    try:
        events = await client.events(latest, 5)
        assert events[0].id == latest + 1
        saved = [e for e in events if e.type == "ConfigSaved"]
        assert saved
        view = codec.decode_json(bytes(saved[0].data), ConfigView)
        assert PEER2 in {d.device_id for d in view.devices}
        # Nothing newer: the long poll ends empty after its timeout.
        started = time.monotonic()
        assert await client.events(events[-1].id, 1) == []
        assert 0.8 < time.monotonic() - started < 5
    finally:
        await client.remove_device(PEER2)


async def test_wrong_key_is_auth_failed(node: Node) -> None:
    assert node.endpoint is not None
    async with SyncthingClient(node.endpoint, "not-the-key") as c:
        with pytest.raises(AuthFailed, match="refused the API key"):
            await c.version()


async def test_nothing_listening_is_unreachable(tmp_path: Path) -> None:
    async with SyncthingClient(parse_endpoint(str(tmp_path / "none.sock")), "k") as c:
        with pytest.raises(Unreachable, match="not reachable"):
            await c.ping()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with SyncthingClient(parse_endpoint(f"127.0.0.1:{port}"), "k") as c:
        with pytest.raises(Unreachable):
            await c.ping()


async def test_a_silent_server_times_out(tmp_path: Path) -> None:
    # Accepts connections (the kernel does) but never answers: a hung Syncthing.
    with socket.socket(socket.AF_UNIX) as server:
        path = tmp_path / "silent.sock"
        server.bind(str(path))
        server.listen(8)
        async with SyncthingClient(
            parse_endpoint(str(path)), "k", connect_timeout=0.5, request_timeout=0.5
        ) as c:
            started = time.monotonic()
            with pytest.raises(Unreachable, match="in time"):
                await c.ping()
            assert time.monotonic() - started < 3
