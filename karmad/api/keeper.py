"""`keeper.*` on an ordinary karmad: a leader names its team's keeper, a member sees it.

The keeper's own methods (`keeper.code`, `keeper.serve`, `keeper.leave`) answer
`wrong_mode` here; they work only in keeper mode (`karmad.api.keeper_mode`).
"""

from __future__ import annotations

from karmad import protocol
from karmad.api.keeper_mode import refuse_keeper_only
from karmad.rpc.call import Call
from karmad.rpc.router import Router
from karmad.services import Services


def register(router: Router, svc: Services) -> None:
    keepers = svc.keepers
    refuse_keeper_only(router)

    @router.method("keeper.add")
    def add(params: protocol.KeeperAddParams, call: Call) -> protocol.KeeperAdded:
        return keepers.add(params.team, params.code)

    @router.method("keeper.remove")
    def remove(params: protocol.TeamRef, call: Call) -> protocol.KeeperRemoved:
        return keepers.remove(params.team)

    @router.method("keeper.status")
    def status(params: protocol.NoParams, call: Call) -> protocol.KeeperStatus:
        return keepers.status(svc.clock())
