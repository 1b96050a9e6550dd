"""`daemon.*` and `events.subscribe`."""

from __future__ import annotations

import os

from karmad import __version__, protocol
from karmad.errors import invalid_argument
from karmad.rpc.router import Router
from karmad.rpc.server import Call
from karmad.services import Services


def register(router: Router, svc: Services) -> None:
    @router.method("daemon.hello")
    def hello(params: protocol.NoParams, call: Call) -> protocol.Hello:
        return protocol.Hello(
            protocol=protocol.PROTOCOL_VERSION,
            version=__version__,
            capabilities=list(protocol.CAPABILITIES),
        )

    @router.method("daemon.status")
    def status(params: protocol.NoParams, call: Call) -> protocol.DaemonStatus:
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
