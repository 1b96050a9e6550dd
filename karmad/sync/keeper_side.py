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
from karmad.keeper.plan import keeper_folder_id
from karmad.paths import managed_folder
from karmad.store import Store
from karmad.sync import keeper_files, keeperstore
from karmad.sync.model import LocalTeam, Me, PeerState, Role, TeamKeeper
from karmad.sync.port import SyncthingPort
from karmad.trust import wrap

log = logs.get("karmad.keeper")

FALLBACK_AFTER = timedelta(seconds=30)
"""A keeper listed with our passwords but not connected for this long: list it on the
keeper folder only. If it is simply offline this costs nothing; if it closes every
connection because our passwords are from an old epoch, this is the only way to read
the new key file through it."""


STABLE_LINK = timedelta(seconds=10)
"""A link to the keeper that lasts this long is one: K closes a link whose passwords it
does not follow within a second of opening it, and Syncthing dials again every few
seconds, so "connected" alone would reset the fallback's clock at every attempt."""

FALLBACK_RECHECK = timedelta(seconds=2)
"""How often a team in fallback checks whether it may list the keeper again: nothing in
Syncthing's event stream says that the keeper now holds the keeper folder."""


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
        """Team -> since when its keeper is listed with our passwords and not connected
        (or connected only for moments)."""
        self._connected_since: dict[str, datetime] = {}
        """Team -> since when its keeper is connected without a break we saw."""
        self._rotated: dict[str, tuple[datetime, bool]] = {}
        """Team we lead -> when we started its current epoch, and whether K has been seen
        without the control file of that epoch since."""
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
                k = self._advance(k, team, now)
                joins[team.team_id] = self._joins(team, peers)
                result[team.team_id] = replace(k, fallback=self._fallen_back(team, k, now))
            else:
                k = self._learn(stored.get(team.team_id), team, peers, now)
                if k is None:
                    continue
                k = self._open_keys(me, team, k)
                result[team.team_id] = replace(k, fallback=self._fallen_back(team, k, now))
        return result, joins

    def _advance(self, k: TeamKeeper, team: LocalTeam, now: datetime) -> TeamKeeper:
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
        if current is not None and nxt.number != current.number:
            # K follows the new passwords only once it has the new control file, which
            # travels on the same link: keep that link up (keeper folder alone) until then.
            self.fallback.add(team.team_id)
            self._rotated[team.team_id] = (now, False)
            log.info("keeper_fallback", team=team.team_id, epoch=nxt.number)
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

    def _fallen_back(self, team: LocalTeam, k: TeamKeeper, now: datetime) -> bool:
        """Whether to list the keeper on the keeper folder only (see `FALLBACK_AFTER`):
        on a member, and on the leader (whose new passwords K follows only once the new
        control file reached it, through that folder)."""
        team_id = team.team_id
        connected = self._port.connected(k.device_id)
        if team_id in self.fallback:
            stale = k.current_epoch is not None and k.epoch != k.current_epoch
            # K holding our copy of the keeper folder means it has the control file of
            # our epoch: listing it with our passwords before that would make it drop
            # the link again.
            current = self._port.holds_all(keeper_folder_id(team_id), k.device_id)
            if team_id in self._rotated:
                # Right after our own rotation, "K holds it all" may still describe the
                # control file before it: believe it once K was seen behind, or once
                # K had ample time to fetch the new one.
                rotated_at, seen_behind = self._rotated[team_id]
                seen_behind = seen_behind or current is False
                self._rotated[team_id] = (rotated_at, seen_behind)
                current = current and (seen_behind or now - rotated_at >= FALLBACK_AFTER)
            if connected and k.epoch is not None and not stale and current:
                self.fallback.discard(team_id)
                self._rotated.pop(team_id, None)
                self._unseen_since.pop(team_id, None)
                log.info("keeper_relisted", team=team_id, epoch=k.epoch)
                return False
            return True
        if k.epoch is None:
            self._unseen_since.pop(team_id, None)
            self._connected_since.pop(team_id, None)
            return False
        if connected:
            # A link K closes again within a second (a password it does not follow) is no
            # link: only one that lasts stops the clock.
            started = self._connected_since.setdefault(team_id, now)
            if team_id not in self._unseen_since or now - started >= STABLE_LINK:
                self._unseen_since.pop(team_id, None)
                return False
        else:
            self._connected_since.pop(team_id, None)
        since = self._unseen_since.setdefault(team_id, now)
        if now - since >= FALLBACK_AFTER:
            self.fallback.add(team_id)
            log.info("keeper_fallback", team=team_id)
            return True
        return False

    def next_check(self, now: datetime) -> datetime | None:
        """When a fallback may next be due, or a team in fallback may be listed again
        (the reconciler wakes for it). A fallback's deadline is past: without a poll of
        its own the reconciler would run again and again until it ends."""
        due = [
            t + FALLBACK_AFTER
            for team, t in self._unseen_since.items()
            if team not in self.fallback
        ]
        if self.fallback:
            due.append(now + FALLBACK_RECHECK)
        return min(due, default=None)


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
