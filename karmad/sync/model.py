"""The inputs and outputs of reconciliation, as plain immutable values.

Everything the pure functions in `ingest`, `desired` and `plan` look at is here, built by
the reconciler from the store, the replicated state files and Syncthing's configuration.
Nothing in this module performs I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from karmad.domain import Phase, Subscription, Team
from karmad.keeper.control import Control
from karmad.sync.statefile import StateFile


class Role(enum.StrEnum):
    LEADER = "leader"
    MEMBER = "member"


@dataclass(frozen=True, slots=True)
class Me:
    device_id: str
    member_tag: str
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LocalTeam:
    team_id: str
    name: str
    role: Role
    phase: Phase
    leader_device: str
    leader_tag: str
    phase_since: datetime
    record: Team | None = None
    """Leader: the authoritative record. Member: the last valid record from the leader."""
    record_seq: int = -1
    """Member: `seq` of the leader state file the record came from."""
    subscriptions: tuple[Subscription, ...] = ()
    acks: tuple[tuple[str, datetime], ...] = ()
    """Leader: devices whose removal/dissolution acknowledgement was seen, and when."""
    seq: int = 0
    """Sequence number of our own last published state file."""
    leader_addresses: tuple[str, ...] = ()

    @classmethod
    def led(cls, record: Team, now: datetime) -> LocalTeam:
        """A team we create: we lead it, and its record is ours."""
        return cls(
            record.team_id,
            record.name,
            Role.LEADER,
            Phase.MEMBER,
            record.leader_device,
            record.leader_tag,
            phase_since=now,
            record=record,
        )

    @classmethod
    def joining(
        cls,
        team_id: str,
        name: str,
        leader: tuple[str, str],
        now: datetime,
        *,
        record: Team | None = None,
        record_seq: int = -1,
        leader_addresses: tuple[str, ...] = (),
    ) -> LocalTeam:
        """A team we consented to join (`leader`: its device and member tag), waiting for
        the leader's roster to list us."""
        device, tag = leader
        return cls(
            team_id,
            name,
            Role.MEMBER,
            Phase.JOINING,
            device,
            tag,
            phase_since=now,
            record=record,
            record_seq=record_seq,
            leader_addresses=leader_addresses,
        )

    def subscription(self, key: str) -> Subscription | None:
        return next((s for s in self.subscriptions if s.project_key == key), None)

    def ack_time(self, device: str) -> datetime | None:
        return next((t for d, t in self.acks if d == device), None)


@dataclass(frozen=True, slots=True)
class TeamKeeper:
    """A team's keeper as this device knows it (docs/keeper.md): where it is, and the
    password epoch this device holds. The leader also knows who was given the secret."""

    team_id: str
    device_id: str
    addresses: tuple[str, ...]
    added_at: datetime
    epoch: int | None = None
    secret: bytes | None = None
    holders: frozenset[str] = frozenset()
    """Leader: every device this epoch's secret was given to."""
    current_epoch: int | None = None
    """Member: the newest epoch the leader's key file announced."""
    join_secret: bytes | None = None
    """Member: from the invite; opens the secret sealed for this invite."""
    removed_at: datetime | None = None
    """Leader: the keeper was removed; only an empty control file is left for it."""
    control_seq: int = 0
    keys_seq: int = 0
    fallback: bool = False
    """The keeper is listed on the keeper folder only: it dropped our connection (a
    rotation we missed, or one it has not followed yet), or a rotation is settling."""
    generations: tuple[tuple[str, int], ...] | None = None
    """Member: folder -> password generation, from the leader's signed control file (None
    before one arrived). K is listed on a folder only at the generation we hold: a
    password K has not followed yet would make it drop the whole connection, and one K
    left behind could bind a re-created folder to an old password."""

    def __repr__(self) -> str:
        # The secret decrypts the team's folders on the keeper: never in a log line.
        return f"TeamKeeper({self.team_id}, {self.device_id[:7]}, epoch={self.epoch})"


@dataclass(frozen=True, slots=True)
class PeerState:
    """What one inbox's `state` file says, once validated (or why it was refused)."""

    folder_id: str
    owner_device: str
    state: StateFile | None
    error: str | None = None
    digest: str = ""


@dataclass(frozen=True, slots=True)
class TrustedLeader:
    """A pending device the user accepted as a team leader, before any team is known."""

    device_id: str
    member_tag: str
    accepted_at: datetime


@dataclass(frozen=True, slots=True)
class Policy:
    removal_grace: timedelta = timedelta(days=14)
    """How long a removal or dissolution is kept deliverable to an offline member."""
    ack_linger: timedelta = timedelta(seconds=30)
    """How long the leader keeps an acknowledged device, so it also sees the answer."""
    dial_delay: timedelta = timedelta(seconds=5)
    """How long one side of a new pair of devices leaves the first dial to the other.

    Two Syncthings that dial each other at the same moment can both wait for the other's
    hello on their own connection until a 20-second timeout (seen with 1.19), so a new
    pair has one designated first dialler, the side that learns of the pair last (the
    other has its folders in place by then): the joining member towards its leader, the
    older member towards a newcomer. The other side dials too once this has passed (in
    case the first dial never came), or at once if the peer is already knocking."""
    pair_dial_delay: timedelta = timedelta(seconds=30)
    """How long the newer of two members leaves the first dial to the older one, from the
    later of their activations (the leader's clock, as written in the roster).

    The older member learns of the newcomer only from the leader's next roster: on a slow,
    lossy link (100 ms +- 20 ms, 2% loss) with Syncthing 1.29 it connected 3 to 6 s after
    the leader did, sometimes past a 5 s hold. The newcomer must not dial before then:
    its dial is refused (the older member does not know it yet) and both sides' redials
    can cross. Waiting longer costs nothing when the older member dials, and bounds what
    a pair loses when it never does (an address it cannot reach)."""


@dataclass(frozen=True, slots=True)
class PendingFolder:
    folder_id: str
    offered_by: str
    label: str
    time: datetime | None = None


@dataclass(frozen=True, slots=True)
class PendingDevice:
    device_id: str
    name: str
    address: str
    time: datetime | None = None


@dataclass(frozen=True, slots=True, order=True)
class Offer:
    """One pending offer as Syncthing knows it: a device, or a folder from a device."""

    device_id: str
    folder_id: str = ""
    """Empty: the device itself asks to connect."""


# --------------------------------------------------------------------------- observed


class FolderType(enum.StrEnum):
    SENDONLY = "sendonly"
    RECEIVEONLY = "receiveonly"
    SENDRECEIVE = "sendreceive"
    RECEIVEENCRYPTED = "receiveencrypted"


DIAL_LATER: tuple[str, ...] = ("dynamic",)
"""A device configured without an address to dial: its connection is accepted, and with
discovery off (lan-only, loopback) nothing is dialled until explicit addresses are set."""


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    device_id: str
    name: str
    addresses: tuple[str, ...] = ("dynamic",)


@dataclass(frozen=True, slots=True)
class FolderConfig:
    folder_id: str
    label: str
    path: str
    type: FolderType
    devices: frozenset[str]
    """Device IDs the folder is shared with, ourselves included."""
    passwords: frozenset[tuple[str, str]] = frozenset()
    """(device, password) for the devices in `devices` that hold this folder as
    ciphertext (a team's keeper): Syncthing encrypts what it sends them with it."""


@dataclass(frozen=True, slots=True)
class Observed:
    """Syncthing's configuration as far as karmad manages it, plus our own caches."""

    devices: dict[str, DeviceConfig] = field(default_factory=dict)
    """Every configured device except ourselves."""
    folders: dict[str, FolderConfig] = field(default_factory=dict)
    """Only `karma-` folders."""
    ignores: dict[str, tuple[str, ...]] = field(default_factory=dict)
    state_digests: dict[str, str] = field(default_factory=dict)
    """sha256 of the `state` file currently in each of our own folders."""
    managed_devices: frozenset[str] = frozenset()
    """Devices karmad added itself; only these may ever be removed by karmad."""
    locally_changed: frozenset[str] = frozenset()
    """Receive-only folders where Syncthing reports local changes. karmad never writes in
    an inbox, yet an un-ignored project (a subscription resumed) or a hand edit leaves
    items there that block the owner's newer versions until reverted."""
    foreign_changes: frozenset[str] = frozenset()
    """Send-only folders where Syncthing reports items it needs: another device changed
    our own folder (anyone who reaches a team's keeper can, docs/keeper.md 2.3), and
    peers hold that version instead of ours until we override it."""
    offers: frozenset[Offer] = frozenset()
    """Offers pending in Syncthing."""
    received: frozenset[tuple[str, str]] = frozenset()
    """(folder id, project key) of received project directories present on disk, for the
    projects whose purge was asked for."""
    keeper_digests: Mapping[str, str] = field(default_factory=dict)
    """`KeeperFiles.digest` of what was last written in each keeper folder."""


# --------------------------------------------------------------------------- desired


@dataclass(frozen=True, slots=True)
class DesiredFolder:
    folder_id: str
    label: str
    type: FolderType
    devices: frozenset[str]
    ignores: tuple[str, ...]
    team_id: str
    owner_device: str
    passwords: frozenset[tuple[str, str]] = frozenset()
    """As `FolderConfig.passwords`: the keeper, with this folder's password."""


@dataclass(frozen=True, slots=True)
class DesiredState:
    folder_id: str
    team_id: str
    body: StateFile
    """Without `seq` and `written_at`, which the executor fills in when it writes."""
    digest: str


@dataclass(frozen=True, slots=True)
class Outbox:
    """Where the packager writes: one of our own team folders and what goes into it."""

    team_id: str
    folder_id: str
    project_keys: frozenset[str]
    include_todos: frozenset[str] = frozenset()
    include_plans: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Inbox:
    """A teammate's folder we receive, and the projects we admit from it."""

    team_id: str
    folder_id: str
    owner_device: str
    owner_tag: str
    project_keys: frozenset[str]
    """Admitted now (accepted to receive): Syncthing brings new data for these."""
    shared: tuple[tuple[str, str], ...] = ()
    """(key, identity) of every project shared with the team: what was received for
    them stays visible while paused or declined, until the project or member goes."""


@dataclass(frozen=True, slots=True)
class Recipient:
    """A reader the epoch's secret is sealed for: to its published sealing key if it has
    one, else with the join secret of its invite."""

    device_id: str
    sealing_key: bytes | None = None
    join_secret: bytes | None = None

    def __repr__(self) -> str:
        return f"Recipient({self.device_id[:7]}, key={self.sealing_key is not None})"


@dataclass(frozen=True, slots=True)
class KeeperFiles:
    """What the leader must have written in a team's keeper folder. `control.seq` is 0:
    the executor stamps the next sequence number when it writes."""

    folder_id: str
    team_id: str
    control: Control
    epoch: int
    secret: bytes
    recipients: tuple[Recipient, ...]
    digest: str
    """Changes exactly when what the two files say changes (sealing is randomised, so
    the files themselves differ at every write)."""

    def __repr__(self) -> str:
        return f"KeeperFiles({self.folder_id}, epoch={self.epoch}, digest={self.digest[:12]})"


@dataclass(frozen=True, slots=True)
class Desired:
    devices: dict[str, DeviceConfig]
    folders: dict[str, DesiredFolder]
    states: dict[str, DesiredState]
    outboxes: tuple[Outbox, ...] = ()
    inboxes: tuple[Inbox, ...] = ()
    removable_devices: frozenset[str] = frozenset()
    """Managed devices no team needs any more."""
    removable_folders: frozenset[str] = frozenset()
    """`karma-` folders no team needs any more."""
    dismissed: frozenset[Offer] = frozenset()
    """Offers the user dismissed: Syncthing should forget them."""
    purges: frozenset[tuple[str, str]] = frozenset()
    keeper_files: Mapping[str, KeeperFiles] = field(default_factory=dict)
    """Leader: what must be written in each team's keeper folder (`control`, `keys`)."""
    """(team id, project key) whose received sessions the user asked to delete, once no
    inbox of the team admits the project any more."""
