"""Network profiles of a managed Syncthing.

`internet` is Syncthing's own defaults: global and local discovery, relays and NAT
traversal, listening on `default` (TCP and QUIC on port 22000, all interfaces) - what
a team spread over the internet needs. `lan-only` and `loopback` switch all of that off
and listen on explicit addresses only (`loopback`: 127.0.0.1 on a free port), so peers
must be added with explicit addresses; tests and benchmarks use `loopback` so that they
never send a packet beyond this machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from karmad.syncthing import ports

Profile = Literal["internet", "lan-only", "loopback"]

LAN_PORT: Final = 22000
"""Syncthing's registered sync port, preferred by `lan-only` so firewalls rules carry over."""


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    listen_addresses: list[str]
    global_announce: bool
    local_announce: bool
    relays: bool
    nat: bool

    def options(self) -> dict[str, str]:
        """The config.xml `<options>` values (listen addresses apart)."""

        def b(v: bool) -> str:
            return "true" if v else "false"

        return {
            "globalAnnounceEnabled": b(self.global_announce),
            "localAnnounceEnabled": b(self.local_announce),
            "relaysEnabled": b(self.relays),
            "natEnabled": b(self.nat),
        }


MANAGED_OPTIONS: Final = {
    "startBrowser": "false",
    "autoUpgradeIntervalH": "0",
    "urAccepted": "-1",
    "crashReportingEnabled": "false",
    "reconnectionIntervalS": "10",
}
"""Held in every profile: karmad decides when Syncthing runs and what leaves the machine.

`reconnectionIntervalS`: Syncthing dials an address it has dialled once only again after
this (60 s by default). A new connection can be closed by the other side at once (1.19
closes it on an Index for a folder it is adding that instant, which a roster change makes
likely); two members would then stay apart for a minute."""


def network_settings(profile: Profile, explicit: list[str], current: list[str]) -> NetworkSettings:
    """The settings for `profile`; `current` (config.xml's listen addresses) keeps ports."""
    if profile == "internet":
        return NetworkSettings(explicit or ["default"], True, True, True, True)
    if explicit:
        listen = explicit
    else:
        host = "127.0.0.1" if profile == "loopback" else "0.0.0.0"  # noqa: S104 - lan-only
        kept = next(
            (
                ports.port_of(a)
                for a in current
                if a.startswith("tcp://") and ports.host_of(a) == host
            ),
            None,
        )
        preferred = LAN_PORT if profile == "lan-only" else None
        listen = [f"tcp://{host}:{ports.keep_or_pick(host, kept, preferred)}"]
    return NetworkSettings(listen, False, False, False, False)
