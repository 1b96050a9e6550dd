"""`archive.*`: what karmad keeps of the member's own sessions."""

from __future__ import annotations

from karmad import protocol
from karmad.rpc.call import Call
from karmad.rpc.router import Router
from karmad.services import Services


def register(router: Router, svc: Services) -> None:
    @router.method("archive.status")
    def status(params: protocol.NoParams, call: Call) -> protocol.ArchiveStatus:
        return svc.archiver.status

    @router.method("archive.sweep")
    def sweep(params: protocol.NoParams, call: Call) -> protocol.ArchiveSweep:
        if not svc.config.archive.enabled:
            return protocol.ArchiveSweep(job=0)
        return protocol.ArchiveSweep(job=svc.archiver.sweep())
