"""`project.*` and `subscription.*`: what a team shares, and this member's stance on it."""

from __future__ import annotations

from karmad import protocol
from karmad.domain import Direction
from karmad.rpc.call import Call
from karmad.rpc.router import Router
from karmad.services import Services


def register(router: Router, svc: Services) -> None:
    teams = svc.teams

    @router.method("project.share")
    def share(params: protocol.ShareParams, call: Call) -> protocol.ProjectInfo:
        return teams.share(params.team, params.project, params.todos, params.plans)

    @router.method("project.unshare")
    def unshare(params: protocol.UnshareParams, call: Call) -> protocol.ProjectInfo:
        return teams.unshare(params.team, params.project)

    @router.method("project.get")
    def project(params: protocol.UnshareParams, call: Call) -> protocol.ProjectInfo:
        return teams.project(params.team, params.project)

    @router.method("project.list")
    def projects(params: protocol.ProjectListParams, call: Call) -> protocol.ProjectList:
        return teams.projects(params.team)

    @router.method("subscription.list")
    def subscriptions(
        params: protocol.SubscriptionListParams, call: Call
    ) -> protocol.SubscriptionList:
        return teams.subscriptions(params.team)

    @router.method("subscription.accept")
    def accept(params: protocol.AcceptParams, call: Call) -> protocol.SubscriptionInfo:
        return teams.accept(params.team, params.project, Direction(params.direction))

    @router.method("subscription.pause")
    def pause(params: protocol.SubscriptionRef, call: Call) -> protocol.SubscriptionInfo:
        return teams.pause(params.team, params.project)

    @router.method("subscription.resume")
    def resume(params: protocol.SubscriptionRef, call: Call) -> protocol.SubscriptionInfo:
        return teams.resume(params.team, params.project)

    @router.method("subscription.decline")
    def decline(params: protocol.DeclineParams, call: Call) -> protocol.SubscriptionInfo:
        return teams.decline(params.team, params.project, purge=params.purge)

    @router.method("subscription.reopen")
    def reopen(params: protocol.SubscriptionRef, call: Call) -> protocol.SubscriptionInfo:
        return teams.reopen(params.team, params.project)

    @router.method("subscription.setDirection")
    def set_direction(params: protocol.AcceptParams, call: Call) -> protocol.SubscriptionInfo:
        return teams.set_direction(params.team, params.project, Direction(params.direction))
