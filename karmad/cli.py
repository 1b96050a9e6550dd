"""`karmad`: run the daemon in the foreground.

Service managers (systemd, launchd) run it exactly like a person would; there is no
self-daemonising mode because supervisors do that job better.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from pathlib import Path

from karmad import __version__

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="karmad",
        description=(
            "Share Claude Code sessions between your machines and your team, "
            "peer-to-peer through Syncthing. Runs in the foreground; "
            "use `karmactl service install` to run it as a service."
        ),
    )
    parser.add_argument("--version", action="version", version=f"karmad {__version__}")
    parser.add_argument(
        "--backend",
        choices=("asyncio", "trio"),
        default="asyncio",
        help="event loop to run on (default: asyncio)",
    )
    paths = parser.add_argument_group("paths (each also settable by environment)")
    paths.add_argument("--config", type=Path, help="config file ($KARMAD_CONFIG)")
    paths.add_argument("--state-dir", type=Path, help="store, Syncthing home ($KARMAD_STATE_DIR)")
    paths.add_argument("--runtime-dir", type=Path, help="socket directory ($KARMAD_RUNTIME_DIR)")
    paths.add_argument("--socket", type=Path, help="control socket ($KARMAD_SOCKET)")
    paths.add_argument("--claude-dir", type=Path, help="Claude Code data ($CLAUDE_CONFIG_DIR)")
    paths.add_argument("--log-dir", type=Path, help="log files, where used ($KARMAD_LOG_DIR)")
    logs = parser.add_argument_group("logging")
    logs.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    logs.add_argument("--log-format", choices=("auto", "console", "json", "journal"))
    logs.add_argument(
        "--log-file",
        action="store_true",
        default=None,
        help="write karmad.log in the log directory, rotated by size, instead of stderr",
    )
    return parser


def _leaf(exc: BaseException) -> BaseException:
    """The one exception inside task-group wrappers, which say nothing to a person."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _describe(exc: BaseException) -> str:
    """What went wrong and, where we know it, what to do about it: one line."""
    if isinstance(exc, OSError):
        what = exc.strerror or str(exc)
        where = f": {exc.filename}" if exc.filename else ""
        if exc.errno == errno.ENOSPC:
            return f"{what}{where}; free some disk space and start again"
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"{what}{where}; karmad needs to write there (check its owner and mode)"
        if "AF_UNIX path too long" in str(exc) or exc.errno == errno.ENAMETOOLONG:
            return (
                f"{what}{where}; choose a shorter socket path "
                "(--socket or $KARMAD_SOCKET, at most 107 bytes)"
            )
        if exc.errno == errno.EADDRINUSE:
            return f"{what}{where}; another program holds the socket path"
        return f"{what}{where}"
    return str(exc) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def early_fail(message: str) -> int:
        print(f"karmad: {message}", file=sys.stderr)
        return EXIT_ERROR

    # Imported here so `karmad --help` and `--version` stay instant. A broken install
    # is said in one line, not as an import traceback.
    try:
        import anyio
        import msgspec

        from karmad import app, config_load, logs, sdnotify
        from karmad import paths as paths_mod
        from karmad.lock import AlreadyRunning
        from karmad.store import StoreCorrupt, StoreError, StoreFull
    except ImportError as exc:
        return early_fail(
            f"a package karmad needs cannot be imported ({exc}); "
            "reinstall it: pip install --force-reinstall karmad"
        )
    try:
        # anyio imports the backend only inside `run`; checked first, so that the answer
        # is a sentence and not anyio's LookupError.
        importlib.import_module(args.backend)
    except ImportError as exc:
        return early_fail(
            f"the {args.backend} event loop cannot be imported ({exc}); "
            f"install it (pip install {args.backend}) or run with --backend asyncio"
        )

    # Taken out of the environment at once, so no child ever inherits it.
    notifier = sdnotify.Notifier.from_environ(unset=True)
    log = logs.get("karmad")
    log_to_file = False

    logs_configured = False

    def fail(message: str, event: str = "start_failed") -> int:
        # One line wherever a person will read it: a log file gets the structured event
        # too, and on the journal the event itself is that line (with its priority).
        journal = logs_configured and logs.stderr_is_journal()
        if log_to_file or journal:
            log.error(event, error=message)
        if not journal:
            print(f"karmad: {message}", file=sys.stderr)
        elif log_to_file:
            print(f"<3>karmad: {message}", file=sys.stderr)
        notifier.status(f"failed: {message}")
        return EXIT_ERROR

    paths = paths_mod.resolve(
        paths_mod.Overrides(
            config_file=args.config,
            state_dir=args.state_dir,
            runtime_dir=args.runtime_dir,
            socket=args.socket,
            claude_dir=args.claude_dir,
            log_dir=args.log_dir,
        )
    )
    log_file = paths.log_dir / logs.LOG_FILE_NAME
    if args.log_file:
        # Set up before the config is read, so that a config error reaches the file too:
        # under launchd nobody reads stderr.
        try:
            paths_mod.ensure_private_dir(paths.log_dir)
            logs.configure(args.log_level or "info", args.log_format or "auto", file=log_file)
        except (OSError, paths_mod.UnsafeDirectory) as exc:
            return fail(f"cannot open the log file {log_file}: {exc}")
        log_to_file = logs_configured = True
    try:
        config = config_load.load(paths.config_file)
    except config_load.ConfigError as exc:
        return fail(f"invalid configuration: {exc}", "invalid_config")
    daemon_cfg = config.daemon
    if args.log_level or args.log_format or args.log_file:
        daemon_cfg = msgspec.structs.replace(
            daemon_cfg,
            log_level=args.log_level or daemon_cfg.log_level,
            log_format=args.log_format or daemon_cfg.log_format,
            log_file=args.log_file or daemon_cfg.log_file,
        )
        config = msgspec.structs.replace(config, daemon=daemon_cfg)
    try:
        if daemon_cfg.log_file:
            paths_mod.ensure_private_dir(paths.log_dir)
        logs.configure(
            daemon_cfg.log_level,
            daemon_cfg.log_format,
            file=log_file if daemon_cfg.log_file else None,
            max_bytes=daemon_cfg.log_max_bytes,
            backups=daemon_cfg.log_backups,
        )
    except (OSError, paths_mod.UnsafeDirectory) as exc:
        return fail(f"cannot open the log file {log_file}: {exc}")
    log_to_file = bool(daemon_cfg.log_file)
    logs_configured = True

    try:
        locks = app.prepare(paths)
    except AlreadyRunning as exc:
        return fail(f"{exc}; stop it first (`karmactl stop`)", "already_running")
    except paths_mod.UnsafeDirectory as exc:
        return fail(f"cannot prepare directories: {exc}", "prepare_failed")
    except OSError as exc:
        return fail(f"cannot prepare directories: {_describe(exc)}", "prepare_failed")
    daemon = app.Daemon(paths, config, args.backend, notifier=notifier)
    try:
        anyio.run(daemon.run, backend=args.backend)
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as exc:
        leaf = _leaf(exc)
        if isinstance(leaf, StoreFull):
            return fail(f"{leaf}; free some disk space and start again", "store_failed")
        if isinstance(leaf, StoreCorrupt):
            return fail(
                f"{leaf}; restore it from a backup, or move it aside to start afresh "
                "(docs/starting-over.md)",
                "store_failed",
            )
        if isinstance(leaf, StoreError):
            return fail(str(leaf), "store_failed")
        if not daemon.ready:
            # A start-up failure is the environment's (a path, a permission, the disk):
            # one line says which; the traceback is for --log-level debug.
            log.debug("start_failed_traceback", exc_info=exc)
            return fail(f"could not start: {_describe(leaf)}")
        # Logged rather than left to the interpreter so that the traceback reaches the
        # journal or the log file, wherever this daemon's output goes.
        log.exception("crashed")
        return fail(f"crashed: {leaf!r}", "crashed")
    finally:
        locks.release()
        notifier.close()
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
