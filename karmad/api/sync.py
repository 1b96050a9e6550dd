"""`pending.accept`, `pending.dismiss` and `sync.status`: offers and the reconciler."""

from __future__ import annotations

from karmad import protocol
from karmad.flow import shared
from karmad.rpc.call import Call
from karmad.rpc.router import Router
from karmad.services import Services
from karmad.sync import teamstore


def register(router: Router, svc: Services) -> None:
    teams = svc.teams

    @router.method("pending.accept")
    def pending_accept(params: protocol.PendingAcceptParams, call: Call) -> protocol.Ok:
        svc.offers.pending_accept(params.device, params.folder)
        return protocol.Ok()

    @router.method("pending.dismiss")
    def pending_dismiss(params: protocol.PendingDismissParams, call: Call) -> protocol.Ok:
        svc.offers.pending_dismiss(params.device, params.folder)
        return protocol.Ok()

    @router.method("sync.status")
    def sync_status(params: protocol.NoParams, call: Call) -> protocol.SyncStatus:
        status = teams.reconciler.status_view(teams.clock())
        status.projects = shared.project_flows(
            teamstore.teams(svc.store),
            teams.port.device_id(),
            svc.store,
            svc.index.store,
            completion,
        )
        return status

    def completion(folder: str, device: str) -> float | None:
        """How much of our `folder` Syncthing says `device` has, in percent."""
        snap = svc.syncthing.stream.snapshot
        state = snap.folders.get(folder) if snap is not None else None
        found = state.completion.get(device) if state is not None else None
        return None if found is None else round(found.completion, 1)
