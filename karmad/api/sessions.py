"""`session.*`: the indexed sessions, their transcripts and full-text search."""

from __future__ import annotations

from karmad import protocol
from karmad.flow import shared
from karmad.rpc.router import Router
from karmad.rpc.server import Call
from karmad.services import Services


def register(router: Router, svc: Services) -> None:
    @router.method("session.list")
    def list_sessions(params: protocol.SessionListParams, call: Call) -> protocol.SessionList:
        return svc.index.list_sessions(params)

    @router.method("session.get")
    def get(params: protocol.SessionGetParams, call: Call) -> protocol.SessionDetail:
        detail = svc.index.get_session(params)
        if detail.origin == "local":
            detail.redactions, detail.packaged_to = shared.packaged(svc.store, detail.id)
        else:
            detail.redactions = shared.received_redactions(detail.files, detail.id)
        return detail

    @router.method("session.messages")
    def messages(params: protocol.SessionMessagesParams, call: Call) -> protocol.SessionMessages:
        return svc.index.messages(params)

    @router.method("session.search")
    def search(params: protocol.SessionSearchParams, call: Call) -> protocol.SearchResults:
        if not svc.config.index.full_text:
            return protocol.SearchResults(hits=[], available=False, complete=False)
        return svc.index.search(params, complete=svc.indexer.text_complete)
