"""The wire between the rig's network namespaces: a switch that also does netem's job.

Each node's namespace has one TUN interface (`rig0`) whose other end is a file
descriptor held by this process. Packets read from one node's descriptor are written to
the descriptor of the node owning the destination address, after the shaping and faults
the test asked for:

- per link (a node's side of the wire), for what the node sends (`egress`) and what it
  receives (`ingress`): a fixed delay, uniform jitter, random loss and a rate limit with a
  bounded queue, as `tc qdisc ... netem delay D J loss L rate R limit N` would; unlike
  netem's default, jitter never reorders packets of one link (a real link does not);
- blocked pairs of nodes (a cut link, a partition): packets between them are dropped
  silently, those already on the wire too, so each side only notices by timeouts.

Why not the kernel's own veth + bridge + netem: netem (sch_netem) is not built into every
kernel the tests run on, and a module cannot be loaded everywhere (containers, VMs
without modules). A TUN device needs only the `tun` driver; the kernels at both ends of
every connection are the real ones, only the medium is emulated.

Only IPv4 between the rig's own addresses is forwarded; anything else (a packet from an
address that is not the sender's, to an address outside the rig, IPv6) is dropped and
counted as `stray`, so a test can assert that no node tried to reach anything else.

Run as `python -m tests.support.netswitch` (as root, for /dev/net/tun); commands come as
JSON lines on stdin and each gets one JSON line on stdout. End of stdin (the test process
went away) ends the switch, and with it every TUN device.
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import json
import os
import random
import selectors
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
READ_BURST = 64
"""Packets read from one link before looking at the others (fairness under load)."""
DEFAULT_LIMIT = 1000
"""Packets queued per link stage before tail drop (netem's default `limit`)."""


@dataclass
class Shape:
    delay_s: float = 0.0
    jitter_s: float = 0.0
    loss: float = 0.0
    """Probability of dropping a packet, 0..1."""
    rate_bps: float = 0.0
    """Bits per second; 0 means unlimited."""
    limit: int = DEFAULT_LIMIT

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Shape:
        return cls(
            delay_s=float(data.get("delay_ms", 0)) / 1000,
            jitter_s=float(data.get("jitter_ms", 0)) / 1000,
            loss=float(data.get("loss", 0)),
            rate_bps=float(data.get("rate_kbit", 0)) * 1000,
            limit=int(data.get("limit", DEFAULT_LIMIT)),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "delay_ms": self.delay_s * 1000,
            "jitter_ms": self.jitter_s * 1000,
            "loss": self.loss,
            "rate_kbit": self.rate_bps / 1000,
            "limit": self.limit,
        }

    @property
    def neutral(self) -> bool:
        return not (self.delay_s or self.jitter_s or self.loss or self.rate_bps)


@dataclass
class Stage:
    """One direction of one link: its shape and what is queued in it."""

    shape: Shape = field(default_factory=Shape)
    busy_until: float = 0.0
    last_departure: float = 0.0
    queued: int = 0

    def admit(self, now: float, size: int, rng: random.Random) -> float | None:
        """When the packet leaves this stage, or None if it is lost or the queue is full."""
        shape = self.shape
        if shape.neutral:
            return now
        if shape.loss and rng.random() < shape.loss:
            return None
        if self.queued >= shape.limit:
            return None
        sent = now
        if shape.rate_bps:
            sent = max(now, self.busy_until) + size * 8 / shape.rate_bps
            self.busy_until = sent
        delay = shape.delay_s
        if shape.jitter_s:
            delay += rng.uniform(-shape.jitter_s, shape.jitter_s)
        departure = max(sent + max(0.0, delay), self.last_departure)
        self.last_departure = departure
        return departure


@dataclass
class Counters:
    received: int = 0
    delivered: int = 0
    lost: int = 0
    blocked: int = 0
    overflow: int = 0
    stray: int = 0
    bytes_received: int = 0

    def to_wire(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Port:
    name: str
    address: bytes
    fd: int
    egress: Stage = field(default_factory=Stage)
    ingress: Stage = field(default_factory=Stage)
    counters: Counters = field(default_factory=Counters)


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


def ipv4(text: str) -> bytes:
    parts = [int(p) for p in text.split(".")]
    if len(parts) != 4 or not all(0 <= p <= 255 for p in parts):
        raise ValueError(f"not an IPv4 address: {text!r}")
    return bytes(parts)


def dotted(address: bytes) -> str:
    return ".".join(str(b) for b in address)


class Switch:
    def __init__(self, seed: int = 0) -> None:
        self.ports: dict[bytes, Port] = {}
        self.blocked: set[tuple[bytes, bytes]] = set()
        self.rng = random.Random(seed)
        self.selector = selectors.DefaultSelector()
        self.wire: list[tuple[float, int, bytes, bytes, bytes, int]] = []
        """Heap of (departure, sequence, source, destination, packet, stage): stage 1 =
        still in the sender's egress, 2 = in the receiver's ingress."""
        self.sequence = 0

    # ------------------------------------------------------------------ commands

    def command(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "port":
            address = ipv4(request["address"])
            if address in self.ports:
                raise ValueError(f"{request['address']} already has a port")
            fd = open_tun(request["name"])
            port = Port(request["name"], address, fd)
            self.ports[address] = port
            self.selector.register(fd, selectors.EVENT_READ, port)
            return {}
        if op == "unport":
            port = self._port(request["address"])
            self.selector.unregister(port.fd)
            os.close(port.fd)
            del self.ports[port.address]
            kept = []
            for entry in self.wire:
                _, _, source, destination, _, stage = entry
                if port.address not in (source, destination):
                    kept.append(entry)
                elif stage == 1 and source in self.ports:
                    self.ports[source].egress.queued -= 1
                elif stage == 2 and destination in self.ports:
                    self.ports[destination].ingress.queued -= 1
            self.wire = kept
            heapq.heapify(self.wire)
            self.blocked = {b for b in self.blocked if port.address not in b}
            return {}
        if op == "shape":
            port = self._port(request["address"])
            if "egress" in request:
                port.egress.shape = Shape.from_wire(request["egress"])
            if "ingress" in request:
                port.ingress.shape = Shape.from_wire(request["ingress"])
            return {}
        if op == "block":
            for a, b in request["pairs"]:
                x, y = ipv4(a), ipv4(b)
                self.blocked |= {(x, y), (y, x)}
            return {}
        if op == "unblock":
            pairs = request.get("pairs")
            if pairs is None:
                self.blocked.clear()
            for a, b in pairs or ():
                x, y = ipv4(a), ipv4(b)
                self.blocked -= {(x, y), (y, x)}
            return {}
        if op == "stats":
            return {
                "ports": {
                    dotted(a): {
                        "name": p.name,
                        "egress": p.egress.shape.to_wire(),
                        "ingress": p.ingress.shape.to_wire(),
                        **p.counters.to_wire(),
                    }
                    for a, p in sorted(self.ports.items())
                },
                "blocked": sorted(f"{dotted(a)}>{dotted(b)}" for a, b in self.blocked),
                "on_wire": len(self.wire),
            }
        if op == "ping":
            return {}
        raise ValueError(f"unknown op {op!r}")

    def _port(self, address: str) -> Port:
        port = self.ports.get(ipv4(address))
        if port is None:
            raise ValueError(f"no port for {address}")
        return port

    # ------------------------------------------------------------------ packets

    def receive(self, port: Port, now: float) -> None:
        for _ in range(READ_BURST):
            try:
                packet = os.read(port.fd, 65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # the interface went down under us; reads resume when it is up
            port.counters.received += 1
            port.counters.bytes_received += len(packet)
            self.route(port, packet, now)

    def route(self, port: Port, packet: bytes, now: float) -> None:
        if len(packet) < 20 or packet[0] >> 4 != 4:
            port.counters.stray += 1
            return
        source, destination = packet[12:16], packet[16:20]
        target = self.ports.get(destination)
        if source != port.address or target is None or target is port:
            port.counters.stray += 1
            return
        if (source, destination) in self.blocked:
            port.counters.blocked += 1
            return
        departure = port.egress.admit(now, len(packet), self.rng)
        if departure is None:
            port.counters.lost += 1
            return
        self._queue(departure, source, destination, packet, 1, port.egress)

    def _queue(
        self, at: float, source: bytes, destination: bytes, packet: bytes, stage: int, s: Stage
    ) -> None:
        s.queued += 1
        self.sequence += 1
        heapq.heappush(self.wire, (at, self.sequence, source, destination, packet, stage))

    def depart(self, now: float) -> None:
        while self.wire and self.wire[0][0] <= now:
            _, _, source, destination, packet, stage = heapq.heappop(self.wire)
            sender = self.ports[source]
            target = self.ports[destination]
            (sender.egress if stage == 1 else target.ingress).queued -= 1
            if (source, destination) in self.blocked:
                sender.counters.blocked += 1  # on the wire when the link was cut
                continue
            if stage == 1:
                arrival = target.ingress.admit(now, len(packet), self.rng)
                if arrival is None:
                    sender.counters.lost += 1
                    continue
                if arrival > now:
                    self._queue(arrival, source, destination, packet, 2, target.ingress)
                    continue
            try:
                os.write(target.fd, packet)
            except (BlockingIOError, InterruptedError):
                sender.counters.overflow += 1
            except OSError:
                sender.counters.lost += 1  # the receiver's interface is down
            else:
                sender.counters.delivered += 1

    def timeout(self, now: float) -> float | None:
        if not self.wire:
            return None
        return max(0.0, self.wire[0][0] - now)


def serve(switch: Switch) -> None:
    stdin = sys.stdin.buffer
    os.set_blocking(stdin.fileno(), False)
    switch.selector.register(stdin.fileno(), selectors.EVENT_READ, None)
    pending = b""
    while True:
        now = time.monotonic()
        for key, _ in switch.selector.select(switch.timeout(now)):
            now = time.monotonic()
            if key.data is None:
                chunk = os.read(stdin.fileno(), 65536)
                if not chunk:
                    return
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    reply(switch, line)
            else:
                switch.receive(key.data, now)
        switch.depart(time.monotonic())


def reply(switch: Switch, line: bytes) -> None:
    try:
        answer = {"ok": True, **switch.command(json.loads(line))}
    except (KeyError, TypeError, ValueError, OSError) as exc:
        answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


def main() -> int:
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    switch = Switch(seed)
    with contextlib.suppress(KeyboardInterrupt):
        serve(switch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
