"""`karmactl`: drive karmad from a shell or a script.

Exit status is part of the interface: 0 success, 1 the daemon answered with an error,
2 bad usage, 3 the daemon could not be reached.
"""

from __future__ import annotations

import argparse
import os
import sys

from karmactl.client import Client, ClientError, CommandFailed, DaemonUnreachable, RpcError

# Type-only imports: `typing` and friends cost start-up time on every invocation.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

COMMAND_INDEX: dict[str, str] = {
    "status": "cmd_daemon",
    "hello": "cmd_daemon",
    "events": "cmd_daemon",
    "stop": "cmd_daemon",
    "sessions": "cmd_sessions",
    "usage": "cmd_usage",
    "index": "cmd_index",
    "init": "cmd_teams",
    "whoami": "cmd_teams",
    "pair": "cmd_teams",
    "team": "cmd_teams",
    "project": "cmd_teams",
    "sub": "cmd_teams",
    "sync": "cmd_teams",
    "syncthing": "cmd_syncthing",
    "devices": "cmd_syncthing",
    "folders": "cmd_syncthing",
    "pending": "cmd_syncthing",
    "share": "cmd_share",
    "service": "cmd_service",
    "doctor": "cmd_doctor",
    "archive": "cmd_archive",
    "keeper": "cmd_keeper",
}
"""Which module implements each command, so a run imports only the module it needs
(a test keeps this equal to the modules' own `COMMANDS`)."""


def command_modules() -> list[Any]:
    names = dict.fromkeys(COMMAND_INDEX.values())
    return [command_module(name) for name in names]


def command_module(name: str) -> Any:
    """`importlib.import_module` without importing `importlib` (a quarter of a millisecond
    on every run, 1% of `karmactl status`): the module lands in `sys.modules`."""
    __import__(f"karmactl.{name}")
    return sys.modules[f"karmactl.{name}"]


class Context:
    """What a command gets: its parsed arguments and a lazily connected client."""

    def __init__(
        self, args: argparse.Namespace, *, json: bool, socket: str | None, timeout: float
    ) -> None:
        self.args = args
        self.json = json
        self.socket = socket
        self.timeout = timeout
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.socket, timeout=self.timeout)
            self._client.connect()
        return self._client

    def call(self, method: str, **params: Any) -> Any:
        return self.client.call(method, params)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter imports shutil (and with it compression modules) to ask the
    terminal's width, on every add_argument; `os` answers the same question for free."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            try:
                columns = int(os.environ.get("COLUMNS", "")) or os.get_terminal_size().columns
            except (ValueError, OSError):
                columns = 80
            width = max(columns - 2, 20)
        super().__init__(prog, indent_increment, max_help_position, width)


class Parser(argparse.ArgumentParser):
    json_errors = False
    """Set when the command line asks for `--json`: usage errors are then JSON too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if Parser.json_errors:
            emit_error(EXIT_USAGE, "usage", message)
            raise SystemExit(EXIT_USAGE)
        super().error(message)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """argparse's check, with the nearest choice suggested for a misspelt one."""
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError:
            if action.choices is None or not isinstance(value, str):
                raise
            import difflib

            near = difflib.get_close_matches(value, [str(c) for c in action.choices], n=1)
            if not near:
                raise
            choices = ", ".join(map(repr, action.choices))
            raise argparse.ArgumentError(
                action,
                f"invalid choice: {value!r}, maybe you meant {near[0]!r}? (choose from {choices})",
            ) from None


def wide_option() -> argparse.ArgumentParser:
    """`--wide`, for commands that print tables."""
    wide = Parser(add_help=False)
    wide.add_argument(
        "--wide",
        action="store_true",
        default=argparse.SUPPRESS,
        help="every column in full, however wide the terminal",
    )
    return wide


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def project_arg(text: str | None) -> str | None:
    """A project as given, with a path made absolute here: the daemon runs elsewhere."""
    if text and (text.startswith((".", "~")) or os.path.isdir(text)):
        return os.path.abspath(os.path.expanduser(text))
    return text


def positive(text: str) -> int:
    """argparse `type=` for counts that must be at least 1 (`-n 0` is bad usage)."""
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def time_zone(text: str) -> str:
    """argparse `type=` for an IANA zone name (`Europe/Paris`, `UTC`)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(
            f"unknown time zone {text!r}: use an IANA name such as Europe/Paris or UTC"
        ) from None
    return text


def not_negative(text: str) -> int:
    """argparse `type=` for counts where 0 means none (`events -n 0`)."""
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def common_options() -> argparse.ArgumentParser:
    """Options accepted before or after the command name (`karmactl --json status` too)."""
    common = Parser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    common.add_argument(
        "--socket", default=argparse.SUPPRESS, help="karmad's socket (default: $KARMAD_SOCKET)"
    )
    common.add_argument(
        "--timeout",
        type=float,
        default=argparse.SUPPRESS,
        help="seconds to wait for an answer (default: 30)",
    )
    return common


def _wanted_command(argv: list[str]) -> tuple[str, Any] | None:
    """The command the arguments name and the one module implementing it, or None when
    every command is needed (help, typos). Building every subparser on every call would
    cost more than the RPC: argparse formats and translates strings for each one."""
    for token in argv:
        if token.startswith("-"):
            continue
        name = COMMAND_INDEX.get(token)
        return None if name is None else (token, command_module(name))
    return None


class _Unbuilt:
    """Stands in for the parser of a command this run does not run; takes every call."""

    def __getattr__(self, name: str) -> Callable[..., _Unbuilt]:
        return self._ignore

    def _ignore(self, *args: Any, **kwargs: Any) -> _Unbuilt:
        return self


class _OnlyCommand:
    """The `add_subparsers` action, building only the parser of the command asked for."""

    def __init__(self, sub: Any, command: str) -> None:
        self._sub = sub
        self._command = command

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if name == self._command:
            return self._sub.add_parser(name, **kwargs)
        return _Unbuilt()


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    common = common_options()
    parser = Parser(
        prog="karmactl",
        description="Control karmad, which shares Claude Code sessions through Syncthing.",
        parents=[common],
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0)
    # An explicit prog keeps argparse from building a help formatter up front.
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, prog="karmactl")
    wanted = None if argv is None else _wanted_command(argv)
    if wanted is None:
        for module in command_modules():
            module.add_commands(sub, common)
    else:
        command, module = wanted
        module.add_commands(_OnlyCommand(sub, command), common)
    return parser


class _VersionAction(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from karmad import __version__

        print(f"karmactl {__version__}")
        parser.exit()


def unreachable_message(exc: DaemonUnreachable) -> str:
    return (
        f"karmactl: {exc}\n"
        "karmad does not seem to be running. Start it in the foreground with `karmad`,\n"
        "or install it as a service with `karmactl service install`."
    )


def emit_error(
    exit_status: int,
    reason: str,
    message: str,
    *,
    code: int | None = None,
    detail: str = "",
    field: str = "",
) -> None:
    """An error for scripts (`--json`): one JSON object on stdout, whatever failed."""
    import json

    error: dict[str, Any] = {"code": code, "reason": reason, "message": message}
    if detail:
        error["detail"] = detail
    if field:
        error["field"] = field
    print(json.dumps({"error": error, "exit": exit_status}, ensure_ascii=False))


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    Parser.json_errors = "--json" in arguments
    args = build_parser(arguments).parse_args(arguments)
    ctx = Context(
        args=args,
        json=getattr(args, "json", False),
        socket=getattr(args, "socket", None),
        timeout=getattr(args, "timeout", 30.0),
    )
    if getattr(args, "wide", False):
        from karmactl import render

        render.WIDE = True
    func: Callable[[Context], int] = args.func
    try:
        return func(ctx)
    except DaemonUnreachable as exc:
        if ctx.json:
            emit_error(EXIT_UNREACHABLE, exc.reason, str(exc), detail=exc.why)
        else:
            print(unreachable_message(exc), file=sys.stderr)
        return EXIT_UNREACHABLE
    except RpcError as exc:
        if ctx.json:
            field = str(exc.data.get("field") or "")
            emit_error(
                EXIT_ERROR, exc.reason, exc.message, code=exc.code, detail=exc.detail, field=field
            )
        else:
            reason = f" [{exc.reason}]" if exc.reason else ""
            print(f"karmactl: {exc.describe()}{reason}", file=sys.stderr)
        return EXIT_ERROR
    except CommandFailed as exc:
        if ctx.json:
            emit_error(exc.exit, exc.reason, str(exc))
        else:
            print(f"karmactl: {exc}", file=sys.stderr)
        return exc.exit
    except ClientError as exc:
        if ctx.json:
            emit_error(EXIT_ERROR, exc.reason, str(exc))
        else:
            print(f"karmactl: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `karmactl ... | head`: the reader left; that is not an error of ours.
        sys.stderr.close()
        return EXIT_OK
    finally:
        ctx.close()


if __name__ == "__main__":
    raise SystemExit(main())
