"""`keeper`: a team's keeper (docs/keeper.md).

On a keeper (`[keeper] enabled`): `keeper code` prints its code for a team leader,
`keeper serve CODE` is the operator's consent to serve the leader's team, `keeper leave
FOLDER` stops serving one, and `keeper status` shows what it holds. On a team leader:
`keeper add TEAM CODE` names the team's keeper and prints the code its operator confirms
with, `keeper remove TEAM` drops it. On any member, `keeper status` shows each team's
keeper as this machine sees it. Each subcommand is one function below, added to the
`keeper` parser in `add_commands`.
"""

from __future__ import annotations

import argparse
import sys

from karmactl import cli, render
from karmactl.typed import decode, wire_time
from karmad.protocol import (
    KeeperAdded,
    KeeperCode,
    KeeperRemoved,
    KeeperServedView,
    KeeperServing,
    KeeperStatus,
    KeeperTeamView,
)

# Type-only imports: `typing` and friends cost start-up time on every invocation.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from karmactl.cli import Context

COMMANDS = ("keeper",)


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    keeper = sub.add_parser("keeper", parents=[common], help="a team's keeper")
    k = keeper.add_subparsers(dest="keeper_command", metavar="ACTION", required=True)

    p = k.add_parser("code", parents=[common], help="keeper: print this keeper's code")
    p.set_defaults(func=keeper_code)

    p = k.add_parser(
        "serve", parents=[common], help="keeper: serve the team whose leader printed CODE"
    )
    p.add_argument("code", help="the code `karmactl keeper add` printed on the leader's machine")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=keeper_serve)

    p = k.add_parser("leave", parents=[common], help="keeper: stop serving a team")
    p.add_argument("folder_id", help="the team's keeper folder (`karmactl keeper status`)")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=keeper_leave)

    p = k.add_parser("add", parents=[common], help="leader: name TEAM's keeper by its CODE")
    p.add_argument("team", help="team name or id")
    p.add_argument("code", help="the keeper's code (`karmactl keeper code` on the keeper)")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=keeper_add)

    p = k.add_parser("remove", parents=[common], help="leader: TEAM's keeper stops holding it")
    p.add_argument("team", help="team name or id")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=keeper_remove)

    p = k.add_parser(
        "status", parents=[common], help="what the keeper holds, or each team's keeper as seen here"
    )
    p.set_defaults(func=keeper_status)


def _short(device_id: str) -> str:
    return device_id[:7]


def keeper_code(ctx: Context) -> int:
    raw = ctx.call("keeper.code")
    if ctx.json:
        render.emit_json(raw)
        return 0
    r = decode(raw, KeeperCode)
    print(r.code)
    print(
        f"\nThis is keeper {_short(r.device_id)}. Give the code above to a team leader, who "
        f"runs:\n  karmactl keeper add TEAM {r.code}",
        file=sys.stderr,
    )
    return 0


def _asked(ctx: Context, question: Callable[[], str]) -> bool:
    """Ask before acting, unless `--yes` or `--json` (scripts) answer for the user.

    `question` is called only when asking: it may decode the code given, so a mistyped
    code is refused before anything is asked (raising `DomainError`)."""
    if ctx.json or ctx.args.yes:
        return True
    from karmactl.cmd_teams import guarded
    from karmad.domain import DomainError

    try:
        text = question()
    except DomainError as exc:
        print(f"karmactl: {exc}", file=sys.stderr)
        return False
    return guarded(ctx, text)


def keeper_serve(ctx: Context) -> int:
    def question() -> str:
        from karmad import codes  # only here: the check needs no daemon

        wanted = codes.decode_serve(ctx.args.code)
        return (
            f"Serve the team of leader device {wanted.leader_device} (keeper folder "
            f"{wanted.folder_id})?"
        )

    if not _asked(ctx, question):
        return cli.EXIT_ERROR
    raw = ctx.call("keeper.serve", code=ctx.args.code)
    if ctx.json:
        render.emit_json(raw)
        return 0
    r = decode(raw, KeeperServing)
    said = "Serving" if r.changed else "Already serving"
    print(f"{said} the team of leader {_short(r.leader_device)} (keeper folder {r.folder_id}).")
    return 0


def keeper_leave(ctx: Context) -> int:
    folder = ctx.args.folder_id
    if not _asked(
        ctx,
        lambda: (
            f"Stop serving the team of keeper folder {folder} and delete what this "
            "keeper holds of it?"
        ),
    ):
        return cli.EXIT_ERROR
    raw = ctx.call("keeper.leave", folder_id=ctx.args.folder_id)
    if ctx.json:
        render.emit_json(raw)
        return 0
    r = decode(raw, KeeperServing)
    print(f"No longer serving the team of leader {_short(r.leader_device)} ({r.folder_id}).")
    return 0


def keeper_add(ctx: Context) -> int:
    def question() -> str:
        from karmad import codes  # only here: the check needs no daemon

        wanted = codes.decode_keeper(ctx.args.code)
        return (
            f"Make device {wanted.device_id} the keeper of {ctx.args.team}? It will hold "
            "every team folder, encrypted, and serve it to members"
        )

    if not _asked(ctx, question):
        return cli.EXIT_ERROR
    raw = ctx.call("keeper.add", team=ctx.args.team, code=ctx.args.code)
    if ctx.json:
        render.emit_json(raw)
        return 0
    r = decode(raw, KeeperAdded)
    said = "Keeper" if r.changed else "Already the keeper:"
    print(r.serve_code)
    print(
        f"\n{said} {_short(r.keeper_device)} of {r.team_name}. Give the code above to the "
        f"keeper's operator, who runs:\n  karmactl keeper serve {r.serve_code}",
        file=sys.stderr,
    )
    return 0


def keeper_remove(ctx: Context) -> int:
    team = ctx.args.team
    if not _asked(ctx, lambda: f"Remove the keeper of {team}?"):
        return cli.EXIT_ERROR
    raw = ctx.call("keeper.remove", team=ctx.args.team)
    if ctx.json:
        render.emit_json(raw)
        return 0
    r = decode(raw, KeeperRemoved)
    if r.changed:
        print(f"Keeper {_short(r.keeper_device)} removed: members drop it.")
    else:
        print(f"Keeper {_short(r.keeper_device)} was removed already.")
    return 0


def keeper_status(ctx: Context) -> int:
    raw = ctx.call("keeper.status")
    if ctx.json:
        render.emit_json(raw)
        return 0
    r = decode(raw, KeeperStatus)
    if r.mode == "keeper":
        print(f"keeper {r.device_id or '?'}")
        if not r.served:
            print("Serving no team yet: `karmactl keeper serve CODE`.")
        for team in r.served:
            _served(team)
        return 0
    if not r.teams:
        print("No team of this machine has a keeper.")
    for view in r.teams:
        _team(view)
    return 0


def _team(view: KeeperTeamView) -> None:
    print()
    if view.epoch is None:
        key = "none yet"
    elif view.current_epoch is not None and view.epoch < view.current_epoch:
        key = f"{view.epoch} (the team is at {view.current_epoch})"
    else:
        key = str(view.epoch)
    render.kv(
        [
            ("team", f"{view.team_name} ({view.role})"),
            ("keeper", view.keeper_device),
            ("connected", "?" if view.connected is None else "yes" if view.connected else "no"),
            ("key", key),
            ("listed", "on every team folder" if view.listed else "on its own folder only"),
            *([("problem", view.problem)] if view.problem else []),
        ]
    )
    if view.folders:
        print()
        render.table(
            ["FOLDER", "OWNER", "KIND", "KEY"],
            [
                [f.folder_id, f.owner or "", f.kind, f.generation if f.kind == "content" else ""]
                for f in view.folders
            ],
            right=(3,),
        )


def _served(team: KeeperServedView) -> None:
    print()
    render.kv(
        [
            ("leader", team.leader_device),
            ("keeper folder", team.folder_id),
            ("accepted", wire_time(team.accepted_at)),
            ("control", "none yet" if team.control_seq is None else f"seq {team.control_seq}"),
            ("epoch", "" if team.epoch is None else team.epoch),
            ("devices", ", ".join(_short(d) for d in team.devices) or "none"),
            *([("dissolved", "yes")] if team.dissolved else []),
            *([("problem", team.problem)] if team.problem else []),
        ]
    )
    if team.folders:
        print()
        render.table(
            ["FOLDER", "KIND", "DEVICES", "GEN", "FILES", "SIZE", "STATE", "ERROR"],
            [
                [
                    f.folder_id,
                    f.kind,
                    f.devices,
                    f.generation if f.kind == "content" else "",
                    "" if f.local_files is None else f.local_files,
                    "" if f.local_bytes is None else render.size(f.local_bytes),
                    f.state,
                    f.error or "",
                ]
                for f in team.folders
            ],
            right=(2, 3, 4, 5),
        )
