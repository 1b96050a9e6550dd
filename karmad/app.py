"""The one place where the daemon is wired together.

Start-up order matters and lives here only: directories and locks, the store, the RPC
socket, then the subsystems, all inside one root task group; shutdown unwinds it in
reverse when a signal or `daemon.shutdown` arrives.

The service manager hears about it: READY=1 once everything started with `tg.start` has
said so, STATUS= lines with the health summary while running, STOPPING=1 when shutdown
begins, and WATCHDOG=1 pings from the event loop when systemd watches.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup

from karmad import logs, sdnotify, state_guard
from karmad.api import archive as archive_api
from karmad.api import daemon as daemon_api
from karmad.api import doctor as doctor_api
from karmad.api import identity as identity_api
from karmad.api import index as index_api
from karmad.api import keeper as keeper_api
from karmad.api import keeper_mode as keeper_mode_api
from karmad.api import projects as projects_api
from karmad.api import resume as resume_api
from karmad.api import sessions as sessions_api
from karmad.api import share as share_api
from karmad.api import sync as sync_api
from karmad.api import syncthing as syncthing_api
from karmad.api import teams as teams_api
from karmad.api import usage as usage_api
from karmad.archive.archiver import Archiver
from karmad.bus import Bus, utc_now
from karmad.checks import archive as archive_checks
from karmad.checks import claude as claude_checks
from karmad.checks import disk as disk_checks
from karmad.checks import index as index_checks
from karmad.checks import keeper as keeper_checks
from karmad.checks import keeper_mode as keeper_mode_checks
from karmad.checks import store as store_checks
from karmad.checks import sync as sync_checks
from karmad.checks import syncthing as syncthing_checks
from karmad.checks import trust as trust_checks
from karmad.config import Config
from karmad.doctor import Doctor
from karmad.flow.packager import Packager
from karmad.flow.preview import Previewer
from karmad.flow.receiver import Receiver
from karmad.health import Health
from karmad.index import pricing
from karmad.index.discovery import Root
from karmad.index.queries import IndexQueries
from karmad.index.service import Indexer, open_index
from karmad.keeper.reconciler import KeeperReconciler
from karmad.lock import InstanceLock
from karmad.paths import Paths, ensure_private_dir
from karmad.redact import redactor_from_config
from karmad.resume.service import Resumer
from karmad.rpc.dispatch import Dispatcher
from karmad.rpc.router import Router
from karmad.rpc.server import RpcServer
from karmad.services import KeeperServices, Services
from karmad.state_schema import STATE_SCHEMA
from karmad.store import Store
from karmad.sync import teamstore
from karmad.sync.executor import Signer
from karmad.sync.identity import IdentityService
from karmad.sync.keepers import KeeperService
from karmad.sync.offers import OfferService
from karmad.sync.reconciler import Reconciler
from karmad.sync.teams import TeamService
from karmad.syncthing import home as syncthing_home
from karmad.syncthing.port import ServicePort
from karmad.syncthing.service import SyncthingService
from karmad.trust.keys import DeviceKey, TrustError

log = logs.get("karmad")

API_MODULES = (
    daemon_api,
    doctor_api,
    sessions_api,
    usage_api,
    index_api,
    syncthing_api,
    identity_api,
    teams_api,
    projects_api,
    sync_api,
    share_api,
    archive_api,
    resume_api,
    keeper_api,
)
"""Every `karmad.api` module; each registers its handlers with `register(router, services)`."""

CHECK_MODULES = (
    store_checks,
    claude_checks,
    disk_checks,
    index_checks,
    syncthing_checks,
    trust_checks,
    sync_checks,
    archive_checks,
    keeper_checks,
)
"""Every `karmad.checks` module; each registers its checks with `register(doctor, services)`."""


KEEPER_CHECK_MODULES = (store_checks, disk_checks)
"""The member's checks that apply to a keeper too (it has no Claude Code, index, teams
or archive); `keeper_mode_checks` adds its own."""


def build_router(services: Services) -> Router:
    router = Router()
    for module in API_MODULES:
        module.register(router, services)
    return router


def device_signer(syncthing: SyncthingService) -> Signer:
    """Our Syncthing device key, for the files a leader signs (docs/keeper.md 2.3)."""

    def key() -> DeviceKey:
        current = syncthing.keys.current()
        if current is None:
            raise TrustError(syncthing.keys.problem or "no Syncthing device key yet")
        return current

    return key


def build_keeper_router(services: KeeperServices) -> Router:
    """A keeper answers `daemon.*`, `events.*`, `doctor.*`, `syncthing.status` and its own
    `keeper.*` methods; everything else says it is a keeper (`wrong_mode`)."""
    router = Router()
    daemon_api.register_keeper(router, services)
    doctor_api.register(router, services)
    syncthing_api.register_status(router, services)
    keeper_mode_api.register(router, services)
    keeper_mode_api.refuse_the_rest(router)
    return router


@dataclass
class Locks:
    state: InstanceLock
    socket: InstanceLock

    def release(self) -> None:
        self.socket.release()
        self.state.release()


def prepare(paths: Paths) -> Locks:
    """Directories and single-instance locks, before any event loop exists.

    Two locks: one per state directory (two daemons must never share a store) and one per
    socket path (so a stale socket can be replaced knowing no live daemon owns it).
    """
    ensure_private_dir(paths.state_dir)
    ensure_private_dir(paths.socket.parent)
    state_lock = InstanceLock(paths.state_lock)
    state_lock.acquire()
    socket_lock = InstanceLock(paths.socket_lock)
    try:
        socket_lock.acquire()
    except BaseException:
        state_lock.release()
        raise
    return Locks(state_lock, socket_lock)


def assemble(
    paths: Paths,
    config: Config,
    store: Store,
    index_store: Store,
    backend: str,
    request_shutdown: Callable[[], None],
) -> tuple[Services, SyncthingService, Reconciler]:
    """Build every part and connect them; nothing starts until `Daemon.run`."""
    bus = Bus()
    health = Health(bus)
    doctor = Doctor(bus, timeout=config.doctor.check_timeout_s)
    indexer = Indexer(
        index_path=paths.index,
        config=config.index,
        prices=pricing.load_table(config.prices),
        bus=bus,
        health=health,
        roots=[
            Root(
                paths.claude_projects,
                origin="local",
                archive=paths.archive_projects if config.archive.enabled else None,
            )
        ],
    )
    archiver = Archiver(
        live=paths.claude_projects,
        archive=paths.archive_projects,
        replaced=paths.archive_replaced,
        index_path=paths.index,
        config=config.archive,
        bus=bus,
        health=health,
        clock=utc_now,
    )
    syncthing = SyncthingService(paths, config.syncthing, bus, health)
    port = ServicePort(syncthing)
    reconciler = Reconciler(
        store,
        port,
        paths.folders_dir,
        bus,
        health,
        utc_now,
        policy=config.teams.policy(),
        sweep_interval=config.teams.sweep_interval_s,
        sealing_key_path=paths.sealing_key,
        signer=device_signer(syncthing),
    )
    identity = IdentityService(store, port, reconciler, utc_now)
    redactor = redactor_from_config(config.redaction)

    def member_tag() -> str | None:
        identity = teamstore.get_identity(store)
        return None if identity is None else identity.member_tag

    packager = Packager(
        state_path=paths.store,
        index_path=paths.index,
        claude_dir=paths.claude_dir,
        folders_dir=paths.folders_dir,
        outboxes=reconciler.outboxes,
        member_tag=member_tag,
        scan=syncthing.stream.request_scan,
        redactor=redactor,
        bus=bus,
        health=health,
        clock=utc_now,
    )
    previewer = Previewer(
        redactor=redactor,
        bus=bus,
        outboxes=reconciler.outboxes,
        team_names=lambda: {t.team_id: t.name for t in teamstore.teams(store)},
        claude_dir=paths.claude_dir,
    )
    receiver = Receiver(
        indexer=indexer,
        inboxes=reconciler.inboxes,
        folders_dir=paths.folders_dir,
        store=store,
        bus=bus,
        clock=utc_now,
    )
    index = IndexQueries(index_store)
    teams = TeamService(store, port, reconciler, utc_now, identity, index.project_identities)
    resumer = Resumer(
        paths=paths,
        store=store,
        index=index,
        member=member_tag,
        bus=bus,
        clock=utc_now,
    )
    services = Services(
        paths=paths,
        config=config,
        store=store,
        bus=bus,
        health=health,
        backend=backend,
        started_at=utc_now(),
        request_shutdown=request_shutdown,
        syncthing=syncthing,
        identity=identity,
        teams=teams,
        offers=OfferService(store, port, reconciler, utc_now, identity),
        index=index,
        indexer=indexer,
        doctor=doctor,
        packager=packager,
        receiver=receiver,
        redactor=redactor,
        previewer=previewer,
        archiver=archiver,
        resumer=resumer,
        keepers=KeeperService(store, port, reconciler, utc_now, teams),
    )
    for checks in CHECK_MODULES:
        checks.register(doctor, services)
    return services, syncthing, reconciler


def assemble_keeper(
    paths: Paths, config: Config, store: Store, backend: str, request_shutdown: Callable[[], None]
) -> KeeperServices:
    """Keeper mode (`[keeper] enabled`): the store, the managed Syncthing, health, doctor
    and the keeper reconciler; nothing of a member (docs/keeper.md 2.11)."""
    bus = Bus()
    health = Health(bus)
    doctor = Doctor(bus, timeout=config.doctor.check_timeout_s)
    syncthing = SyncthingService(paths, config.syncthing, bus, health)
    port = ServicePort(syncthing)
    keeper = KeeperReconciler(
        store,
        port,
        paths.folders_dir,
        bus,
        health,
        utc_now,
        sweep_interval=config.keeper.sweep_interval_s,
    )
    services = KeeperServices(
        paths=paths,
        config=config,
        store=store,
        bus=bus,
        health=health,
        backend=backend,
        started_at=utc_now(),
        request_shutdown=request_shutdown,
        syncthing=syncthing,
        doctor=doctor,
        keeper=keeper,
        port=port,
    )
    for checks in KEEPER_CHECK_MODULES:
        checks.register(doctor, services)
    keeper_mode_checks.register(doctor, services)
    return services


class Daemon:
    def __init__(
        self,
        paths: Paths,
        config: Config,
        backend: str,
        *,
        notifier: sdnotify.Notifier | None = None,
    ) -> None:
        self.paths = paths
        self.config = config
        self.backend = backend
        self.notifier = notifier or sdnotify.Notifier.disabled()
        self._shutdown = anyio.Event()
        self.ready = False
        """Set once every subsystem has started: a failure before it is a start-up one."""

    def request_shutdown(self) -> None:
        self._shutdown.set()

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.info("signal", signal=signal.Signals(signum).name)
                self.request_shutdown()
                return

    async def run(self) -> None:
        # Before the store is opened: SQLite would make a missing or empty file a new
        # store, and this machine a new member without a word.
        witness = self.paths.syncthing_home / syncthing_home.CONFIG
        state_guard.check_before_open(self.paths.store, witness)
        store = Store.open(self.paths.store, STATE_SCHEMA)
        if self.config.keeper.enabled:
            # A keeper has no identity of its own to guard, and no index.
            try:
                await self._run_keeper(store)
            finally:
                store.close()
                if self.ready:
                    log.info("stopped")
            return
        try:
            identity = teamstore.get_identity(store)
            state_guard.check_after_open(
                self.paths.store,
                witness,
                None if identity is None else identity.member_tag,
                None if identity is None else identity.created_at,
            )
            # The index is derived data: a damaged or too new file is set aside and rebuilt.
            index_store = open_index(self.paths.index)
            try:
                await self._run(store, index_store)
            finally:
                index_store.close()
        finally:
            store.close()
            if self.ready:  # a start-up failure is said once, by the command line
                log.info("stopped")

    async def _run(self, store: Store, index_store: Store) -> None:
        services, syncthing, reconciler = assemble(
            self.paths, self.config, store, index_store, self.backend, self.request_shutdown
        )
        bus, health, doctor = services.bus, services.health, services.doctor
        router = build_router(services)
        dispatcher = Dispatcher(router.routes, self.config.rpc)
        server = RpcServer(self.paths.socket, dispatcher, bus, self.config.rpc)
        health.set("store", "ok", f"schema {store.schema_version}")
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_signals)
            await tg.start(server.serve)
            health.set("rpc", "listening", str(self.paths.socket))
            # After the socket: a long first scan runs in the background, never delaying it.
            await tg.start(services.indexer.run)
            # Before Syncthing starts: an outbox line a killed karmad left half-written
            # must be cut back before anything can scan it.
            await services.packager.recover()
            # Ready once Syncthing answers, or is known absent or failing: never later.
            await tg.start(syncthing.run)
            await tg.start(reconciler.run)
            await tg.start(services.receiver.run)
            await tg.start(services.packager.run)
            await tg.start(services.archiver.run)
            await tg.start(services.resumer.run)
            await tg.start(services.previewer.run)
            await tg.start(doctor.serve)
            # Every subsystem is started with `await tg.start(...)` above this line, so
            # READY=1 means all of them said they are up (or know they cannot be).
            self._announce_ready(tg, health, bus)
            await self._shutdown.wait()
            log.info("stopping")
            self.notifier.stopping("stopping")
            tg.cancel_scope.cancel()
        bus.close()

    async def _run_keeper(self, store: Store) -> None:
        services = assemble_keeper(
            self.paths, self.config, store, self.backend, self.request_shutdown
        )
        bus, health = services.bus, services.health
        dispatcher = Dispatcher(build_keeper_router(services).routes, self.config.rpc)
        server = RpcServer(self.paths.socket, dispatcher, bus, self.config.rpc)
        health.set("store", "ok", f"schema {store.schema_version}")
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_signals)
            await tg.start(server.serve)
            health.set("rpc", "listening", str(self.paths.socket))
            await tg.start(services.syncthing.run)
            await tg.start(services.keeper.run)
            await tg.start(services.doctor.serve)
            self._announce_ready(tg, health, bus)
            await self._shutdown.wait()
            log.info("stopping")
            self.notifier.stopping("stopping")
            tg.cancel_scope.cancel()
        bus.close()

    def _announce_ready(self, tg: TaskGroup, health: Health, bus: Bus) -> None:
        self.ready = True
        self.notifier.ready()
        log.info("ready", socket=str(self.paths.socket), backend=self.backend)
        if not self.notifier.enabled:
            return
        tg.start_soon(sdnotify.report_status, self.notifier, health.summary, bus)
        if (timeout := self.notifier.watchdog_timeout) is not None:
            log.info("watchdog", timeout_s=timeout)
            tg.start_soon(sdnotify.feed_watchdog, self.notifier, timeout)
