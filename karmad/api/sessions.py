"""`session.*`: the indexed sessions, their transcripts and full-text search."""

from __future__ import annotations

from karmad import protocol
from karmad.rpc.router import Router
from karmad.rpc.server import Call
from karmad.services import Services


def register(router: Router, svc: Services) -> None:
    @router.method("session.list")
    def list_sessions(params: protocol.SessionListParams, call: Call) -> protocol.SessionList:
        return svc.index.list_sessions(params)

    @router.method("session.get")
    def get(params: protocol.SessionGetParams, call: Call) -> protocol.SessionDetail:
        return svc.index.get_session(params)

    @router.method("session.messages")
    def messages(params: protocol.SessionMessagesParams, call: Call) -> protocol.SessionMessages:
        return svc.index.messages(params)

    @router.method("session.search")
    def search(params: protocol.SessionSearchParams, call: Call) -> protocol.SearchResults:
        if not svc.config.index.full_text:
            return protocol.SearchResults(hits=[], available=False, complete=False)
        return svc.index.search(params, complete=svc.indexer.text_complete)
