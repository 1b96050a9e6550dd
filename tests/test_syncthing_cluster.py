"""Several real nodes on loopback: pairing, offers, sharing and what karmad sees of it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import RpcFailure, karmactl_command
from tests.support.syncthing import Cluster, Node, wait_until

pytestmark = pytest.mark.syncthing

ClusterFactory = Callable[..., Cluster]


def topics(node: Node) -> dict[str, list[dict[str, Any]]]:
    events = node.call("events.recent", {"topics": ["syncthing"], "limit": 500})["events"]
    seen: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        seen.setdefault(event["topic"], []).append(event["data"])
    return seen


def karmactl(node: Node, *args: str) -> subprocess.CompletedProcess[str]:
    assert node.karmad is not None
    env = node.karmad.home.env({"KARMAD_SOCKET": str(node.karmad.socket)})
    return subprocess.run(
        karmactl_command(*args), env=env, capture_output=True, text=True, check=False
    )


def test_pair_offer_accept_and_sync(syncthing_cluster: ClusterFactory, anyio_backend: str) -> None:
    cluster = syncthing_cluster(2, karmad=True, backend=anyio_backend)
    a, b = cluster.nodes

    # a adds b: b is offered a as a pending device.
    Cluster.add_device(a, b)
    (pending,) = wait_until(lambda: b.call("pending.list")["devices"], 15, message="pending")
    assert pending["device_id"] == a.device_id
    assert pending["address"].startswith("127.0.0.1:")
    assert pending["time"]

    # b accepts: both connected, nothing pending any more.
    Cluster.add_device(b, a)
    for x, y in ((a, b), (b, a)):

        def peer_connected(x: Node = x) -> bool:
            return [d["connected"] for d in x.call("device.list")["devices"]] == [True]

        wait_until(peer_connected, 15, message=f"{x.name} sees its peer connected")
        (device,) = x.call("device.list")["devices"]
        assert device["device_id"] == y.device_id
        assert device["name"] == y.name
        assert device["address"].startswith("127.0.0.1:")
        assert device["last_seen"]
    assert b.call("pending.list")["devices"] == []

    # a offers a folder (a user's own folder beside it is not karmad's business).
    Cluster.add_folder(a, "users-docs", "sendreceive", [])
    share = cluster.offer(a, [b], "karma-share", watcher=False, label="team x")
    (offer,) = wait_until(lambda: b.call("pending.list")["folders"], 15, message="offer")
    assert (offer["folder_id"], offer["managed"]) == ("karma-share", True)
    assert [(o["device_id"], o["label"]) for o in offer["offered_by"]] == [(a.device_id, "team x")]

    # b accepts it as a receive-only inbox; a file written on a arrives after a rescan.
    inbox = cluster.accept(b, a, "karma-share", watcher=False)
    wait_until(lambda: b.call("pending.list")["folders"] == [], 15, message="offer cleared")
    (share / "projects").mkdir()
    session = share / "projects" / "s1.jsonl"
    session.write_text('{"type":"user"}\n' * 100)
    queued = a.call("syncthing.rescan", {"folder": "karma-share", "paths": ["projects/s1.jsonl"]})
    assert queued == {"folders": ["karma-share"], "paths": ["projects/s1.jsonl"]}
    arrived = inbox / "projects" / "s1.jsonl"
    wait_until(
        lambda: arrived.exists() and arrived.read_bytes() == session.read_bytes(),
        15,
        message="the file arrived on b",
    )

    # Both karmads see the folder, its type, sizes and completion.
    def folder(node: Node) -> dict[str, Any]:
        (only,) = node.call("folder.list")["folders"]
        return dict(only)

    wait_until(
        lambda: (
            folder(a)["local_files"] == 1
            and {c["device_id"]: c["completion"] for c in folder(a)["completion"]}
            == {a.device_id: 100, b.device_id: 100}
        ),
        15,
        message="a's figures",
    )
    fa = folder(a)
    assert (fa["folder_id"], fa["type"], fa["label"]) == ("karma-share", "sendonly", "team x")
    # Syncthing counts a directory as 128 bytes.
    assert fa["local_bytes"] == fa["global_bytes"] == session.stat().st_size + 128
    assert sorted(fa["devices"]) == sorted([a.device_id, b.device_id])
    wait_until(lambda: folder(b)["local_files"] == 1 and folder(b)["state"] == "idle", 15)
    fb = folder(b)
    assert fb["type"] == "receiveonly"
    assert fb["need_bytes"] == 0
    assert (a.call("device.list")["devices"][0]["folders"]) == ["karma-share"]
    wait_until(lambda: a.call("device.list")["devices"][0]["out_bytes"] > 0, 15)

    # What karmad published on its bus while this happened.
    def with_remote_change() -> dict[str, list[dict[str, Any]]] | None:
        seen = topics(b)
        return seen if "syncthing.change.remote" in seen else None

    seen_b = wait_until(with_remote_change, 15, message="b's remote change event")
    assert any(e["added"] for e in seen_b["syncthing.pending.devices"])
    assert any(e["added"] for e in seen_b["syncthing.pending.folders"])
    assert any(e["device"] == a.device_id for e in seen_b["syncthing.device.connected"])
    assert {"folder": "karma-share", "item": "projects/s1.jsonl"}.items() <= next(
        e for e in seen_b["syncthing.item.finished"] if e["item"] == "projects/s1.jsonl"
    ).items()
    assert any(e["path"] == "projects/s1.jsonl" for e in seen_b["syncthing.change.remote"])
    assert any(e["folder"] == "karma-share" for e in seen_b["syncthing.index.remote"])
    seen_a = topics(a)
    assert any("projects/s1.jsonl" in e["filenames"] for e in seen_a["syncthing.index.local"])
    assert not any(e.get("folder") == "users-docs" for events in seen_a.values() for e in events), (
        "only karmad-managed folders make folder events"
    )

    # Bad rescans are refused at once.
    bad: list[tuple[dict[str, Any], str]] = [
        ({"folder": "karma-nope"}, "not_found"),
        ({"folder": "users-docs"}, "not_found"),
        ({"folder": "karma-share", "paths": ["../outside"]}, "invalid_argument"),
        ({"paths": ["a"]}, "invalid_argument"),
        ({"folder": "karma-share", "paths": 3}, "invalid_params"),
    ]
    for params, reason in bad:
        with pytest.raises(RpcFailure) as info:
            a.call("syncthing.rescan", params)
        assert info.value.reason == reason, params
    assert a.call("syncthing.rescan") == {"folders": ["karma-share"], "paths": []}

    # A scan Syncthing refuses (the folder is paused) is reported as an event.
    a.rest.patch("/rest/config/folders/karma-share", {"paused": True})
    wait_until(lambda: folder(a)["state"] == "paused", 15, message="paused")
    a.call("syncthing.rescan", {"folder": "karma-share"})

    def scan_failed() -> list[dict[str, Any]] | None:
        return topics(a).get("syncthing.scan.failed")

    failures = wait_until(scan_failed, 15, message="scan failure reported")
    # Scans queued before the pause took effect may fail for other reasons first.
    assert all(f["folder"] == "karma-share" for f in failures)
    wait_until(
        lambda: any("paused" in f["error"] for f in scan_failed() or []),
        15,
        message="a failure that names the pause",
    )
    a.rest.patch("/rest/config/folders/karma-share", {"paused": False})

    # karmactl shows the same, for people and for scripts.
    out = karmactl(b, "devices")
    assert out.returncode == 0, out.stderr
    assert a.device_id.split("-")[0] in out.stdout
    assert "connected" in out.stdout
    out = karmactl(b, "folders", "--json")
    assert json.loads(out.stdout)["folders"][0]["folder_id"] == "karma-share"
    out = karmactl(b, "folders")
    assert "karma-share" in out.stdout
    assert "receiveonly" in out.stdout
    assert karmactl(b, "pending").stdout.strip() == "nothing pending"
    out = karmactl(a, "syncthing", "status")
    assert out.returncode == 0
    assert a.device_id in out.stdout
    assert "loopback" in out.stdout
    status = json.loads(karmactl(a, "syncthing", "status", "--json").stdout)
    assert status["device_id"] == a.device_id
    out = karmactl(a, "syncthing", "rescan", "karma-share", "projects/s1.jsonl")
    assert out.returncode == 0
    assert "projects/s1.jsonl" in out.stdout
    assert karmactl(a, "syncthing", "rescan", "karma-nope").returncode == 1


def test_three_plain_nodes_one_owner_two_readers(syncthing_cluster: ClusterFactory) -> None:
    cluster = syncthing_cluster(3)
    owner, r1, r2 = cluster.nodes
    cluster.pair_all()
    paths = cluster.share(owner, [r1, r2], "karma-three", watcher=False)
    (paths[owner.name] / "state").write_text("roster v1")
    owner.rest.post("/rest/db/scan", folder="karma-three", sub="state")
    for reader in (r1, r2):
        target = paths[reader.name] / "state"

        def received(target: Path = target) -> bool:
            return target.exists() and target.read_text() == "roster v1"

        wait_until(received, 15, message=f"{reader.name} received the state file")
        config = reader.rest.get("/rest/config/folders/karma-three")
        assert config["type"] == "receiveonly"
        assert {d["deviceID"] for d in config["devices"]} == {reader.device_id, owner.device_id}
