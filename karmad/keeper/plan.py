"""Who holds what through a team's keeper: a pure function of the roster and the epoch.

The keeper K holds, per team:

- every reader's team folder, as ciphertext (`receiveencrypted`), shared with every
  reader: a member receives through K exactly the folders it may receive directly, and
  can do so while their owners are offline;
- the team's *keeper folder*, written by the leader, in plaintext for K: the signed
  control file (which folders K holds, shared with which device IDs, and the epoch of
  each folder's password) and the signed key file (each epoch's secret, sealed for each
  reader). K reads only IDs and numbers there, never a name;
- its own *report folder*, which it writes (what it holds, what it lacks), read by every
  reader.

Every member lists K on each of its team folders with that folder's password of the
current epoch, and on the keeper and report folders without one. A removed device is in
none of this: K stops serving it, and the new epoch's passwords are unknown to it.
"""

from __future__ import annotations

import base64
import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from karmad.domain import Team, TeamState, folder_id
from karmad.keeper.epoch import Epoch, folder_password, needs_rotation, readers


class KeeperError(ValueError):
    """The inputs describe no valid keeper arrangement; the message says why."""


def _derived(kind: str, team_id: str) -> str:
    digest = hashlib.sha256(f"{kind}\0{team_id}".encode()).digest()
    return "karma-" + base64.b32encode(digest).decode().lower()[:26]


def keeper_folder_id(team_id: str) -> str:
    """The leader's plaintext folder for K, derived like team folder IDs (and never equal
    to one: another domain string goes into the hash)."""
    return _derived("keeper-folder", team_id)


def report_folder_id(team_id: str) -> str:
    """K's own folder for the team, where it reports what it holds."""
    return _derived("keeper-report", team_id)


def neutral_label(fid: str) -> str:
    """The label of every folder K sees. Syncthing sends a folder's label to every device
    it is shared with, so with a keeper it cannot name the team, member or project: a
    few characters of the folder ID tell folders apart in a GUI and reveal nothing."""
    return f"karma {fid.removeprefix('karma-')[:8]}"


class HeldKind(enum.StrEnum):
    CONTENT = "content"
    """A member's team folder: receive-encrypted on K."""
    CONTROL = "control"
    """The leader's keeper folder: receive-only, plaintext, on K."""
    REPORT = "report"
    """K's report folder: send-only on K, plaintext."""


@dataclass(frozen=True, slots=True)
class HeldFolder:
    folder_id: str
    kind: HeldKind
    devices: frozenset[str]
    """The members K shares it with (never K itself, never another keeper)."""
    generation: int
    """CONTENT: the epoch whose password encrypts it (K re-creates the folder when this
    grows, because Syncthing binds a receive-encrypted folder to one password). 0
    otherwise."""
    label: str


@dataclass(frozen=True, slots=True)
class KeeperPlan:
    team_id: str
    keeper: str
    leader: str
    epoch: int
    dissolved: bool
    held: Mapping[str, HeldFolder]
    """What K must hold: exactly the content of the signed control file."""
    links: Mapping[str, Mapping[str, str | None]]
    """Per member device: folder ID -> the password with which it lists K there (None:
    plaintext, for the keeper and report folders)."""
    recipients: frozenset[str]
    """Who must find the epoch's secret, sealed for them, in the key file: every reader
    but the leader, who made it."""


def plan(team: Team, keeper: str, epoch: Epoch) -> KeeperPlan:
    """The keeper arrangement of `team` with `keeper` in `epoch`. Pure.

    Raises KeeperError if the keeper is one of the team's own devices (a member's device
    is trusted; a keeper never is) or if `epoch` is stale: it must have been advanced
    (`epoch.advance`) for this roster, so that no removed device holds its secret and
    every reader has been given it.
    """
    if team.member(keeper) is not None:
        raise KeeperError("the keeper cannot be a device of the team's own roster")
    entitled = readers(team)
    if needs_rotation(epoch, team):
        raise KeeperError("the epoch's secret is held by a removed device: rotate first")
    if not entitled <= epoch.holders:
        raise KeeperError("the epoch was not advanced for the current roster")
    dissolved = team.state is TeamState.DISSOLVED
    held: dict[str, HeldFolder] = {}
    control = keeper_folder_id(team.team_id)
    held[control] = HeldFolder(control, HeldKind.CONTROL, entitled, 0, neutral_label(control))
    if not dissolved:
        # After dissolution nothing new is written: K keeps only the control file, which
        # says so, for members that were away.
        report = report_folder_id(team.team_id)
        held[report] = HeldFolder(report, HeldKind.REPORT, entitled, 0, neutral_label(report))
        for owner in sorted(entitled):
            fid = folder_id(team.team_id, owner)
            held[fid] = HeldFolder(
                fid, HeldKind.CONTENT, entitled, epoch.number, neutral_label(fid)
            )
    links: dict[str, dict[str, str | None]] = {device: {} for device in entitled}
    for fid, folder in held.items():
        password = folder_password(epoch, fid) if folder.kind is HeldKind.CONTENT else None
        for device in folder.devices:
            links[device][fid] = password
    return KeeperPlan(
        team_id=team.team_id,
        keeper=keeper,
        leader=team.leader_device,
        epoch=epoch.number,
        dissolved=dissolved,
        held=held,
        links=links,
        recipients=entitled - {team.leader_device},
    )
