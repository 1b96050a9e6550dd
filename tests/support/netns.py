"""Separate hosts on one machine: every node in its own network namespace.

    net = Net(tmp_path)                        # or the `netns_rig` fixture
    a, b = net.karmad_node("a"), net.karmad_node("b")
    net.shape_all(delay_ms=100, jitter_ms=20, loss=0.02)
    net.partition([a], [b]); ...; net.heal()
    net.sleep(a); ...; net.wake(a)             # a laptop lid closed, then opened
    net.teardown()                             # also at exit, whatever happened

Each node (a karmad with its managed Syncthing, or a plain Syncthing) runs in a namespace
the rig creates (`ip netns add`), whose only interfaces are `lo` and `rig0`: a TUN device
wired to the rig's switch (`tests.support.netswitch`), with one address of a /24 in
10.77.0.0/16 that exists only inside this rig's namespaces. There is no default route and
no IPv6: a node can reach its peers and its own loopback, nothing else. Nodes use karmad's
`lan-only` profile listening on their own address (port 22000 in every namespace), so
pairing codes and state files carry those addresses as on a real LAN.

The test still talks to each karmad over its Unix socket and to each Syncthing's REST API
over its Unix socket: sockets are files, and namespaces do not affect them.

Faults: shaping per link (delay, jitter, loss, rate; see the switch), a node cut off or a
partition (packets dropped silently), a link's carrier down, a sleeping machine (its
link cut and every process of it stopped), kill -9 of karmad or of Syncthing, a machine
switched off and on. Names are unique per process and rig, so parallel runs never meet;
everything (processes, namespaces, TUN devices) goes at `teardown()`, which also runs at
exit. The rig needs root, `ip` and /dev/net/tun; `unavailable()` says what is missing.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from karmad.syncthing import proctree
from tests.support.daemon import REPO
from tests.support.syncthing import (
    Node,
    RigError,
    start_karmad_node,
    start_plain_node,
    wait_started,
    wait_until,
)

PREFIX = "krig"
"""Every namespace of the rig is named `krig<pid>r<n>-<node>`."""
SYNC_PORT = 22000
_RUNS = itertools.count(1)
_LIVE: list[Net] = []


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], check=False, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RigError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


@functools.cache
def unavailable() -> str | None:
    """Why namespaces cannot be made here (None when they can)."""
    if sys.platform != "linux":
        return "network namespaces exist only on Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (run the suite as root, e.g. in CI)"
    for tool, package in (("ip", "iproute2"), ("ss", "iproute2"), ("sysctl", "procps")):
        if shutil.which(tool) is None:
            return f"`{tool}` ({package}) is not installed"
    if shutil.which("syncthing") is None:
        return "Syncthing is not installed"
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR)
    except OSError as exc:
        return f"/dev/net/tun cannot be opened ({exc.strerror}): no TUN driver"
    os.close(fd)
    probe = f"{PREFIX}{os.getpid()}probe"
    made = subprocess.run(
        ["ip", "netns", "add", probe], check=False, capture_output=True, text=True
    )
    if made.returncode != 0:
        return f"`ip netns add` fails here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], check=False, capture_output=True)
    return None


class Switch:
    """The switch process (see `tests.support.netswitch`), driven over its stdin."""

    def __init__(self, seed: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.netswitch", str(seed)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO,
        )

    def call(self, op: str, **params: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **params}).encode() + b"\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RigError(f"the switch exited ({self.proc.poll()})")
        answer: dict[str, Any] = json.loads(line)
        if not answer.pop("ok"):
            raise RigError(f"switch {op}: {answer['error']}")
        return answer

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@dataclass(frozen=True)
class Link:
    """What a link does to the packets it carries (see `tests.support.netswitch`)."""

    delay_ms: float = 0
    jitter_ms: float = 0
    loss: float = 0
    """Probability of losing a packet, 0..1."""
    rate_kbit: float = 0
    """0: unlimited."""

    def wire(self) -> dict[str, float]:
        return {
            "delay_ms": self.delay_ms,
            "jitter_ms": self.jitter_ms,
            "loss": self.loss,
            "rate_kbit": self.rate_kbit,
        }


NEUTRAL = Link()
SLOW_LOSSY = Link(delay_ms=100, jitter_ms=20, loss=0.02)
"""The issue's profile: 100 ms +- 20 ms and 2% loss on everything a node sends."""


@dataclass
class Host:
    """One machine: a namespace and its address."""

    name: str
    netns: str
    address: str

    @property
    def wrapper(self) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.netns)

    @property
    def listen(self) -> str:
        return f"tcp://{self.address}:{SYNC_PORT}"


class Net:
    def __init__(self, root: Path, *, seed: int = 0) -> None:
        reason = unavailable()
        if reason is not None:
            raise RigError(f"the network rig is unavailable: {reason}")
        _remove_stale()
        self.root = root
        self.run = next(_RUNS)
        pid = os.getpid()
        self.prefix = f"{PREFIX}{pid}r{self.run}"
        octet = (pid * 7 + self.run) % 254 + 1
        self.block = f"10.77.{octet}."
        """This rig's /24 (as a prefix of dotted addresses)."""
        self.hosts: dict[str, Host] = {}
        self.nodes: dict[str, Node] = {}
        self.asleep: dict[str, list[int]] = {}
        self._made = 0
        self._switch = Switch(seed)
        self._down = False
        _LIVE.append(self)

    # ------------------------------------------------------------------ machines

    def host(self, name: str) -> Host:
        if not re.fullmatch(r"[a-z][a-z0-9]{0,7}", name) or name in self.hosts:
            raise ValueError(f"bad or duplicate host name {name!r}")
        self._made += 1
        index = self._made
        if index > 240:
            raise RigError("a rig has room for 240 machines")
        host = Host(name, f"{self.prefix}-{name}", f"{self.block}{10 + index}")
        tun = f"k{os.getpid()}r{self.run}p{index}"[:15]
        _ip("netns", "add", host.netns)
        self.hosts[name] = host
        # No IPv6 at all (no link-local address, no router solicitations): IPv4 only.
        subprocess.run(
            [
                *host.wrapper,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
            check=True,
            capture_output=True,
        )
        self._switch.call("port", name=tun, address=host.address)
        _ip("link", "set", "dev", tun, "netns", host.netns)
        _ip("-n", host.netns, "link", "set", "dev", tun, "name", "rig0")
        _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "rig0")
        _ip("-n", host.netns, "link", "set", "lo", "up")
        _ip("-n", host.netns, "link", "set", "rig0", "up")
        return host

    def karmad_node(
        self,
        name: str,
        *,
        backend: str = "asyncio",
        config: str = "",
        syncthing: str = "",
        wait: bool = True,
    ) -> Node:
        """A karmad (lan-only profile, listening on its own address) in a new machine."""
        host = self.host(name)
        node = start_karmad_node(
            self.root / name,
            name,
            backend=backend,
            config=config,
            syncthing=syncthing,
            wait=False,
            network=f'profile = "lan-only"\nlisten_addresses = ["{host.listen}"]',
            wrapper=host.wrapper,
        )
        self.nodes[name] = node
        if wait:
            self.wait_started(node)
        return node

    def plain_node(self, name: str, *, wait: bool = True) -> Node:
        """A stand-alone Syncthing in a new machine, prepared like a managed lan-only one."""
        host = self.host(name)
        node = start_plain_node(
            self.root / name,
            name,
            wait=False,
            profile="lan-only",
            listen_addresses=(host.listen,),
            wrapper=host.wrapper,
        )
        self.nodes[name] = node
        if wait:
            self.wait_started(node)
        return node

    def wait_started(self, node: Node, timeout: float = 60.0) -> None:
        wait_started(node, timeout)
        if node.endpoint is None or node.endpoint.uds is None:
            raise RigError(
                f"{node.name}: Syncthing's REST API is not on a Unix socket "
                f"({node.endpoint}): the rig cannot reach into the namespace; use a shorter root"
            )

    def remove(self, node: Node) -> None:
        """Take a machine away for good: its processes, namespace and link."""
        self.wake(node)
        node.teardown()
        host = self.hosts.pop(node.name)
        del self.nodes[node.name]
        _kill_inside(host.netns)
        _ip("netns", "del", host.netns, check=False)
        self._switch.call("unport", address=host.address)

    def host_of(self, node: Node | Host) -> Host:
        return self.hosts[node.name]

    def address(self, node: Node | Host) -> str:
        return self.hosts[node.name].address

    # ------------------------------------------------------------------ shaping

    def shape(self, node: Node | Host, link: Link = NEUTRAL, *, ingress: bool = False) -> None:
        """Shape what `node` sends (as netem on its interface would), or what it receives."""
        direction = "ingress" if ingress else "egress"
        self._switch.call("shape", address=self.address(node), **{direction: link.wire()})

    def shape_all(self, link: Link) -> None:
        """The same shape on every link: each packet gets it once, from its sender's link."""
        for host in self.hosts.values():
            self.shape(host, link)

    def unshape_all(self) -> None:
        for host in self.hosts.values():
            self.shape(host)
            self.shape(host, ingress=True)

    # ------------------------------------------------------------------ faults

    def _pairs(self, left: list[Node | Host], right: list[Node | Host]) -> list[list[str]]:
        return [[self.address(a), self.address(b)] for a in left for b in right if a.name != b.name]

    def _others(self, node: Node | Host) -> list[Node | Host]:
        return [h for h in self.hosts.values() if h.name != node.name]

    def cut(self, node: Node | Host) -> None:
        """Drop everything to and from `node` (the other side notices only by timeouts)."""
        self._switch.call("block", pairs=self._pairs([node], self._others(node)))

    def partition(self, *groups: list[Node | Host]) -> None:
        """Machines of different groups cannot reach each other."""
        pairs = []
        for i, left in enumerate(groups):
            for right in groups[i + 1 :]:
                pairs += self._pairs(left, right)
        self._switch.call("block", pairs=pairs)

    def heal(self, node: Node | Host | None = None) -> None:
        """Lift every cut and partition (or only those involving `node`)."""
        if node is None:
            self._switch.call("unblock")
        else:
            self._switch.call("unblock", pairs=self._pairs([node], self._others(node)))

    def link_down(self, node: Node) -> None:
        """The interface loses its carrier (Wi-Fi off): local sockets see errors at once."""
        _ip("-n", self.host_of(node).netns, "link", "set", "rig0", "down")

    def link_up(self, node: Node) -> None:
        host = self.host_of(node)
        _ip("-n", host.netns, "link", "set", "rig0", "up")
        # Bringing the link down removed its prefix route; the address stays.
        _ip("-n", host.netns, "route", "replace", f"{self.block}0/24", "dev", "rig0", check=False)

    def pids(self, node: Node) -> list[int]:
        """karmad (if any) and its Syncthing processes: everything the machine runs for us."""
        pids = []
        if node.karmad is not None and node.karmad.proc and node.karmad.proc.poll() is None:
            pids.append(node.karmad.proc.pid)
        return pids + node.syncthing_pids()

    def sleep(self, node: Node) -> None:
        """A laptop's lid closed: the link goes silent and every process stops."""
        self.cut(node)
        stopped = self.pids(node)
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        self.asleep[node.name] = stopped

    def wake(self, node: Node) -> None:
        for pid in self.asleep.pop(node.name, []):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.heal(node)

    def kill_karmad(self, node: Node) -> None:
        """kill -9 of karmad alone; its guard then kills its Syncthing (within ~1 s), or a
        new karmad stops a Syncthing the guard missed."""
        assert node.karmad is not None and node.karmad.proc is not None
        node.karmad.proc.kill()
        node.karmad.proc.wait()

    def kill_syncthing(self, node: Node) -> list[int]:
        """kill -9 of Syncthing (monitor and real process); karmad restarts it."""
        pids = node.syncthing_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids

    def start_karmad(self, node: Node) -> None:
        assert node.karmad is not None
        node.karmad.start(wait=False)
        self.wait_started(node)

    def power_off(self, node: Node) -> None:
        """The machine is switched off: karmad and Syncthing stop, the link goes silent."""
        assert node.karmad is not None
        code = node.karmad.stop()
        if code != 0:
            raise RigError(f"{node.name}: karmad exited with {code} on SIGTERM")
        self.cut(node)

    def power_on(self, node: Node) -> None:
        self.heal(node)
        self.start_karmad(node)

    # ------------------------------------------------------------------ checks

    def stats(self) -> dict[str, Any]:
        return self._switch.call("stats")

    def assert_isolated(self) -> None:
        """Nothing beyond the rig's namespaces and their loopback is reachable or used."""
        for host in self.hosts.values():
            addresses = json.loads(_ip("-n", host.netns, "-j", "addr", "show").stdout)
            seen = {
                (link["ifname"], a["family"], a["local"])
                for link in addresses
                for a in link.get("addr_info", [])
            }
            assert seen <= {("lo", "inet", "127.0.0.1"), ("rig0", "inet", host.address)}, seen
            routes = json.loads(_ip("-n", host.netns, "-j", "route", "show").stdout)
            assert [(r["dst"], r.get("dev")) for r in routes] == [(f"{self.block}0/24", "rig0")], (
                routes
            )
            sockets = subprocess.run(
                [*host.wrapper, "ss", "-tunaH"], capture_output=True, text=True, check=True
            ).stdout
            for line in sockets.splitlines():
                fields = line.split()
                for endpoint in fields[4:6]:
                    where = endpoint.rsplit(":", 1)[0]
                    assert where in ("*", "0.0.0.0", "127.0.0.1") or where.startswith(self.block), (
                        f"{host.name}: socket {line}"
                    )
        for node in self.nodes.values():
            if node.name in self.asleep or node._rest is None:
                continue
            config = node.rest.get("/rest/config")
            options = config["options"]
            host = self.hosts[node.name]
            assert options["listenAddresses"] == [host.listen], options["listenAddresses"]
            for key in (
                "globalAnnounceEnabled",
                "localAnnounceEnabled",
                "relaysEnabled",
                "natEnabled",
            ):
                assert options[key] is False, (node.name, key)
            for device in config["devices"]:
                for address in device["addresses"]:
                    assert address == "dynamic" or address.startswith(f"tcp://{self.block}"), (
                        node.name,
                        address,
                    )
            connections = node.rest.get("/rest/system/connections")["connections"]
            for device_id, c in connections.items():
                if c.get("connected"):
                    assert str(c.get("address", "")).startswith(self.block), (device_id, c)
        strays = {a: p["stray"] for a, p in self.stats()["ports"].items() if p["stray"]}
        assert not strays, f"packets to or from outside the rig: {strays}"

    def diagnose(self) -> str:
        out = [f"===== network rig {self.prefix} ({self.block}0/24)"]
        try:
            stats = self.stats()
            out.append(f"blocked: {stats['blocked']}; packets on the wire: {stats['on_wire']}")
            for address, port in stats["ports"].items():
                out.append(f"link {address}: {port}")
        except Exception as exc:
            out.append(f"switch not answering: {exc!r}")
        for host in self.hosts.values():
            link = _ip("-n", host.netns, "-br", "link", "show", "rig0", check=False)
            out.append(f"{host.name} {host.netns} {host.address}: {link.stdout.strip()}")
        for node in self.nodes.values():
            if node.name in self.asleep:
                out.append(f"===== {node.name}: asleep (stopped), not asked")
                continue
            out.append(node.diagnose())
        return "\n".join(out)

    # ------------------------------------------------------------------ teardown

    def teardown(self) -> None:
        if self._down:
            return
        self._down = True
        for name, pids in list(self.asleep.items()):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            del self.asleep[name]
        for node in self.nodes.values():
            with contextlib.suppress(Exception):
                node.teardown()
        for host in self.hosts.values():
            _kill_inside(host.netns)
            _ip("netns", "del", host.netns, check=False)
        self._switch.close()
        with contextlib.suppress(ValueError):
            _LIVE.remove(self)


def _kill_inside(netns: str) -> None:
    """Whatever still runs in one of our namespaces is ours: a karmad killed by the test
    left its Syncthing behind, or a node failed half-way through its start."""
    for _ in range(50):
        listed = _ip("netns", "pids", netns, check=False).stdout.split()
        pids = [int(p) for p in listed if p.isdigit()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def _remove_stale() -> None:
    """Namespaces of rigs whose process died without tearing down, once empty."""
    listed = _ip("netns", "list", check=False).stdout.split("\n")
    for line in listed:
        name = line.split(" ")[0]
        found = re.fullmatch(rf"{PREFIX}(\d+)r\d+-\w+", name)
        if found is None or proctree.alive(int(found[1])):
            continue
        if not _ip("netns", "pids", name, check=False).stdout.split():
            _ip("netns", "del", name, check=False)


@atexit.register
def _teardown_all() -> None:
    for net in list(_LIVE):
        net.teardown()


__all__ = ["NEUTRAL", "SLOW_LOSSY", "Host", "Link", "Net", "unavailable", "wait_until"]
