"""`init`, `whoami`, `pair`, `team`, `project`, `sub`, `sync`: who shares what with whom."""

from __future__ import annotations

import argparse
import sys

from karmactl import cli, render
from karmactl.client import CommandFailed
from karmactl.typed import as_sent, decode, wire_time
from karmad.protocol import (
    Activity,
    AddedMember,
    DecodedCode,
    IdentityInfo,
    PairCode,
    ProjectInfo,
    ProjectList,
    SubscriptionInfo,
    SubscriptionList,
    SyncStatus,
    TeamInfo,
    TeamList,
)

# Type-only imports: `typing` and friends cost start-up time on every invocation.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from karmactl.cli import Context

COMMANDS = ("init", "whoami", "pair", "team", "project", "sub", "sync")


class Declined(Exception):
    pass


def confirm(ctx: Context, question: str) -> None:
    """Ask before a destructive step; `--yes` answers for scripts."""
    if getattr(ctx.args, "yes", False):
        return
    if not sys.stdin.isatty():
        print(
            f"karmactl: {question} — refusing without --yes (stdin is not a terminal)",
            file=sys.stderr,
        )
        raise Declined
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise Declined


def _yes(p: argparse.ArgumentParser) -> None:
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("init", parents=[common], help="set this member's user name")
    p.add_argument("--user", required=True, help="your user name (same on all your machines)")
    p.add_argument("--machine", help="machine tag (default: from the hostname)")
    p.set_defaults(func=init)

    p = sub.add_parser("whoami", parents=[common], help="this member's identity")
    p.set_defaults(func=whoami)

    pair = sub.add_parser("pair", parents=[common], help="pairing codes")
    pair_sub = pair.add_subparsers(dest="pair_command", metavar="ACTION", required=True)
    p = pair_sub.add_parser("code", parents=[common], help="print this member's pairing code")
    p.set_defaults(func=pair_code)
    p = pair_sub.add_parser("check", parents=[common], help="check and show a code")
    p.add_argument("code")
    p.set_defaults(func=pair_check)

    team = sub.add_parser("team", parents=[common], help="teams and members")
    t = team.add_subparsers(dest="team_command", metavar="ACTION", required=True)
    p = t.add_parser("create", parents=[common], help="create a team you lead")
    p.add_argument("name")
    p.set_defaults(func=team_create)
    p = t.add_parser("ls", parents=[common, cli.wide_option()], help="your teams")
    p.set_defaults(func=team_ls)
    p = t.add_parser(
        "show", parents=[common, cli.wide_option()], help="roster, projects, subscriptions"
    )
    p.add_argument("team")
    p.set_defaults(func=team_show)
    p = t.add_parser("add", parents=[common], help="leader: add a member by pairing code")
    p.add_argument("team")
    p.add_argument("code", help="the member's `karmactl pair code`")
    _yes(p)
    p.set_defaults(func=team_add)
    p = t.add_parser("join", parents=[common], help="join with the invite code a leader gave you")
    p.add_argument("invite")
    _yes(p)
    p.set_defaults(func=team_join)
    p = t.add_parser("remove", parents=[common], help="leader: remove a member")
    p.add_argument("team")
    p.add_argument("member", help="member tag or device ID")
    _yes(p)
    p.set_defaults(func=team_remove)
    p = t.add_parser("leave", parents=[common], help="leave a team")
    p.add_argument("team")
    _yes(p)
    p.set_defaults(func=team_leave)
    p = t.add_parser("dissolve", parents=[common], help="leader: dissolve the team")
    p.add_argument("team")
    _yes(p)
    p.set_defaults(func=team_dissolve)
    p = t.add_parser(
        "activity", parents=[common, cli.wide_option()], help="audit trail of a team (or all)"
    )
    p.add_argument("team", nargs="?")
    p.add_argument("-n", "--limit", type=cli.positive, default=50, help="events (default 50)")
    p.set_defaults(func=team_activity)

    project = sub.add_parser("project", parents=[common], help="shared projects")
    pr = project.add_subparsers(dest="project_command", metavar="ACTION", required=True)
    p = pr.add_parser("share", parents=[common], help="leader: share a project with a team")
    p.add_argument("team")
    p.add_argument("project", help="git remote (any form) or a checkout path")
    p.add_argument("--todos", action="store_true", help="also share todo lists")
    p.add_argument("--plans", action="store_true", help="also share plans")
    p.set_defaults(func=project_share)
    p = pr.add_parser("unshare", parents=[common], help="leader: stop sharing a project")
    p.add_argument("team")
    p.add_argument("project")
    _yes(p)
    p.set_defaults(func=project_unshare)
    p = pr.add_parser(
        "ls", parents=[common, cli.wide_option()], help="projects shared with your teams"
    )
    p.add_argument("team", nargs="?")
    p.set_defaults(func=project_ls)

    subs = sub.add_parser("sub", parents=[common], help="your subscriptions to shared projects")
    s = subs.add_subparsers(dest="sub_command", metavar="ACTION", required=True)
    p = s.add_parser("ls", parents=[common, cli.wide_option()], help="your subscriptions")
    p.add_argument("team", nargs="?")
    p.set_defaults(func=sub_ls)
    for name, helptext in (
        ("accept", "accept a shared project"),
        ("direction", "change send/receive/both"),
    ):
        p = s.add_parser(name, parents=[common], help=helptext)
        p.add_argument("team")
        p.add_argument("project")
        p.add_argument(
            "--direction",
            "-d",
            choices=("send", "receive", "both"),
            default="both",
            help="send yours, receive theirs, or both (default)",
        )
        p.set_defaults(func=sub_accept if name == "accept" else sub_direction)
    for name, helptext in (
        ("pause", "stop sending and receiving for now (received data stays)"),
        ("resume", "resume a paused subscription"),
        ("reopen", "reconsider a declined project"),
    ):
        p = s.add_parser(name, parents=[common], help=helptext)
        p.add_argument("team")
        p.add_argument("project")
        p.set_defaults(func=sub_simple, method=f"subscription.{name}")
    p = s.add_parser("decline", parents=[common], help="decline a shared project")
    p.add_argument("team")
    p.add_argument("project")
    p.add_argument("--purge", action="store_true", help="also delete what was received")
    _yes(p)
    p.set_defaults(func=sub_decline)

    sync = sub.add_parser("sync", parents=[common], help="reconciliation state")
    sy = sync.add_subparsers(dest="sync_command", metavar="ACTION", required=True)
    p = sy.add_parser("status", parents=[common, cli.wide_option()], help="last cycle, failures")
    p.set_defaults(func=sync_status)


def _done(ctx: Context, raw: Any, text: str) -> int:
    """`raw` (the answer as it came) with `--json`, else `text`."""
    if ctx.json:
        render.emit_json(raw)
    else:
        print(text)
    return 0


def guarded(ctx: Context, question: str) -> bool:
    try:
        confirm(ctx, question)
    except Declined:
        return False
    return True


# --------------------------------------------------------------------------- identity


def init(ctx: Context) -> int:
    before = decode(ctx.call("identity.get"), IdentityInfo)
    raw = ctx.call("identity.init", user=ctx.args.user, machine=ctx.args.machine)
    was, now = before.member_tag, decode(raw, IdentityInfo).member_tag
    if not before.initialised:
        text = f"You are {now}."
    elif was == now:
        text = f"You are already {now}."
    else:
        text = f"Renamed {was} → {now}."
    return _done(ctx, raw, text)


def whoami(ctx: Context) -> int:
    raw = ctx.call("identity.get")
    if ctx.json:
        render.emit_json(raw)
        return 0
    r = decode(raw, IdentityInfo)
    if not r.initialised:
        print("not initialised: run `karmactl init --user NAME`")
        return 1
    render.kv(
        [
            ("member", r.member_tag),
            ("user", r.user_id),
            ("machine", r.machine_tag),
            ("device", _short(r.device_id) or "(Syncthing not started yet)"),
        ]
    )
    return 0


def pair_code(ctx: Context) -> int:
    raw = ctx.call("pair.code")
    if ctx.json:
        render.emit_json(raw)
        return 0
    r = decode(raw, PairCode)
    print(r.code)
    print(
        f"\nThis is {r.member_tag}. Give the code above to a team leader, who runs:\n"
        f"  karmactl team add TEAM {r.code}",
        file=sys.stderr,
    )
    return 0


def pair_check(ctx: Context) -> int:
    raw = ctx.call("pair.decode", code=ctx.args.code)
    if ctx.json:
        render.emit_json(raw)
        return 0
    r = decode(raw, DecodedCode)
    rows = [("kind", r.kind), ("member", r.member_tag), ("device", _short(r.device_id))]
    if r.team_name:
        rows.append(("team", f"{r.team_name} ({r.team_id})"))
    if r.addresses:
        rows.append(("addresses", ", ".join(r.addresses)))
    render.kv(rows)
    return 0


def _short(device_id: str | None) -> str:
    """A device ID as Syncthing shows it in lists: its first group (`--json` has it whole)."""
    return (device_id or "").split("-", 1)[0]


# --------------------------------------------------------------------------- teams


def team_state(t: TeamInfo) -> str:
    """This member's standing in a team in one word: `active` once joined (the phase the
    daemon calls `member`), else the phase (joining, leaving, removed) or the team's end."""
    if t.state not in ("active", "unknown"):
        return t.state
    return "active" if t.phase == "member" else t.phase


def _team_table(teams: list[TeamInfo]) -> None:
    render.table(
        ["TEAM", "ID", "ROLE", "STATE", "LEADER", "MEMBERS", "PROJECTS"],
        [
            (
                t.name,
                t.team_id[:8],
                t.role,
                team_state(t),
                t.leader_tag,
                sum(1 for m in t.members if m.state == "active"),
                sum(1 for p in t.projects if p.state == "shared"),
            )
            for t in teams
        ],
        right=(5, 6),
        fit=render.Fit(shrink={0: 12, 4: 12}, drop=(1,)),
        colours={3: render.by_state},
    )


def team_create(ctx: Context) -> int:
    raw = ctx.call("team.create", name=ctx.args.name)
    r = decode(raw, TeamInfo)
    return _done(
        ctx,
        raw,
        f"Created team {r.name} ({r.team_id}). Add members with\n"
        f"  karmactl team add {r.name} PAIRING-CODE",
    )


def team_ls(ctx: Context) -> int:
    raw = ctx.call("team.list")
    if ctx.json:
        render.emit_json(raw)
        return 0
    teams = decode(raw, TeamList).teams
    if not teams:
        print("no teams: create one with `karmactl team create NAME` or join one")
    else:
        _team_table(teams)
    return 0


def team_show(ctx: Context) -> int:
    raw = ctx.call("team.get", team=ctx.args.team)
    if ctx.json:
        render.emit_json(raw)
        return 0
    t = decode(raw, TeamInfo)
    render.kv(
        [
            ("team", f"{t.name} ({t.team_id})"),
            ("state", t.state),
            ("you are", _standing(t)),
            ("leader", t.leader_tag),
        ]
    )
    print()
    keys = [p.key for p in t.projects if p.state == "shared"]
    labels = {p.key: p.label for p in t.projects}
    render.table(
        ["MEMBER", "STATE", "CONNECTED", *[labels[k] for k in keys]],
        fit=render.Fit(shrink={0: 16}),
        colours={1: render.by_state, 2: render.by_state}
        | {3 + n: render.by_state for n in range(len(keys))},
        rows=[
            (
                m.member_tag + (" (leader)" if m.is_leader else "") + (" (you)" if m.is_me else ""),
                m.state,
                "" if m.connected is None else ("yes" if m.connected else "no"),
                *[m.subscriptions.get(k, "-") for k in keys],
            )
            for m in t.members
        ],
    )
    if t.projects:
        print()
        render.table(
            ["PROJECT", "KEY", "STATE", "YOURS"],
            fit=render.Fit(shrink={0: 20}, drop=(1,)),
            colours={2: render.by_state, 3: render.by_state},
            rows=[(p.identity, p.key, p.state, _yours(p)) for p in t.projects],
        )
    return 0


def _yours(p: ProjectInfo) -> str:
    """This member's stance on a project, `accepted/both`, or `-` before it is offered."""
    return f"{p.subscription}/{p.direction}" if p.subscription else "-"


def _standing(t: TeamInfo) -> str:
    """`leader`, `a member`, or the phase when not (yet, or any more) active."""
    state = team_state(t)
    who = "the leader" if t.role == "leader" else "a member"
    return who if state == "active" else f"{who} ({state})"


def _team(ctx: Context) -> tuple[Any, TeamInfo]:
    """The team named on the command line, as it came and as typed."""
    raw = ctx.call("team.get", team=ctx.args.team)
    return raw, decode(raw, TeamInfo)


def team_add(ctx: Context) -> int:
    decoded = decode(ctx.call("pair.decode", code=ctx.args.code), DecodedCode)
    if decoded.kind != "member":
        raise CommandFailed(
            "that is an invite code; the new member's pairing code is needed",
            reason="invalid_code",
        )
    raw_team, team = _team(ctx)
    listed = next((m for m in team.members if m.device_id == decoded.device_id), None)
    if listed is not None and listed.state == "active":
        return _done(
            ctx,
            raw_team,
            f"{listed.member_tag} is already an active member of {team.name}; nothing to do.",
        )
    if (
        listed is None
        and not ctx.json
        and not guarded(
            ctx,
            f"Add {decoded.member_tag} (device {_short(decoded.device_id)}) to {ctx.args.team}?",
        )
    ):
        return 1
    raw = ctx.call("team.addMember", team=ctx.args.team, code=ctx.args.code)
    r = decode(raw, AddedMember)
    said = "Added" if r.changed else "Already added:"
    return _done(
        ctx,
        raw,
        f"{said} {r.member.member_tag} to {r.team.name}. They join by running:\n"
        f"  karmactl team join {r.invite}",
    )


def team_join(ctx: Context) -> int:
    decoded = decode(ctx.call("pair.decode", code=ctx.args.invite), DecodedCode)
    if decoded.kind != "invite":
        raise CommandFailed("that is a pairing code, not an invite code", reason="invalid_code")
    raw_list = ctx.call("team.list")
    teams = decode(raw_list, TeamList).teams
    mine = {t.team_id: (sent, t) for sent, t in as_sent(raw_list, "teams", teams)}
    known = mine.get(decoded.team_id or "")
    if known is not None:
        sent, team = known
        return _done(
            ctx, sent, f"You are already in {team.name} ({team_state(team)}); nothing to do."
        )
    if not ctx.json and not guarded(
        ctx,
        f"Join team {decoded.team_name} led by {decoded.member_tag} "
        f"(device {_short(decoded.device_id)})?",
    ):
        return 1
    raw = ctx.call("team.join", invite=ctx.args.invite)
    r = decode(raw, TeamInfo)
    return _done(ctx, raw, f"Joining {r.name}; it completes when {r.leader_tag} is reachable.")


def team_remove(ctx: Context) -> int:
    raw_team, team = _team(ctx)
    wanted = ctx.args.member
    listed = next(
        (m for m in team.members if wanted in (m.member_tag, m.device_id, _short(m.device_id))),
        None,
    )
    if listed is not None and listed.state == "removed":
        return _done(
            ctx, raw_team, f"{listed.member_tag} is already out of {team.name}; nothing to do."
        )
    if not guarded(
        ctx,
        f"Remove {wanted} from {team.name}? Every member stops syncing with it. "
        f"Permanent: that device cannot rejoin {team.name}.",
    ):
        return 1
    raw = ctx.call("team.removeMember", team=ctx.args.team, member=wanted)
    return _done(ctx, raw, f"Removed {wanted} from {decode(raw, TeamInfo).name}.")


def team_leave(ctx: Context) -> int:
    raw_team, team = _team(ctx)
    if team.role == "leader":
        raise CommandFailed(
            f"you lead {team.name}, and a leader cannot leave its team: "
            f"`karmactl team dissolve {team.name}` ends it for everyone",
            reason="invalid_transition",
        )
    if team.phase in ("leaving", "removed", "dissolved"):
        return _done(ctx, raw_team, f"You are already out of {team.name} ({team.phase}).")
    if not guarded(
        ctx,
        f"Leave {team.name}? Its folders will be removed from this machine. "
        f"Permanent: this device cannot rejoin {team.name}.",
    ):
        return 1
    raw = ctx.call("team.leave", team=ctx.args.team)
    return _done(ctx, raw, f"Leaving {decode(raw, TeamInfo).name}.")


def team_dissolve(ctx: Context) -> int:
    raw_team, team = _team(ctx)
    if team.role != "leader":
        raise CommandFailed(
            f"only {team.leader_tag} (the leader) can dissolve {team.name}",
            reason="not_leader",
        )
    if team.state == "dissolved":
        return _done(ctx, raw_team, f"{team.name} is already dissolved.")
    if not guarded(
        ctx,
        f"Dissolve {team.name} for every member? Permanent: nobody syncs in it again, "
        "and it cannot be undone.",
    ):
        return 1
    raw = ctx.call("team.dissolve", team=ctx.args.team)
    return _done(ctx, raw, f"Dissolved {decode(raw, TeamInfo).name}.")


def team_activity(ctx: Context) -> int:
    raw = ctx.call("team.activity", team=ctx.args.team, limit=ctx.args.limit)
    if ctx.json:
        render.emit_json(raw)
        return 0
    render.table(
        ["TIME", "EVENT", "MEMBER", "DETAIL"],
        fit=render.Fit(shrink={3: 20, 2: 12}),
        rows=[
            (
                e.time.isoformat(sep=" ")[:19],
                e.kind,
                e.member_tag or (e.device_id or "")[:7],
                " ".join(f"{k}={v}" for k, v in sorted(e.detail.items())),
            )
            for e in reversed(decode(raw, Activity).events)
        ],
    )
    return 0


# --------------------------------------------------------------------------- projects


def project_share(ctx: Context) -> int:
    raw = ctx.call(
        "project.share",
        team=ctx.args.team,
        project=cli.project_arg(ctx.args.project),
        todos=ctx.args.todos,
        plans=ctx.args.plans,
    )
    r = decode(raw, ProjectInfo)
    team, identity = ctx.args.team, r.identity
    done = "Shared" if r.changed else "Already shared:"
    lines = [f"{done} {identity} ({r.key}) with {team}."]
    if r.subscription != "accepted":
        lines.append(
            "You have not accepted it yourself: nothing of it is sent or received here\n"
            f"until you do: karmactl sub accept {team} {identity}"
        )
    lines.append(f"Each member accepts it with: karmactl sub accept {team} {identity}")
    return _done(ctx, raw, "\n".join(lines))


def project_unshare(ctx: Context) -> int:
    raw_project = ctx.call(
        "project.get", team=ctx.args.team, project=cli.project_arg(ctx.args.project)
    )
    project = decode(raw_project, ProjectInfo)
    if project.state == "unshared":
        return _done(ctx, raw_project, f"{project.identity} is already not shared; nothing to do.")
    if not guarded(
        ctx,
        f"Stop sharing {project.identity} with {ctx.args.team}? Nothing new of it is sent; "
        "what members received stays with them.",
    ):
        return 1
    raw = ctx.call("project.unshare", team=ctx.args.team, project=project.key)
    return _done(ctx, raw, f"{decode(raw, ProjectInfo).identity} is no longer shared.")


def project_ls(ctx: Context) -> int:
    raw = ctx.call("project.list", team=ctx.args.team)
    if ctx.json:
        render.emit_json(raw)
        return 0
    r = decode(raw, ProjectList)
    render.table(
        ["PROJECT", "KEY", "TEAM", "STATE", "YOURS"],
        fit=render.Fit(shrink={0: 20}, drop=(1,)),
        colours={3: render.by_state, 4: render.by_state},
        rows=[
            (p.identity, p.key, team_id[:8], p.state, _yours(p))
            for p, team_id in zip(r.projects, r.team_ids, strict=True)
        ],
    )
    return 0


# --------------------------------------------------------------------------- subscriptions


def sub_ls(ctx: Context) -> int:
    raw = ctx.call("subscription.list", team=ctx.args.team)
    if ctx.json:
        render.emit_json(raw)
        return 0
    render.table(
        ["TEAM", "PROJECT", "STATE", "DIRECTION"],
        fit=render.Fit(shrink={1: 20, 0: 12}),
        colours={2: render.by_state},
        rows=[
            (s.team_name, s.project_identity, s.state, s.direction)
            for s in decode(raw, SubscriptionList).subscriptions
        ],
    )
    return 0


def _sub_done(ctx: Context, raw: Any) -> int:
    r = decode(raw, SubscriptionInfo)
    already = "" if r.changed else "already "
    return _done(
        ctx, raw, f"{r.project_identity} in {r.team_name}: {already}{r.state} ({r.direction})"
    )


def sub_accept(ctx: Context) -> int:
    raw = ctx.call(
        "subscription.accept",
        team=ctx.args.team,
        project=ctx.args.project,
        direction=ctx.args.direction,
    )
    return _sub_done(ctx, raw)


def sub_direction(ctx: Context) -> int:
    raw = ctx.call(
        "subscription.setDirection",
        team=ctx.args.team,
        project=ctx.args.project,
        direction=ctx.args.direction,
    )
    return _sub_done(ctx, raw)


def sub_simple(ctx: Context) -> int:
    raw = ctx.call(ctx.args.method, team=ctx.args.team, project=ctx.args.project)
    return _sub_done(ctx, raw)


def sub_decline(ctx: Context) -> int:
    if ctx.args.purge and not guarded(
        ctx, f"Decline {ctx.args.project} and delete what was received for it?"
    ):
        return 1
    raw = ctx.call(
        "subscription.decline", team=ctx.args.team, project=ctx.args.project, purge=ctx.args.purge
    )
    return _sub_done(ctx, raw)


# --------------------------------------------------------------------------- sync


def sync_status(ctx: Context) -> int:
    raw = ctx.call("sync.status")
    if ctx.json:
        render.emit_json(raw)
        return 0
    r = decode(raw, SyncStatus)
    last_at = wire_time(r.last_cycle_at) if r.last_cycle_at else "-"
    render.kv(
        [
            ("state", r.state),
            ("cycles", r.cycles),
            (
                "last cycle",
                f"{last_at} ({r.last_cycle_ms or 0} ms, {r.last_actions} changes)",
            ),
            ("managed", f"{r.teams} teams, {r.folders} folders, {r.devices} devices"),
        ]
    )
    if r.projects:
        print()
        render.table(
            ["TEAM", "PROJECT", "YOURS", "LOCAL", "PACKAGED", "SENT (COMPLETION)", "RECEIVED"],
            right=(3, 4),
            fit=render.Fit(shrink={1: 20, 5: 16, 6: 16, 0: 12}),
            colours={2: render.by_state},
            rows=[
                (
                    p.team_name,
                    p.identity,
                    p.subscription or "-",
                    p.sessions_local,
                    p.sessions_packaged,
                    ", ".join(
                        f"{d.member} {d.completion:.0f}%"
                        if d.completion is not None
                        else f"{d.member} ?"
                        for d in p.sent
                    )
                    or "-",
                    ", ".join(f"{x.member} {x.sessions}" for x in p.received) or "-",
                )
                for p in r.projects
            ],
        )
    if r.failures:
        print()
        render.table(
            ["FAILING", "ACTION", "ATTEMPTS", "RETRY IN", "ERROR"],
            right=(2, 3),
            fit=render.Fit(shrink={4: 24, 0: 16}),
            rows=[
                (f.target, f.action, f.attempts, f"{f.next_retry_s:.0f}s", f.error)
                for f in r.failures
            ],
        )
    return 1 if r.failures else 0
