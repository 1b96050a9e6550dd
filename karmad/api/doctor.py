"""`doctor.*`: start the health checks, read their findings.

The checks themselves run in the doctor's task (they may take seconds); these handlers
only wake it and read the last report, as handlers must.
"""

from __future__ import annotations

from karmad import protocol
from karmad.errors import KarmadError
from karmad.rpc.call import Call
from karmad.rpc.router import Router
from karmad.services import Core


def register(router: Router, svc: Core) -> None:
    @router.method("doctor.run")
    def run(params: protocol.NoParams, call: Call) -> protocol.DoctorStarted:
        return protocol.DoctorStarted(run=svc.doctor.request_run())

    @router.method("doctor.report")
    def report(params: protocol.NoParams, call: Call) -> protocol.DoctorReport:
        last = svc.doctor.last
        if last is None:
            raise KarmadError(
                protocol.ErrorCode.NOT_FOUND, "no doctor run has finished yet; call doctor.run"
            )
        return last
