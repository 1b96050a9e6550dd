"""The reconcile loop: read, decide (pure), act, report.

Triggered by local changes (`wake`), by relevant Syncthing events and by a slow safety
sweep. One cycle reads Syncthing's configuration once, reads teammates' state files
(cached by size and mtime), applies what they imply to the store in one transaction,
plans, and executes. An idle cycle writes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import anyio

from karmad import logs, protocol
from karmad.bus import Bus, Clock, Subscription
from karmad.domain import EventKind, Phase, SyncEvent, folder_id, is_folder_id
from karmad.health import Health
from karmad.keeper.control import CONTROL_NAME, KEYS_NAME
from karmad.paths import managed_folder, project_dir
from karmad.store import Store, StoreError
from karmad.sync import ingest as ingest_mod
from karmad.sync import integritystore, keeperstore, statefile, teamstore
from karmad.sync import plan as p
from karmad.sync.desired import desired as compute_desired
from karmad.sync.executor import UNSIGNED, Executor, Outcome, Signer
from karmad.sync.keeper_side import KeeperSide
from karmad.sync.model import (
    Desired,
    DeviceConfig,
    FolderConfig,
    FolderType,
    Inbox,
    LocalTeam,
    Me,
    Observed,
    Offer,
    Outbox,
    PeerState,
    Policy,
    TrustedLeader,
)
from karmad.sync.port import SyncthingPort, SyncthingUnavailable

log = logs.get("karmad.sync")

WAKE_TOPICS = (
    "syncthing.config.saved",
    "syncthing.pending",
    "syncthing.item.finished",
    "syncthing.stream",
    "syncthing.resynced",
    "syncthing.folder.local_changes",
    "syncthing.device.connected",
    "syncthing.folder.foreign_changes",
)
"""Syncthing events after which our view of peers or offers may have changed (or an
inbox needs reverting, or one of our own folders overriding). Of the files that arrive,
only `state` files matter here (sessions are the receiver's)."""

REVERT_COOLDOWN = timedelta(seconds=30)
_WATCHED_FILES = (statefile.STATE_NAME, KEYS_NAME, CONTROL_NAME)


@dataclass(frozen=True, slots=True)
class _InboxOwner:
    """Who may write an inbox's `state`, from our own records only."""

    owner: str
    leader: str
    signed: bool
    """Only a file its owner signed is believed (`_signed_teams`, `_relayed`)."""


@dataclass
class _PeerCache:
    key: tuple[int, int, int]
    owner: _InboxOwner
    peer: PeerState


@dataclass
class CycleReport:
    started_at: datetime
    duration_ms: float
    actions: int
    failed: int
    changes: int


@dataclass
class ReconcilerState:
    state: protocol.SyncState = "starting"
    cycles: int = 0
    last: CycleReport | None = None
    desired: Desired | None = None
    teams: int = 0
    next_deadline: datetime | None = None
    reported: set[tuple[str, str]] = field(default_factory=set)
    """(folder or device, digest or reason) already written to the audit log."""


class Reconciler:
    def __init__(
        self,
        store: Store,
        port: SyncthingPort,
        folders_dir: Path,
        bus: Bus,
        health: Health,
        clock: Clock,
        *,
        policy: Policy | None = None,
        sweep_interval: float = 60.0,
        debounce: float = 0.05,
        sealing_key_path: Path | None = None,
        signer: Signer | None = None,
    ) -> None:
        self._store = store
        self._port = port
        self._folders_dir = folders_dir
        self._bus = bus
        self._health = health
        self._clock = clock
        self.policy = policy or Policy()
        self._sweep = sweep_interval
        self._debounce = debounce
        self._wake = anyio.Event()
        self._peer_cache: dict[str, _PeerCache] = {}
        self._ignores: dict[str, tuple[str, ...]] = {}
        self.executor = Executor(port, store, folders_dir, clock, signer)
        self.keepers = KeeperSide(store, port, folders_dir, sealing_key_path)
        self.status = ReconcilerState()
        self._cycle_done = anyio.Event()
        self._peers: dict[str, PeerState] = {}
        self._purges: set[tuple[str, str]] = set()
        """(team, project) whose received sessions are to be deleted (see `PurgeReceived`)."""
        self._dismissals: set[Offer] = set()
        """Offers to dismiss: kept until Syncthing no longer has them."""
        self._knocked: dict[str, datetime] = {}
        """Devices seen dialling us while unknown, and when (see `_knocking`)."""
        self._reverted: dict[str, datetime] = {}
        """Inboxes reverted, and when: Syncthing reports the change only after its next
        scan, so the same report is not acted on twice within `REVERT_COOLDOWN`."""
        self._overridden: dict[str, datetime] = {}
        """Own folders overridden, and when: the same, for `OverrideOwnFolder`."""

    # ------------------------------------------------------------------ triggers

    def wake(self) -> None:
        self._wake.set()

    def request_purge(self, team_id: str, project_key: str) -> None:
        """Delete what was received for a project once its inboxes no longer admit it."""
        self._purges.add((team_id, project_key))
        self.wake()

    def request_dismiss(self, *, device: str, folder: str = "") -> None:
        """Dismiss a pending offer in Syncthing at the next cycle (handlers cannot wait)."""
        self._dismissals.add(Offer(device, folder))
        self.wake()

    def outboxes(self) -> tuple[Outbox, ...]:
        """Where the packager writes now (empty until the first cycle)."""
        want = self.status.desired
        return () if want is None else want.outboxes

    def inboxes(self) -> tuple[Inbox, ...]:
        want = self.status.desired
        return () if want is None else want.inboxes

    def peer_states(self) -> dict[str, PeerState]:
        """Teammates' last validated state files, by folder id (for views)."""
        return self._peers

    def status_view(self, now: datetime) -> protocol.SyncStatus:
        """`sync.status` as far as the reconciler knows (the caller adds project flows)."""
        last = self.status.last
        want = self.status.desired
        return protocol.SyncStatus(
            state=self.status.state,
            cycles=self.status.cycles,
            last_cycle_at=last.started_at if last else None,
            last_cycle_ms=round(last.duration_ms, 2) if last else None,
            last_actions=last.actions if last else 0,
            failures=[
                protocol.SyncFailure(
                    action=f.action,
                    target=f.key,
                    error=f.error,
                    attempts=f.attempts,
                    next_retry_s=wait,
                )
                for f, wait in self.executor.failure_summaries(now)
            ],
            teams=self.status.teams,
            folders=len(want.folders) if want else 0,
            devices=len(want.devices) if want else 0,
        )

    async def wait_cycle(self) -> None:
        """For callers that must see the effect of their change (benchmarks, tests)."""
        await self._cycle_done.wait()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        sub = self._bus.subscribe(WAKE_TOPICS, buffer=1000)
        # The first cycle runs at once: what happened while karmad was down (a team
        # dissolved, a member added) has no event of its own.
        self.wake()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._forward_events, sub)
            task_status.started()
            while True:
                with anyio.move_on_after(self._sleep_for()):
                    await self._wake.wait()
                await anyio.sleep(self._debounce)
                self._wake = anyio.Event()
                await self.cycle()

    async def _forward_events(self, sub: Subscription) -> None:
        while True:
            async with sub.receive:
                async for event in sub.receive:
                    if (
                        event.topic == "syncthing.item.finished"
                        and event.data.get("item") not in _WATCHED_FILES
                    ):
                        continue
                    if event.topic == "syncthing.pending.devices":
                        self._note_knocks(event.data)
                    self.wake()
            # Fell behind (overflow): that only means "something changed"; resubscribe.
            self.wake()
            sub = self._bus.subscribe(WAKE_TOPICS, buffer=1000)

    def _note_knocks(self, data: dict[str, object]) -> None:
        added = data.get("added")
        for entry in added if isinstance(added, list) else ():
            device = entry.get("device") if isinstance(entry, dict) else None
            if isinstance(device, str):
                self._knocked[device] = self._clock()

    def _knocking(self, now: datetime) -> frozenset[str]:
        """Devices dialling us: pending now, or pending moments ago.

        Syncthing forgets a pending device the moment it is configured, which can be in
        the very cycle that learns it knocked; remembered for `dial_delay` (after which
        every device is dialled anyway), the knock still gets it dialled back at once.
        """
        horizon = now - self.policy.dial_delay
        self._knocked = {d: t for d, t in self._knocked.items() if t > horizon}
        pending = {d.device_id for d in self._port.pending_devices()}
        return frozenset(self._knocked.keys() | pending)

    def _revertable(self, now: datetime) -> frozenset[str]:
        return self._port.locally_changed() - _cooling(self._reverted, now).keys()

    def _overridable(self, now: datetime) -> frozenset[str]:
        return self._port.foreign_changes() - _cooling(self._overridden, now).keys()

    def _sleep_for(self) -> float:
        """Until the sweep, or sooner when a grace or linger period ends before it."""
        deadlines = [
            d
            for d in (self.status.next_deadline, self.keepers.next_check(self._clock()))
            if d is not None
        ]
        if not deadlines:
            return self._sweep
        deadline = min(deadlines)
        seconds = (deadline - self._clock()).total_seconds() + 0.05
        return max(0.0, min(self._sweep, seconds))

    # ------------------------------------------------------------------ cycle

    def _me(self) -> Me | None:
        identity = teamstore.get_identity(self._store)
        device = self._port.device_id()
        if identity is None or device is None:
            return None
        return Me(device, identity.member_tag, self._port.advertised_addresses())

    async def cycle(self) -> CycleReport | None:
        started = self._clock()
        t0 = time.perf_counter()
        me = self._me()
        if me is None:
            self._set_state(
                "not-initialised" if teamstore.get_identity(self._store) is None else "waiting"
            )
            self._finish()
            return None
        try:
            report = await self._cycle(me, started, t0)
        except SyncthingUnavailable as exc:
            self._set_state("waiting", f"Syncthing unavailable: {exc}")
            self._finish()
            return None
        except (OSError, StoreError) as exc:
            log.error("reconcile_failed", error=str(exc))
            self._set_state("error", str(exc))
            self._finish()
            return None
        except Exception as exc:  # a bug here must not take the daemon down
            log.exception("reconcile_crashed")
            self._set_state("error", f"{type(exc).__name__}: {exc}")
            self._finish()
            return None
        self.status.cycles += 1
        self.status.last = report
        failures = len(self.executor.failures)
        self._set_state(
            "idle" if not failures else "degraded",
            f"{failures} action(s) failing" if failures else "",
        )
        self._finish()
        return report

    def _finish(self) -> None:
        self._cycle_done.set()
        self._cycle_done = anyio.Event()

    def _set_state(self, state: protocol.SyncState, detail: str = "") -> None:
        self.status.state = state
        self._health.set("sync", state, detail)

    async def _cycle(self, me: Me, now: datetime, t0: float) -> CycleReport:
        devices, folders = await self._port.read_config()
        teams = tuple(teamstore.teams(self._store))
        trusted = tuple(teamstore.trusted_leaders(self._store))
        signed = self._signed_teams(me, teams, folders, now)
        owners = self._inbox_owners(me, teams, trusted, folders, signed)
        peers = await anyio.to_thread.run_sync(self._read_peers, owners)
        if self._learn_signed(teams, peers, now):
            # Files of those teams read a moment ago as unsigned-allowed are read again.
            signed = integritystore.signed_teams(self._store)
            owners = self._inbox_owners(me, teams, trusted, folders, signed)
            peers = await anyio.to_thread.run_sync(self._read_peers, owners)
        peers = self._not_replayed(peers, now)
        self._peers = peers
        self._audit_rejected(peers, now)

        changes = ingest_mod.ingest(me, teams, peers, trusted, now, self.policy)
        if changes:
            with self._store.transaction():
                events = teamstore.apply_changes(self._store, changes, now)
            for event in events:
                self._publish_audit(event)
            teams = tuple(teamstore.teams(self._store))

        keepers, joins = self.keepers.prepare(me, teams, peers, now)
        observed = await self._observe(me, teams, devices, folders, now)
        want = compute_desired(
            me,
            teams,
            peers,
            trusted,
            self._port.pending_folders(),
            now,
            self.policy,
            managed_devices=observed.managed_devices,
            present_folders=frozenset(folders),
            knocking=self._knocking(now),
            dismissed=frozenset(self._dismissals),
            purges=frozenset(self._purges),
            keepers=keepers,
            join_secrets=joins,
            sealing_key=self.keepers.sealing_public(),
        )
        self._audit_unexpected(want, now)
        outcome = await self.executor.execute(p.plan(want, observed, self._folders_dir))
        self._after(want, observed, outcome, now)
        self.status.teams = len(teams)
        self.status.next_deadline = ingest_mod.next_deadline(teams, now, self.policy)
        if outcome.done or changes:
            self._bus.publish(
                "sync.cycle",
                {
                    "actions": len(outcome.done),
                    "failed": len(outcome.failed),
                    "changes": len(changes),
                },
            )
        return CycleReport(
            started_at=now,
            duration_ms=(time.perf_counter() - t0) * 1000,
            actions=len(outcome.done),
            failed=len(outcome.failed),
            changes=len(changes),
        )

    async def _observe(
        self,
        me: Me,
        teams: tuple[LocalTeam, ...],
        devices: dict[str, DeviceConfig],
        folders: dict[str, FolderConfig],
        now: datetime,
    ) -> Observed:
        """Syncthing's configuration as read this cycle, with what karmad keeps of it."""
        for fid in folders:
            if fid not in self._ignores:
                self._ignores[fid] = await self._port.read_ignores(fid)
        offers = {Offer(d.device_id) for d in self._port.pending_devices()}
        offers |= {Offer(f.offered_by, f.folder_id) for f in self._port.pending_folders()}
        received = await anyio.to_thread.run_sync(self._received, folders)
        return Observed(
            devices=devices,
            folders=folders,
            ignores={f: i for f, i in self._ignores.items() if f in folders},
            state_digests=self._published(me, teams),
            managed_devices=teamstore.managed_devices(self._store),
            locally_changed=self._revertable(now),
            foreign_changes=self._overridable(now),
            offers=frozenset(offers),
            received=received,
            keeper_digests=dict(self.executor.keeper_written),
        )

    def _received(self, folders: dict[str, FolderConfig]) -> frozenset[tuple[str, str]]:
        """What is on disk of the projects whose purge was asked for."""
        return frozenset(
            (fid, key)
            for fid in folders
            for _, key in self._purges
            if project_dir(self._folders_dir, fid, key).is_dir()
        )

    def _after(self, want: Desired, observed: Observed, outcome: Outcome, now: datetime) -> None:
        """Keep what the actions changed, and forget the requests they carried out."""
        for action in outcome.done:
            if isinstance(action, p.SetIgnores):
                self._ignores[action.folder_id] = action.patterns
            elif isinstance(action, p.RemoveFolder):
                self._ignores.pop(action.folder_id, None)
            elif isinstance(action, p.RevertInbox):
                self._reverted[action.folder_id] = now
                log.info("inbox_reverted", folder=action.folder_id)
                self._bus.publish("sync.inbox.reverted", {"folder": action.folder_id})
            elif isinstance(action, p.OverrideOwnFolder):
                self._overridden[action.folder_id] = now
                self._audit_override(want, action.folder_id, now)
        after = p.apply(observed, outcome.done)
        self._dismissals &= after.offers
        self._purges = {r for r in self._purges if not p.purge_settled(want, after, *r)}
        previous = self.status.desired
        self.status.desired = want
        if previous is None or (previous.outboxes, previous.inboxes) != (
            want.outboxes,
            want.inboxes,
        ):
            self._bus.publish(
                "sync.outboxes",
                {"outboxes": len(want.outboxes), "inboxes": len(want.inboxes)},
                remember=False,
            )

    # ------------------------------------------------------------------ peers

    def _signed_teams(
        self,
        me: Me,
        teams: tuple[LocalTeam, ...],
        folders: dict[str, FolderConfig],
        now: datetime,
    ) -> frozenset[str]:
        """Teams whose state files must be signed, marked once and never unmarked
        (docs/keeper.md 2.3): those with a keeper, and those with an inbox Syncthing
        shares with a device besides its owner (it could write there; what it wrote
        stays after it is taken off the folder)."""
        known = {t.team_id for t in teams}
        marked = set(keeperstore.keepers(self._store).keys() & known)
        for team in teams:
            if team.phase is Phase.GONE or team.team_id in marked:
                continue
            for fid, owner in _team_inboxes(me, team):
                if _relayed(me, fid, owner, folders):
                    marked.add(team.team_id)
                    break
        integritystore.require_signatures(self._store, marked, now)
        return integritystore.signed_teams(self._store)

    def _learn_signed(
        self, teams: tuple[LocalTeam, ...], peers: dict[str, PeerState], now: datetime
    ) -> frozenset[str]:
        """Mark the teams whose leader's file names a keeper; returns the new ones."""
        named = set()
        for team in teams:
            peer = peers.get(folder_id(team.team_id, team.leader_device))
            if peer is not None and peer.state is not None and peer.state.keeper is not None:
                named.add(team.team_id)
        return integritystore.require_signatures(self._store, named, now)

    def _inbox_owners(
        self,
        me: Me,
        teams: tuple[LocalTeam, ...],
        trusted: tuple[TrustedLeader, ...],
        folders: dict[str, FolderConfig],
        signed: frozenset[str],
    ) -> dict[str, _InboxOwner]:
        """Folder id -> who owns it and leads its team, and whether only a signed file
        is believed there: in a team that requires signatures, and in any inbox that
        Syncthing shares with a device besides its owner (that device could write it)."""
        owners: dict[str, _InboxOwner] = {}

        def add(fid: str, owner: str, leader: str, team_signed: bool) -> None:
            relayed = _relayed(me, fid, owner, folders)
            owners[fid] = _InboxOwner(owner, leader, team_signed or relayed)

        for team in teams:
            if team.phase is Phase.GONE:
                continue
            for fid, owner in _team_inboxes(me, team):
                add(fid, owner, team.leader_device, team.team_id in signed)
        trusted_devices = {t.device_id for t in trusted}
        for fid, config in folders.items():
            if fid in owners:
                continue
            if config.type is FolderType.RECEIVEONLY:
                leaders = (config.devices - {me.device_id}) & trusted_devices
                if len(leaders) == 1:
                    leader = next(iter(leaders))
                    add(fid, leader, leader, False)
        return owners

    def _read_peers(self, owners: dict[str, _InboxOwner]) -> dict[str, PeerState]:
        peers: dict[str, PeerState] = {}
        for fid, who in owners.items():
            if not is_folder_id(fid):
                continue
            path = managed_folder(self._folders_dir, fid) / statefile.STATE_NAME
            try:
                st = path.stat()
            except OSError:
                self._peer_cache.pop(fid, None)
                continue
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
            cached = self._peer_cache.get(fid)
            if cached is not None and cached.key == key and cached.owner == who:
                peers[fid] = cached.peer
                continue
            peer = _read_peer(path, fid, who)
            self._peer_cache[fid] = _PeerCache(key, who, peer)
            peers[fid] = peer
        return peers

    def _not_replayed(self, peers: dict[str, PeerState], now: datetime) -> dict[str, PeerState]:
        """Refuse a file older than one already believed from the same folder (a genuine
        file replayed by whoever can write there); keep each folder's highest `seq`."""
        highest = integritystore.state_seqs(self._store)
        raised: dict[str, int] = {}
        result: dict[str, PeerState] = {}
        for fid, peer in peers.items():
            state = peer.state
            seen = highest.get(fid, -1)
            if state is not None and state.seq < seen:
                reason = f"stale: sequence number {state.seq}, {seen} was seen before"
                result[fid] = PeerState(fid, peer.owner_device, None, reason, peer.digest)
                continue
            if state is not None and state.seq > seen:
                raised[fid] = state.seq
            result[fid] = peer
        if raised:
            integritystore.raise_state_seqs(self._store, raised, now)
        return result

    def _published(self, me: Me, teams: tuple[LocalTeam, ...]) -> dict[str, str]:
        digests = teamstore.published_digests(self._store)
        can_sign = self.executor.can_sign()
        result: dict[str, str] = {}
        for team in teams:
            fid = folder_id(team.team_id, me.device_id)
            digest = digests.get(team.team_id)
            if digest and not can_sign:
                # Written unsigned and still no key: as good as it gets, nothing to redo.
                digest = digest.removeprefix(UNSIGNED)
            if digest and (managed_folder(self._folders_dir, fid) / statefile.STATE_NAME).exists():
                result[fid] = digest
        return result

    # ------------------------------------------------------------------ audit

    def _record(self, key: tuple[str, str], event: SyncEvent) -> None:
        if key in self.status.reported:
            return
        self.status.reported.add(key)
        teamstore.append_event(self._store, event)
        self._publish_audit(event)

    def _publish_audit(self, event: SyncEvent) -> None:
        self._bus.publish(
            f"team.{event.kind.value}",
            {
                "team_id": event.team_id,
                "member": event.member_tag,
                "device": event.device_id,
                "project": event.project_key,
                **event.detail,
            },
        )

    def _audit_override(self, want: Desired, fid: str, now: datetime) -> None:
        """Every override is recorded: it means another device wrote in our folder."""
        log.warning("folder_overridden", folder=fid)
        folder = want.folders.get(fid)
        event = SyncEvent(
            EventKind.FOLDER_OVERRIDDEN,
            now,
            team_id=folder.team_id if folder else None,
            device_id=folder.owner_device if folder else None,
            detail={
                "folder": fid,
                "reason": "another device changed this member's own folder; its version "
                "was restored",
            },
        )
        teamstore.append_event(self._store, event)
        self._publish_audit(event)

    def _audit_rejected(self, peers: dict[str, PeerState], now: datetime) -> None:
        for peer in peers.values():
            if peer.error is None:
                continue
            log.warning(
                "state_rejected", folder=peer.folder_id, device=peer.owner_device, reason=peer.error
            )
            self._record(
                (peer.folder_id, peer.digest or peer.error),
                SyncEvent(
                    EventKind.STATE_REJECTED,
                    now,
                    None,
                    None,
                    peer.owner_device,
                    None,
                    {"folder": peer.folder_id, "reason": peer.error},
                ),
            )

    def _audit_unexpected(self, want: Desired, now: datetime) -> None:
        for offer in self._port.pending_folders():
            if offer.folder_id in want.folders:
                continue
            self._record(
                (offer.folder_id, offer.offered_by),
                SyncEvent(
                    EventKind.OFFER_REJECTED,
                    now,
                    device_id=offer.offered_by,
                    detail={
                        "folder": offer.folder_id[:80],
                        "label": offer.label[:80],
                        "reason": "not expected by any team; left for the user (karmactl pending)",
                    },
                ),
            )
        for device in self._port.pending_devices():
            if device.device_id in want.devices:
                continue
            self._record(
                (device.device_id, "pending-device"),
                SyncEvent(
                    EventKind.OFFER_REJECTED,
                    now,
                    member_tag=None,
                    device_id=device.device_id,
                    detail={
                        "name": device.name[:80],
                        "reason": "unknown device; left for the user (karmactl pending)",
                    },
                ),
            )


def _team_inboxes(me: Me, team: LocalTeam) -> list[tuple[str, str]]:
    """(folder id, owner) of the team's folders whose `state` we read: the leader's, and
    every other member's the record names."""
    leader = team.leader_device
    inboxes = {folder_id(team.team_id, leader): leader}
    if team.record is not None:
        for member in team.record.members:
            if member.device_id != me.device_id:
                inboxes[folder_id(team.team_id, member.device_id)] = member.device_id
    return list(inboxes.items())


def _relayed(me: Me, fid: str, owner: str, folders: dict[str, FolderConfig]) -> bool:
    """Does Syncthing share this inbox with a device besides its owner (and us)? That
    device could write into it. Our own folder is shared with the whole team."""
    config = folders.get(fid)
    if owner == me.device_id or config is None:
        return False
    return bool(config.devices - {me.device_id, owner})


def _read_peer(path: Path, fid: str, who: _InboxOwner) -> PeerState:
    owner = who.owner
    try:
        with path.open("rb") as f:
            data = f.read(statefile.MAX_STATE_BYTES + 1)
    except OSError as exc:
        return PeerState(fid, owner, None, f"unreadable: {exc.strerror}")
    try:
        state = statefile.parse(
            data,
            folder=fid,
            owner_device=owner,
            leader_device=who.leader,
            require_signature=who.signed,
        )
    except statefile.InvalidState as exc:
        return PeerState(fid, owner, None, str(exc), statefile.digest(data))
    return PeerState(fid, owner, state, None, statefile.digest(data))


def _cooling(acted: dict[str, datetime], now: datetime) -> dict[str, datetime]:
    """Forget what was acted on more than `REVERT_COOLDOWN` ago; what remains is still
    waiting for Syncthing's next report after the action."""
    for fid, at in list(acted.items()):
        if now - at >= REVERT_COOLDOWN:
            del acted[fid]
    return acted
