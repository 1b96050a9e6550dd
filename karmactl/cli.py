"""`karmactl`: drive karmad from a shell or a script.

Exit status is part of the interface: 0 success, 1 the daemon answered with an error,
2 bad usage, 3 the daemon could not be reached.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from karmactl import cmd_daemon, cmd_doctor, cmd_service
from karmactl.client import Client, ClientError, DaemonUnreachable, RpcError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

COMMAND_MODULES: tuple[Any, ...] = (cmd_daemon, cmd_service, cmd_doctor)


@dataclass
class Context:
    """What a command gets: its parsed arguments and a lazily connected client."""

    args: argparse.Namespace
    json: bool
    socket: str | None
    timeout: float
    _client: Client | None = field(default=None, repr=False)

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


Command = Callable[[Context], int]


def common_options() -> argparse.ArgumentParser:
    """Options accepted before or after the command name (`karmactl --json status` too)."""
    common = argparse.ArgumentParser(add_help=False)
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


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = argparse.ArgumentParser(
        prog="karmactl",
        description="Control karmad, which shares Claude Code sessions through Syncthing.",
        parents=[common],
    )
    from karmad import __version__

    parser.add_argument("--version", action="version", version=f"karmactl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.add_commands(sub, common)
    return parser


def unreachable_message(exc: DaemonUnreachable) -> str:
    return (
        f"karmactl: {exc}\n"
        "karmad does not seem to be running. Start it in the foreground with `karmad`,\n"
        "or install it as a service with `karmactl service install`."
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    ctx = Context(
        args=args,
        json=getattr(args, "json", False),
        socket=getattr(args, "socket", None),
        timeout=getattr(args, "timeout", 30.0),
    )
    func: Command = args.func
    try:
        return func(ctx)
    except DaemonUnreachable as exc:
        print(unreachable_message(exc), file=sys.stderr)
        return EXIT_UNREACHABLE
    except RpcError as exc:
        reason = f" [{exc.reason}]" if exc.reason else ""
        print(f"karmactl: {exc.describe()}{reason}", file=sys.stderr)
        return EXIT_ERROR
    except ClientError as exc:
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
