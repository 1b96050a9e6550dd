"""`session.*`: the indexed sessions, their transcripts and full-text search."""

from __future__ import annotations

from karmad import protocol
from karmad.flow import shared
from karmad.rpc.call import Call
from karmad.rpc.router import Router
from karmad.services import Services
from karmad.sync import teamstore


def register(router: Router, svc: Services) -> None:
    def me() -> tuple[str, str] | None:
        """(user, member tag) of this member: the index attributes only received sessions,
        so this machine's own are named after it here."""
        identity = teamstore.get_identity(svc.store)
        return None if identity is None else (identity.user_id, identity.member_tag)

    def attribute(
        item: protocol.SessionSummary | protocol.SearchHit, mine: tuple[str, str] | None
    ) -> None:
        if item.origin == "local" and mine is not None and not item.member:
            item.user, item.member = mine

    @router.method("session.list")
    def list_sessions(params: protocol.SessionListParams, call: Call) -> protocol.SessionList:
        mine = me()
        if params.project:
            params.project = svc.teams.name_project(params.project).identity
        result = svc.index.list_sessions(params, mine)
        for s in result.sessions:
            attribute(s, mine)
        return result

    @router.method("session.get")
    def get(params: protocol.SessionGetParams, call: Call) -> protocol.SessionDetail:
        detail = svc.index.get_session(params)
        attribute(detail, me())
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
        mine = me()
        if params.project:
            params.project = svc.teams.name_project(params.project).identity
        result = svc.index.search(params, complete=svc.indexer.text_complete, me=mine)
        for hit in result.hits:
            attribute(hit, mine)
        return result
