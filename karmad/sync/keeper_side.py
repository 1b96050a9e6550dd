"""What the reconciler keeps up to date about each team's keeper before deciding.

On the leader: the password epoch, advanced for the current roster (a removal starts a
new one with a fresh secret, docs/keeper.md 2.4). On a member: the keeper the leader's
state file names, the secret the leader's `keys` file seals for us, and whether the
keeper dropped us (a rotation we missed: 2.6, step 4). Effects on the store and reads of
files happen here; the decisions are `keeper.epoch.advance` and `keeping`.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from karmad import atomic_file, deviceid, logs
from karmad.domain import Phase, folder_id
from karmad.keeper import control as kc
from karmad.keeper.epoch import SECRET_BYTES, Epoch, advance
from karmad.keeper.plan import HeldKind, keeper_folder_id
from karmad.paths import managed_folder
from karmad.store import Store
from karmad.sync import keeper_files, keeperstore
from karmad.sync.model import LocalTeam, Me, PeerState, Role, TeamKeeper
from karmad.sync.port import SyncthingPort
from karmad.trust import wrap

log = logs.get("karmad.keeper")

SETTLE = timedelta(seconds=10)
"""After a rotation, and after falling back, the keeper is listed with our passwords again
only once it has been connected (on the keeper folder alone) this long: time to read
the leader's new control file and re-create its folders under the new passwords."""
FALLBACK_AFTER = timedelta(seconds=30)
"""A keeper listed with our passwords but not connected for this long: list it on the
keeper folder only. If it is simply offline this costs nothing; if it closes every
connection because our passwords are from an old epoch, this is the only way to read
the new key file through it."""


class KeeperSide:
    def __init__(
        self, store: Store, port: SyncthingPort, folders_dir: Path, sealing_key_path: Path | None
    ) -> None:
        self._store = store
        self._port = port
        self._folders_dir = folders_dir
        self._sealing_key_path = sealing_key_path
        self._sealing_key: wrap.SealingKey | None = None
        self._unseen_since: dict[str, datetime] = {}
        """Team -> since when its keeper is listed with our passwords and not connected."""
        self._connected_since: dict[str, datetime] = {}
        """Team -> since when its keeper has been connected without interruption."""
        self.fallback: set[str] = set()
        """Teams whose keeper we list on the keeper folder only."""
        self.problems: dict[str, str] = {}
        """Team -> why we hold no usable epoch (shown by `keeper.status`)."""

    # ------------------------------------------------------------------ own key

    def sealing_key(self) -> wrap.SealingKey | None:
        if self._sealing_key is None and self._sealing_key_path is not None:
            self._sealing_key = _load_or_create(self._sealing_key_path)
        return self._sealing_key

    def sealing_public(self) -> bytes | None:
        key = self.sealing_key()
        return None if key is None else key.public_bytes()

    # ------------------------------------------------------------------ each cycle

    def prepare(
        self, me: Me, teams: tuple[LocalTeam, ...], peers: dict[str, PeerState], now: datetime
    ) -> tuple[dict[str, TeamKeeper], dict[str, dict[str, bytes]]]:
        """The keepers to decide with (each current for its team) and, for teams we
        lead, the join secrets of pending invites."""
        result: dict[str, TeamKeeper] = {}
        joins: dict[str, dict[str, bytes]] = {}
        stored = keeperstore.keepers(self._store)
        for team in teams:
            if team.phase is Phase.GONE:
                continue
            if team.role is Role.LEADER:
                k = stored.get(team.team_id)
                if k is None or team.record is None:
                    continue
                before = k.epoch
                k = self._advance(k, team)
                joins[team.team_id] = self._joins(team, peers)
                rotated = before is not None and k.epoch != before
                fallback = k.removed_at is None and self._fallen_back(team, k, now, rotated)
                result[team.team_id] = replace(k, fallback=fallback)
            else:
                k = self._learn(stored.get(team.team_id), team, peers, now)
                if k is None:
                    continue
                before = k.epoch
                k = self._open_keys(me, team, k)
                rotated = before is not None and k.epoch != before
                k = replace(k, generations=self._generations(team, k))
                result[team.team_id] = replace(k, fallback=self._fallen_back(team, k, now, rotated))
        return result, joins

    def _advance(self, k: TeamKeeper, team: LocalTeam) -> TeamKeeper:
        assert team.record is not None
        if k.removed_at is not None:
            return k
        current = (
            None if k.epoch is None or k.secret is None else Epoch(k.epoch, k.secret, k.holders)
        )
        nxt = advance(current, team.record, secrets.token_bytes(SECRET_BYTES))
        if nxt is current:
            return k
        updated = replace(
            k, epoch=nxt.number, secret=nxt.secret, holders=nxt.holders, current_epoch=nxt.number
        )
        keeperstore.put(self._store, updated)
        if current is None or nxt.number != current.number:
            log.info("keeper_epoch", team=team.team_id, epoch=nxt.number)
        return updated

    def _joins(self, team: LocalTeam, peers: dict[str, PeerState]) -> dict[str, bytes]:
        """Join secrets still needed: forgotten once the member published its own key."""
        joins = keeperstore.join_secrets(self._store, team.team_id)
        for device in list(joins):
            peer = peers.get(folder_id(team.team_id, device))
            if peer is not None and peer.state is not None and peer.state.sealing_key:
                keeperstore.forget_join_secret(self._store, team.team_id, device)
                del joins[device]
        return joins

    def _learn(
        self,
        k: TeamKeeper | None,
        team: LocalTeam,
        peers: dict[str, PeerState],
        now: datetime,
    ) -> TeamKeeper | None:
        """The keeper the leader's state file names wins over what the invite said; a
        leader's file naming none means the keeper was removed."""
        if team.phase not in (Phase.JOINING, Phase.MEMBER):
            if k is not None:
                keeperstore.delete(self._store, team.team_id)
            return None
        peer = peers.get(folder_id(team.team_id, team.leader_device))
        body = None if peer is None else peer.state
        if body is None or body.team is None:
            return k
        named = body.keeper
        if named is None:
            if k is not None:
                keeperstore.delete(self._store, team.team_id)
                log.info("keeper_dropped", team=team.team_id)
            return None
        try:
            valid = deviceid.parse(named.device_id) == named.device_id
        except deviceid.InvalidDeviceId:
            valid = False
        if (
            not valid
            or body.team.leader_device == named.device_id
            or any(m.device_id == named.device_id for m in body.team.members)
        ):
            self.problems[team.team_id] = "the leader's state names an invalid keeper; ignored"
            return k
        addresses = tuple(named.addresses)[:16]
        if k is None or k.device_id != named.device_id:
            k = TeamKeeper(team.team_id, named.device_id, addresses, now)
            keeperstore.put(self._store, k)
        elif k.addresses != addresses:
            k = replace(k, addresses=addresses)
            keeperstore.put(self._store, k)
        return k

    def _open_keys(self, me: Me, team: LocalTeam, k: TeamKeeper) -> TeamKeeper:
        kfid = keeper_folder_id(team.team_id)
        path = managed_folder(self._folders_dir, kfid) / kc.KEYS_NAME
        try:
            data = path.read_bytes()[: kc.MAX_BYTES + 1]
        except FileNotFoundError:
            return k
        except OSError as exc:
            self.problems[team.team_id] = f"key file unreadable: {exc.strerror}"
            return k
        try:
            opened = keeper_files.open_keys(
                data,
                folder=kfid,
                leader=team.leader_device,
                me=me.device_id,
                sealing_key=self.sealing_key(),
                join_secret=k.join_secret,
            )
        except kc.InvalidControl as exc:
            self.problems[team.team_id] = f"key file refused: {exc}"
            return k
        updated = k
        if opened.secret is not None and (k.epoch is None or opened.epoch > k.epoch):
            updated = replace(k, epoch=opened.epoch, secret=opened.secret)
            log.info("keeper_epoch", team=team.team_id, epoch=opened.epoch)
        if updated.current_epoch != opened.epoch:
            updated = replace(updated, current_epoch=opened.epoch)
        if opened.secret is None:
            self.problems[team.team_id] = opened.problem or "nothing sealed for this device"
        else:
            self.problems.pop(team.team_id, None)
        if updated != k:
            keeperstore.put(self._store, updated)
        return updated

    def _generations(self, team: LocalTeam, k: TeamKeeper) -> tuple[tuple[str, int], ...] | None:
        """The password generation of each folder K holds, from the leader's control."""
        kfid = keeper_folder_id(team.team_id)
        path = managed_folder(self._folders_dir, kfid) / kc.CONTROL_NAME
        try:
            data = path.read_bytes()[: kc.MAX_BYTES + 1]
            control = kc.read_control(
                data, folder=kfid, leader=team.leader_device, keeper=k.device_id
            )
        except (OSError, kc.InvalidControl):
            return None
        return tuple((f.id, f.generation) for f in control.folders if f.kind is HeldKind.CONTENT)

    def _fallen_back(self, team: LocalTeam, k: TeamKeeper, now: datetime, rotated: bool) -> bool:
        """Whether to list the keeper on the keeper folder only (see `SETTLE` and
        `FALLBACK_AFTER`)."""
        team_id = team.team_id
        connected = bool(self._port.connected(k.device_id))
        if connected:
            self._connected_since.setdefault(team_id, now)
        else:
            self._connected_since.pop(team_id, None)
        if rotated:
            self.fallback.add(team_id)
            self._connected_since.pop(team_id, None)
            log.info("keeper_settling", team=team_id, epoch=k.epoch)
            return True
        if team_id in self.fallback:
            stale = k.current_epoch is not None and k.epoch != k.current_epoch
            since = self._connected_since.get(team_id)
            settled = since is not None and now - since >= SETTLE
            if settled and k.epoch is not None and not stale:
                self.fallback.discard(team_id)
                self._unseen_since.pop(team_id, None)
                log.info("keeper_relisted", team=team_id, epoch=k.epoch)
                return False
            return True
        if k.epoch is None:
            self._unseen_since.pop(team_id, None)
            return False
        if connected:
            # K closes a link whose passwords it does not follow a moment after opening
            # it, and Syncthing dials again every few seconds: only a link that lasts
            # stops the clock, or a member back from a missed rotation never falls back.
            up_since = self._connected_since[team_id]
            if team_id not in self._unseen_since or now - up_since >= SETTLE:
                self._unseen_since.pop(team_id, None)
                return False
        since = self._unseen_since.setdefault(team_id, now)
        if now - since >= FALLBACK_AFTER:
            self.fallback.add(team_id)
            log.info("keeper_fallback", team=team_id)
            return True
        return False

    def next_check(self, now: datetime) -> datetime | None:
        """When a fallback or a relisting may next be due (the reconciler wakes for it)."""
        # (A team in fallback keeps its clock; its deadline is past, and would make the
        # reconciler run again and again until K is listed again.)
        due = [
            t + FALLBACK_AFTER
            for team, t in self._unseen_since.items()
            if team not in self.fallback
        ]
        due += [t + SETTLE for team, t in self._connected_since.items() if team in self.fallback]
        # A deadline already past changes nothing by itself (a team in fallback waiting for
        # a key it cannot open yet): waking for it again would spin.
        return min((t for t in due if t > now), default=None)


def _load_or_create(path: Path) -> wrap.SealingKey:
    try:
        return wrap.SealingKey.from_bytes(path.read_bytes())
    except FileNotFoundError:
        pass
    key = wrap.SealingKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_file.write_atomic(path, key.private_bytes(), 0o600)
    os.chmod(path, 0o600)
    return key
