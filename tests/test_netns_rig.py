"""The network rig itself: isolated hosts, a wire that shapes and cuts, a clean teardown.

Checked with plain sockets between namespaces (each side a real kernel TCP stack) and
with plain Syncthing nodes, so the fault scenarios can trust what the rig says it does.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import netns
from tests.support.netns import Host, Link, Net
from tests.support.syncthing import Cluster, wait_until

ECHO = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7000))
s.listen()
print("ready", flush=True)
while True:
    c, _ = s.accept()
    while data := c.recv(65536):
        c.sendall(data)
    c.close()
"""

CLIENT = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], 7000), timeout=float(sys.argv[2]))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
rtts = []
for _ in range(int(sys.argv[3])):
    t = time.monotonic()
    s.sendall(b"x" * 100)
    got = 0
    while got < 100:
        got += len(s.recv(100 - got))
    rtts.append(time.monotonic() - t)
print(min(rtts), max(rtts))
"""


@contextlib.contextmanager
def echo_server(host: Host) -> Iterator[None]:
    with subprocess.Popen(
        [*host.wrapper, sys.executable, "-c", ECHO, host.address],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            yield
        finally:
            proc.kill()


def round_trips(
    client: Host, server: Host, count: int = 5, timeout: float = 10
) -> tuple[float, float]:
    """(min, max) round trip of 100 bytes over TCP from `client` to `server`'s echo."""
    done = subprocess.run(
        [*client.wrapper, sys.executable, "-c", CLIENT, server.address, str(timeout), str(count)],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout + 30,
    )
    if done.returncode != 0:
        raise ConnectionError(done.stderr.strip().splitlines()[-1])
    low, high = done.stdout.split()
    return float(low), float(high)


def namespaces() -> set[str]:
    listed = subprocess.run(
        ["ip", "netns", "list"], check=False, capture_output=True, text=True
    ).stdout
    return {line.split(" ")[0] for line in listed.splitlines()}


def test_hosts_reach_each_other_and_nothing_else(netns_rig: Net) -> None:
    a, b = netns_rig.host("a"), netns_rig.host("b")
    with echo_server(b):
        round_trips(a, b)
        # No route beyond the rig: an outside address fails at once, it is not dialled.
        outside = subprocess.run(
            [
                *a.wrapper,
                sys.executable,
                "-c",
                "import socket; socket.create_connection(('192.0.2.1', 80), timeout=5)",
            ],
            check=False,
            capture_output=True,
            text=True,
        )
        assert "Network is unreachable" in outside.stderr
    netns_rig.assert_isolated()


def test_the_wire_delays_loses_and_cuts(netns_rig: Net) -> None:
    a, b = netns_rig.host("a"), netns_rig.host("b")
    with echo_server(b):
        low, _ = round_trips(a, b)
        assert low < 0.05
        # 60 ms each way, from each sender's link: no round trip can be shorter than 120.
        netns_rig.shape_all(Link(delay_ms=60, jitter_ms=10))
        low, _ = round_trips(a, b)
        assert low >= 0.100
        # Loss is random but seeded: half of everything sent is dropped and counted.
        netns_rig.shape(a, Link(loss=0.5))
        round_trips(a, b, count=20, timeout=60)
        assert netns_rig.stats()["ports"][a.address]["lost"] > 0
        netns_rig.unshape_all()
        # A cut is silent: the connection attempt times out rather than being refused.
        netns_rig.partition([a], [b])
        started = time.monotonic()
        with pytest.raises(ConnectionError, match="timed out"):
            round_trips(a, b, timeout=2)
        assert time.monotonic() - started >= 2
        netns_rig.heal()
        round_trips(a, b)


def test_syncthing_nodes_pair_on_their_own_addresses(netns_rig: Net) -> None:
    a, b = netns_rig.plain_node("a"), netns_rig.plain_node("b")
    assert a.listen_address == f"tcp://{netns_rig.address(a)}:22000"
    cluster = Cluster([a, b])
    cluster.pair(a, b)
    cluster.share(a, [b], "karma-rig", watcher=False)
    cluster.wait_idle(b, "karma-rig")
    (a.folder_dir("karma-rig") / "hello").write_text("over the wire")
    a.rest.post("/rest/db/scan", folder="karma-rig", sub="hello")
    wait_until((b.folder_dir("karma-rig") / "hello").exists, 20)
    connection = b.rest.get("/rest/system/connections")["connections"][a.device_id]
    assert connection["address"].startswith(netns_rig.address(a))
    netns_rig.assert_isolated()


def test_teardown_leaves_nothing_even_with_a_node_asleep(tmp_path: Path) -> None:
    reason = netns.unavailable()
    if reason is not None:
        pytest.skip(f"network namespaces: {reason}")
    net = Net(tmp_path / "net")
    try:
        node = net.karmad_node("a")
        pids = net.pids(node)
        assert len(pids) >= 2  # karmad, and its Syncthing
        net.sleep(node)
        made = {h.netns for h in net.hosts.values()}
        assert made <= namespaces()
    finally:
        net.teardown()
    assert not made & namespaces()
    for pid in pids:
        wait_until(lambda pid=pid: not Path(f"/proc/{pid}").exists(), 10)  # type: ignore[misc]
    # Nothing of this rig's is left on the switch side either: its process has ended.
    assert net._switch.proc.poll() is not None
