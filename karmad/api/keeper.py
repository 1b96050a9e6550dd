"""`keeper.*` on a member: `keeper.add`, `keeper.remove` and the member's `keeper.status`.

Not available yet in this version: they answer `wrong_mode`. A member's daemon also
refuses the keeper's own methods (`keeper.code`, `keeper.serve`,
`keeper.leave`).
"""

from __future__ import annotations

from karmad import protocol
from karmad.api.keeper_mode import refuse_keeper_only
from karmad.errors import KarmadError
from karmad.rpc.call import Call
from karmad.rpc.router import Router
from karmad.services import Services

_NOT_YET = "a member's side of a keeper is not available in this version of karmad"


def register(router: Router, svc: Services) -> None:
    refuse_keeper_only(router)

    @router.method("keeper.add")
    def add(params: protocol.KeeperAddParams, call: Call) -> protocol.KeeperAdded:
        raise KarmadError(protocol.ErrorCode.WRONG_MODE, _NOT_YET)

    @router.method("keeper.remove")
    def remove(params: protocol.TeamRef, call: Call) -> protocol.KeeperRemoved:
        raise KarmadError(protocol.ErrorCode.WRONG_MODE, _NOT_YET)

    @router.method("keeper.status")
    def status(params: protocol.NoParams, call: Call) -> protocol.KeeperStatus:
        raise KarmadError(protocol.ErrorCode.WRONG_MODE, _NOT_YET)
