"""`daemon.*` and `events.subscribe`."""

from __future__ import annotations

import os
from collections.abc import Callable

import msgspec

from karmad import __version__, overview, protocol
from karmad.api.syncthing import pending
from karmad.errors import invalid_argument
from karmad.rpc.call import Call
from karmad.rpc.router import Router
from karmad.services import Core, Services


def register_core(router: Router, svc: Core) -> Callable[[], protocol.DaemonStatus]:
    """Everything but `daemon.overview`: a keeper answers these too. Returns the
    `daemon.status` builder, which the overview extends."""

    @router.method("daemon.hello")
    def hello(params: protocol.NoParams, call: Call) -> protocol.Hello:
        return protocol.Hello(
            protocol=protocol.PROTOCOL_VERSION,
            version=__version__,
            capabilities=list(protocol.CAPABILITIES),
        )

    @router.method("daemon.status")
    def status(params: protocol.NoParams, call: Call) -> protocol.DaemonStatus:
        return daemon_status()

    def daemon_status() -> protocol.DaemonStatus:
        now = svc.clock()
        p = svc.paths
        return protocol.DaemonStatus(
            version=__version__,
            protocol=protocol.PROTOCOL_VERSION,
            pid=os.getpid(),
            backend=svc.backend,
            started_at=svc.started_at,
            uptime_s=round((now - svc.started_at).total_seconds(), 3),
            paths=protocol.PathsInfo(
                config_file=str(p.config_file),
                state_dir=str(p.state_dir),
                runtime_dir=str(p.runtime_dir),
                socket=str(p.socket),
                claude_dir=str(p.claude_dir),
                store=str(p.store),
                index=str(p.index),
                log_dir=str(p.log_dir),
                syncthing_home=str(p.syncthing_home),
            ),
            store=protocol.StoreInfo(
                path=str(svc.store.path),
                schema_version=svc.store.schema_version,
                latest_schema_version=svc.store.schema.latest,
            ),
            subsystems=svc.health.snapshot(),
            summary=svc.health.summary(),
        )

    @router.method("daemon.shutdown")
    def shutdown(params: protocol.ShutdownParams, call: Call) -> protocol.Ok:
        call.after_response(svc.request_shutdown)
        return protocol.Ok()

    @router.method("events.subscribe")
    def subscribe(params: protocol.SubscribeParams, call: Call) -> protocol.Subscribed:
        sub = call.connection.subscribe(params.topics, params.since, call)
        return protocol.Subscribed(subscription=sub.id, topics=list(sub.topics), buffer=sub.buffer)

    @router.method("events.recent")
    def recent(params: protocol.RecentParams, call: Call) -> protocol.RecentEvents:
        if params.limit < 0:
            raise invalid_argument("limit must not be negative", field="limit")
        return protocol.RecentEvents(events=svc.bus.recent(params.topics, params.limit))

    return daemon_status


def register(router: Router, svc: Services) -> None:
    daemon_status = register_core(router, svc)

    @router.method("daemon.overview")
    def glance(params: protocol.NoParams, call: Call) -> protocol.Overview:
        identity = svc.identity.identity_info()
        infos = svc.teams.list_teams().teams
        snap = svc.syncthing.stream.snapshot if svc.syncthing.live else None
        seen = {d: s.last_seen for d, s in snap.devices.items()} if snap is not None else {}
        index = svc.indexer.status({})
        latest = svc.index.list_sessions(protocol.SessionListParams(origin="remote", limit=1))
        received = None
        if latest.sessions:
            last = latest.sessions[0]
            received = protocol.OverviewReceived(
                session=last.id, member=last.member, title=last.title, active_at=last.ended_at
            )
        base = daemon_status()
        return protocol.Overview(
            **msgspec.structs.asdict(base),
            identity=identity,
            teams=overview.teams(infos),
            peers=overview.peers(infos, seen),
            last_received=received,
            index=protocol.OverviewIndex(
                state=index.state, sessions=index.sessions, lag_s=index.lag_s, detail=index.detail
            ),
            attention=overview.attention(
                identity,
                infos,
                pending(snap, svc.offers.known_devices()) if snap is not None else None,
                base.subsystems,
            ),
        )


def register_keeper(router: Router, svc: Core) -> None:
    """A keeper's `daemon.*`: its overview is its status (no identity, teams or index)."""
    daemon_status = register_core(router, svc)

    @router.method("daemon.overview")
    def glance(params: protocol.NoParams, call: Call) -> protocol.Overview:
        return protocol.Overview(**msgspec.structs.asdict(daemon_status()))
