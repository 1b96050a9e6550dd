"""The running daemon's parts, as handlers and subsystems see them.

Built once by `karmad.app`; handlers receive it at registration. Holding references here
(rather than in module globals) keeps several daemons in one test process independent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from karmad.archive.archiver import Archiver
from karmad.bus import Bus, Clock, utc_now
from karmad.config import Config
from karmad.doctor import Doctor
from karmad.flow.packager import Packager
from karmad.flow.preview import Previewer
from karmad.flow.receiver import Receiver
from karmad.health import Health
from karmad.index.queries import IndexQueries
from karmad.index.service import Indexer
from karmad.keeper.executor import KeeperPort
from karmad.keeper.reconciler import KeeperReconciler
from karmad.paths import Paths
from karmad.redact import Redactor
from karmad.resume.service import Resumer
from karmad.store import Store
from karmad.sync.identity import IdentityService
from karmad.sync.keepers import KeeperService
from karmad.sync.offers import OfferService
from karmad.sync.teams import TeamService
from karmad.syncthing.service import SyncthingService


@dataclass(kw_only=True)
class Core:
    """What every karmad runs, a member or a keeper: the handlers of `daemon.*`,
    `events.*`, `doctor.*` and `syncthing.status` need nothing more."""

    paths: Paths
    config: Config
    store: Store
    bus: Bus
    health: Health
    backend: str
    started_at: datetime
    request_shutdown: Callable[[], None]
    syncthing: SyncthingService
    clock: Clock = field(default=utc_now)
    doctor: Doctor = field(default_factory=Doctor)
    """Where subsystems register their `karmactl doctor` checks (see karmad.checks)."""


@dataclass(kw_only=True)
class Services(Core):
    """A member's daemon: sessions, the index, teams and their flows."""

    index: IndexQueries
    """Reads of the session index (its own read connection, on the event loop)."""
    indexer: Indexer
    """The subsystem that keeps the index current; roots, changes, rebuilds, status."""
    identity: IdentityService
    """Who this member is; pairing and invite codes."""
    teams: TeamService
    """Teams, members, shared projects, subscriptions."""
    offers: OfferService
    """Devices and folders offered to this machine that no team expects."""
    packager: Packager
    """Local sessions of shared projects into outboxes."""
    receiver: Receiver
    """Teammates' inboxes into the index."""
    redactor: Redactor
    previewer: Previewer
    archiver: Archiver
    """Own sessions kept in the state directory, whatever Claude Code deletes."""
    resumer: Resumer
    """`session.resume` jobs: sessions materialised for Claude Code in a local checkout."""
    keepers: KeeperService
    """Teams' keepers as a leader names them and a member sees them (docs/keeper.md)."""


@dataclass(kw_only=True)
class KeeperServices(Core):
    """A keeper's daemon (`[keeper] enabled`): what it holds for the teams it serves."""

    keeper: KeeperReconciler
    port: KeeperPort
