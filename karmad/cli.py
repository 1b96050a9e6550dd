"""`karmad`: run the daemon in the foreground.

Service managers (systemd, launchd) run it exactly like a person would; there is no
self-daemonising mode because supervisors do that job better.
"""

from __future__ import annotations

import argparse
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    # Imported here so `karmad --help` and `--version` stay instant.
    import anyio
    import msgspec

    from karmad import app, logs
    from karmad import config as config_mod
    from karmad import paths as paths_mod
    from karmad.lock import AlreadyRunning
    from karmad.store import StoreError

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
    try:
        config = config_mod.load(paths.config_file)
    except config_mod.ConfigError as exc:
        print(f"karmad: invalid configuration: {exc}", file=sys.stderr)
        return EXIT_ERROR
    daemon_cfg = config.daemon
    if args.log_level or args.log_format:
        daemon_cfg = msgspec.structs.replace(
            daemon_cfg,
            log_level=args.log_level or daemon_cfg.log_level,
            log_format=args.log_format or daemon_cfg.log_format,
        )
        config = msgspec.structs.replace(config, daemon=daemon_cfg)
    logs.configure(daemon_cfg.log_level, daemon_cfg.log_format)
    log = logs.get("karmad")

    try:
        locks = app.prepare(paths)
    except AlreadyRunning as exc:
        print(f"karmad: {exc}; stop it first (`karmactl stop`)", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, paths_mod.UnsafeDirectory) as exc:
        print(f"karmad: cannot prepare directories: {exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        anyio.run(app.Daemon(paths, config, args.backend).run, backend=args.backend)
    except StoreError as exc:
        log.error("store_failed", error=str(exc))
        print(f"karmad: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        locks.release()
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
