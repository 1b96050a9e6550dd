"""`identity.*` and `pair.*`: who this member is, and the codes that introduce it."""

from __future__ import annotations

from karmad import protocol
from karmad.rpc.call import Call
from karmad.rpc.router import Router
from karmad.services import Services


def register(router: Router, svc: Services) -> None:
    identity = svc.identity

    @router.method("identity.init")
    def init(params: protocol.InitParams, call: Call) -> protocol.IdentityInfo:
        return identity.init(params.user, params.machine)

    @router.method("identity.get")
    def whoami(params: protocol.NoParams, call: Call) -> protocol.IdentityInfo:
        return identity.identity_info()

    @router.method("pair.code")
    def pair_code(params: protocol.NoParams, call: Call) -> protocol.PairCode:
        return identity.pair_code()

    @router.method("pair.decode")
    def pair_decode(params: protocol.DecodeParams, call: Call) -> protocol.DecodedCode:
        return identity.decode(params.code)
