"""Guard: a managed Syncthing under the loopback profile touches nothing beyond 127.0.0.1.

The sockets of every Syncthing process (monitor and real one) are read from /proc and
checked, while two nodes are connected and syncing, so listening and connected sockets
are both covered. `ss -tunap` shows the same; /proc needs no extra tool.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.syncthing import Cluster, wait_until

pytestmark = [
    pytest.mark.syncthing,
    pytest.mark.skipif(sys.platform != "linux", reason="reads /proc"),
]

LOOPBACK_V4 = "0100007F"  # 127.0.0.1 as /proc/net/tcp spells it (little-endian hex)
LOOPBACK_V6 = {
    "00000000000000000000000001000000",  # ::1
    "0000000000000000FFFF00000100007F",  # ::ffff:127.0.0.1
}
UNSPECIFIED = {"00000000", "00000000000000000000000000000000"}


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def inet_sockets(pid: int) -> list[tuple[str, str, str, str]]:
    """(protocol, local address, remote address, inode) of the process's IP sockets."""
    found = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        table = Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]
        for line in table:
            fields = line.split()
            found.append((proto, fields[1], fields[2], fields[9]))
    return found


def loopback(address: str) -> bool:
    host = address.split(":", maxsplit=1)[0]
    return host == LOOPBACK_V4 or host in LOOPBACK_V6


def test_loopback_profile_opens_only_loopback_sockets(
    syncthing_cluster: Callable[..., Cluster],
) -> None:
    cluster = syncthing_cluster(2, karmad=True)
    a, b = cluster.nodes
    cluster.pair(a, b)
    share = cluster.share(a, [b], "karma-net", watcher=False)
    (share[a.name] / "f").write_text("x")
    a.call("syncthing.rescan", {"folder": "karma-net"})
    wait_until((share[b.name] / "f").exists, 15)

    checked = 0
    for node in (a, b):
        pids = node.syncthing_pids()
        assert len(pids) == 2
        for pid in pids:
            mine = socket_inodes(pid)
            for proto, local, remote, inode in inet_sockets(pid):
                if inode not in mine:
                    continue
                checked += 1
                assert loopback(local), f"{node.name} pid {pid}: {proto} bound to {local}"
                host = remote.split(":")[0]
                assert host in UNSPECIFIED or loopback(remote), (
                    f"{node.name} pid {pid}: {proto} talks to {remote}"
                )
                assert not proto.startswith("udp"), f"{node.name}: UDP socket {local}"
    # A listener and at least one peer connection per node were looked at.
    assert checked >= 4
