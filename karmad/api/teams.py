"""`team.*`: teams, their members and their activity (`karmad.sync.teams` does the work)."""

from __future__ import annotations

from karmad import protocol
from karmad.rpc.call import Call
from karmad.rpc.router import Router
from karmad.services import Services


def register(router: Router, svc: Services) -> None:
    teams = svc.teams

    @router.method("team.create")
    def create(params: protocol.CreateTeamParams, call: Call) -> protocol.TeamInfo:
        return teams.create(params.name)

    @router.method("team.list")
    def list_(params: protocol.NoParams, call: Call) -> protocol.TeamList:
        return teams.list_teams()

    @router.method("team.get")
    def get(params: protocol.TeamRef, call: Call) -> protocol.TeamInfo:
        return teams.get(params.team)

    @router.method("team.addMember")
    def add(params: protocol.AddMemberParams, call: Call) -> protocol.AddedMember:
        return teams.add_member(params.team, params.code)

    @router.method("team.join")
    def join(params: protocol.JoinParams, call: Call) -> protocol.TeamInfo:
        return teams.join(params.invite)

    @router.method("team.removeMember")
    def remove(params: protocol.RemoveMemberParams, call: Call) -> protocol.TeamInfo:
        return teams.remove_member(params.team, params.member)

    @router.method("team.leave")
    def leave(params: protocol.TeamRef, call: Call) -> protocol.TeamInfo:
        return teams.leave(params.team)

    @router.method("team.dissolve")
    def dissolve(params: protocol.TeamRef, call: Call) -> protocol.TeamInfo:
        return teams.dissolve(params.team)

    @router.method("team.activity")
    def activity(params: protocol.ActivityParams, call: Call) -> protocol.Activity:
        return teams.activity(params.team, params.limit, params.before)
