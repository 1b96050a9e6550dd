"""The running daemon's parts, as handlers and subsystems see them.

Built once by `karmad.app`; handlers receive it at registration. Holding references here
(rather than in module globals) keeps several daemons in one test process independent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from karmad.bus import Bus, Clock, utc_now
from karmad.config import Config
from karmad.doctor import Doctor
from karmad.health import Health
from karmad.paths import Paths
from karmad.store import Store


@dataclass
class Services:
    paths: Paths
    config: Config
    store: Store
    bus: Bus
    health: Health
    backend: str
    started_at: datetime
    request_shutdown: Callable[[], None]
    clock: Clock = field(default=utc_now)
    doctor: Doctor = field(default_factory=Doctor)
    """Where subsystems register their `karmactl doctor` checks (see karmad.checks)."""
