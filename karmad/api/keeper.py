"""`keeper.*` on an ordinary karmad: a leader names its team's keeper, a member sees it.

The keeper's own methods (`keeper.code`, `keeper.serve`) exist only in keeper mode.
"""

from __future__ import annotations

from karmad import protocol
from karmad.domain import DomainError
from karmad.rpc.call import Call
from karmad.rpc.router import Router
from karmad.services import Services


def _keeper_only() -> DomainError:
    return DomainError(
        "wrong_mode",
        "this karmad is not a keeper: run that on the keeper (`[keeper] enabled = true`)",
    )


def register(router: Router, svc: Services) -> None:
    keepers = svc.keepers

    @router.method("keeper.add")
    def add(params: protocol.KeeperAddParams, call: Call) -> protocol.KeeperAdded:
        return keepers.add(params.team, params.code)

    @router.method("keeper.remove")
    def remove(params: protocol.TeamRef, call: Call) -> protocol.KeeperRemoved:
        return keepers.remove(params.team)

    @router.method("keeper.status")
    def status(params: protocol.NoParams, call: Call) -> protocol.KeeperStatus:
        return keepers.status(svc.clock())

    @router.method("keeper.code")
    def code(params: protocol.NoParams, call: Call) -> protocol.KeeperCode:
        raise _keeper_only()

    @router.method("keeper.serve")
    def serve(params: protocol.KeeperServeParams, call: Call) -> protocol.KeeperServing:
        raise _keeper_only()
