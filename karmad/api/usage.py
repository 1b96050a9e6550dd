"""`usage.*`: token use and cost, de-duplicated and priced by the index."""

from __future__ import annotations

from karmad import protocol
from karmad.rpc.router import Router
from karmad.rpc.server import Call
from karmad.services import Services


def register(router: Router, svc: Services) -> None:
    @router.method("usage.summary")
    def summary(params: protocol.UsageSummaryParams, call: Call) -> protocol.UsageSummary:
        return svc.index.usage(params)
