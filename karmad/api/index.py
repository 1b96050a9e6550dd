"""`index.*`: what the session index holds and is doing; rebuilding it."""

from __future__ import annotations

from karmad import protocol
from karmad.errors import KarmadError
from karmad.protocol import ErrorCode
from karmad.rpc.call import Call
from karmad.rpc.router import Router
from karmad.services import Services


def register(router: Router, svc: Services) -> None:
    @router.method("index.status")
    def status(params: protocol.NoParams, call: Call) -> protocol.IndexStatus:
        status = svc.indexer.status(svc.index.root_counts())
        status.rejected = svc.index.rejected()
        status.problem_files = svc.index.problem_count()
        status.problems = svc.index.file_problems()
        return status

    @router.method("index.rebuild")
    def rebuild(params: protocol.IndexRebuildParams, call: Call) -> protocol.IndexRebuild:
        if not svc.config.index.enabled:
            raise KarmadError(ErrorCode.UNSUPPORTED, "the index is turned off (index.enabled)")
        return protocol.IndexRebuild(job=svc.indexer.request_rebuild(text_only=params.text_only))
