"""Keeper mode (`[keeper] enabled`): `keeper.code`, `keeper.serve`, `keeper.leave`,
`keeper.status`, and `wrong_mode` for everything a keeper does not do.

A keeper runs no sessions, index or teams of its own, so every member method answers
`wrong_mode` with a sentence saying why; `daemon.*`, `events.*`, `doctor.*` and
`syncthing.status` are registered by their own modules. Handlers read the store and
Syncthing's snapshot only; the keeper reconciler does the work.
"""

from __future__ import annotations

from typing import Any

from karmad import codes, protocol
from karmad.errors import KarmadError, not_found
from karmad.keeper import servedstore
from karmad.keeper.hold import Hold
from karmad.keeper.plan import HeldKind
from karmad.rpc.call import Call
from karmad.rpc.router import Router
from karmad.services import KeeperServices

KEEPER_ONLY = ("keeper.code", "keeper.serve", "keeper.leave")
"""Methods only a keeper answers; a member's daemon refuses them (`refuse_keeper_only`)."""


def _wrong_mode(name: str, detail: str) -> Any:
    def handler(params: protocol.Params, call: Call) -> protocol.Result:
        raise KarmadError(protocol.ErrorCode.WRONG_MODE, detail)

    handler.__name__ = name.replace(".", "_")
    return handler


def refuse_the_rest(router: Router) -> None:
    """Every declared method nothing registered: this karmad is a keeper."""
    for name in router.missing():
        router.add(
            name,
            _wrong_mode(
                name,
                f"this karmad is a keeper ([keeper] enabled): it does not answer {name}; "
                "see `karmactl keeper status`",
            ),
        )


def refuse_keeper_only(router: Router) -> None:
    """A member's daemon: the keeper's own methods answer `wrong_mode`."""
    for name in KEEPER_ONLY:
        router.add(
            name,
            _wrong_mode(
                name,
                f"this karmad is not a keeper: {name} works only with [keeper] enabled = true",
            ),
        )


def _folders(svc: KeeperServices, plan: Hold | None, team: str) -> list[protocol.KeeperFolderView]:
    if plan is None:
        return []
    row = servedstore.get(svc.store, team)
    control = None if row is None else row.control
    counters = {f.id: f for f in control.folders} if control else {}
    views = []
    for fid, owner in sorted(plan.owners.items()):
        folder = plan.folders.get(fid)
        if owner != team or folder is None:
            continue
        status = svc.port.folder_status(fid)
        entry = counters.get(fid)
        kind: protocol.HeldKindName = (
            "control" if fid == team else "content" if entry is None else entry.kind.value
        )
        views.append(
            protocol.KeeperFolderView(
                folder_id=fid,
                kind=kind,
                devices=len(folder.devices) - 1,
                generation=entry.generation if entry and entry.kind is HeldKind.CONTENT else 0,
                local_files=status.local_files if status else None,
                local_bytes=status.local_bytes if status else None,
                need_bytes=status.need_bytes if status else None,
                state=status.state if status else "",
                error=svc.port.folder_error(fid) or None,
            )
        )
    return views


def register(router: Router, svc: KeeperServices) -> None:
    def own_device() -> str:
        device = svc.port.device_id()
        if device is None:
            raise KarmadError(
                protocol.ErrorCode.SYNCTHING_UNAVAILABLE,
                "Syncthing has not reported this keeper's device ID yet",
            )
        return device

    @router.method("keeper.code")
    def code(params: protocol.NoParams, call: Call) -> protocol.KeeperCode:
        device = own_device()
        addresses = svc.port.advertised_addresses()
        return protocol.KeeperCode(
            code=codes.encode_keeper(codes.KeeperCode(device, addresses)),
            device_id=device,
            addresses=list(addresses),
        )

    @router.method("keeper.serve")
    def serve(params: protocol.KeeperServeParams, call: Call) -> protocol.KeeperServing:
        wanted = codes.decode_serve(params.code)
        if wanted.leader_device == own_device():
            raise KarmadError(
                protocol.ErrorCode.INVALID_CODE,
                "the code names this keeper itself as the team's leader",
                field="code",
            )
        changed = servedstore.serve(
            svc.store, wanted.folder_id, wanted.leader_device, wanted.addresses, svc.clock()
        )
        if changed:
            svc.keeper.wake()
        return protocol.KeeperServing(
            leader_device=wanted.leader_device, folder_id=wanted.folder_id, changed=changed
        )

    @router.method("keeper.leave")
    def leave(params: protocol.KeeperLeaveParams, call: Call) -> protocol.KeeperServing:
        row = servedstore.get(svc.store, params.folder_id)
        if row is None:
            raise not_found("served team with keeper folder", params.folder_id)
        servedstore.leave(svc.store, params.folder_id)
        svc.keeper.wake()
        return protocol.KeeperServing(
            leader_device=row.leader_device, folder_id=row.folder_id, changed=True
        )

    @router.method("keeper.status")
    def status(params: protocol.NoParams, call: Call) -> protocol.KeeperStatus:
        plan = svc.keeper.status.hold
        served = []
        for row in servedstore.served(svc.store):
            views = _folders(svc, plan, row.folder_id)
            devices: set[str] = set()
            if plan is not None:
                for fid, owner in plan.owners.items():
                    if owner == row.folder_id and fid in plan.folders:
                        devices |= plan.folders[fid].devices
            devices.discard(svc.port.device_id() or "")
            served.append(
                protocol.KeeperServedView(
                    leader_device=row.leader_device,
                    folder_id=row.folder_id,
                    accepted_at=row.accepted_at,
                    control_seq=row.control_seq,
                    epoch=row.control.epoch if row.control else None,
                    dissolved=row.control.dissolved if row.control else False,
                    devices=sorted(devices),
                    folders=views,
                    problem=row.problem,
                )
            )
        return protocol.KeeperStatus(mode="keeper", device_id=svc.port.device_id(), served=served)
