"""`usage.*`: token use and cost, de-duplicated and priced by the index."""

from __future__ import annotations

from karmad import protocol
from karmad.rpc.call import Call
from karmad.rpc.router import Router
from karmad.services import Services
from karmad.sync import teamstore


def register(router: Router, svc: Services) -> None:
    @router.method("usage.summary")
    def summary(params: protocol.UsageSummaryParams, call: Call) -> protocol.UsageSummary:
        if params.project:
            params.project = svc.teams.name_project(params.project).identity
        result = svc.index.usage(params)
        if params.group_by in ("member", "user", "device"):
            _name_local(result, _own(svc, params.group_by))
        return result


def _own(svc: Services, group: str) -> str:
    """This machine's own key in a grouping by member, user or device."""
    if group == "device":
        return svc.syncthing.device_id or "local"
    identity = teamstore.get_identity(svc.store)
    if identity is None:
        return "local"
    return identity.member_tag if group == "member" else identity.user_id


def _name_local(result: protocol.UsageSummary, me: str) -> None:
    """This machine's own sessions carry no attribution in the index (they were indexed
    before, or without, an identity): name them after this member, user or device, and
    merge them with that key's other rows (the same member's sessions from elsewhere)."""
    merged: dict[str, protocol.UsageRow] = {}
    for row in result.rows:
        key = row.key or me
        if key in merged:
            merged[key] = _add(merged[key], row)
        else:
            row.key = key
            merged[key] = row
    result.rows = list(merged.values())


def _sum(a: protocol.TokenCounts, b: protocol.TokenCounts) -> protocol.TokenCounts:
    return protocol.TokenCounts(
        **{f: getattr(a, f) + getattr(b, f) for f in protocol.TokenCounts.__struct_fields__}
    )


def _add(a: protocol.UsageRow, b: protocol.UsageRow) -> protocol.UsageRow:
    """Two rows of one key (local sessions without attribution, and those of the same
    member or user from elsewhere) as one."""
    models = dict(a.models)
    for model, counts in b.models.items():
        models[model] = _sum(models[model], counts) if model in models else counts
    return protocol.UsageRow(key=a.key, tokens=_sum(a.tokens, b.tokens), models=models)
