"""`session.resume`: continue any indexed session with Claude Code, in a local checkout."""

from __future__ import annotations

from karmad import protocol
from karmad.errors import not_found
from karmad.rpc.call import Call
from karmad.rpc.router import Router
from karmad.services import Services


def register(router: Router, svc: Services) -> None:
    @router.method("session.resume")
    def resume(params: protocol.SessionResumeParams, call: Call) -> protocol.SessionResume:
        return svc.resumer.start(params)

    @router.method("session.resumeResult")
    def result(params: protocol.SessionResumeResultParams, call: Call) -> protocol.SessionResume:
        found = svc.resumer.result(params.job)
        if found is None:
            raise not_found("resume job", params.job)
        return found
