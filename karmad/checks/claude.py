"""Can karmad read Claude Code's data, and how long will Claude Code keep it?

Claude Code deletes transcripts inactive for `cleanupPeriodDays` (30 by default) when it
starts. karmad's archive keeps every own session whatever Claude Code deletes; with the
archive turned off only the copies packaged for a team outlive the originals, and
everything else is simply gone. Users rarely know the setting exists, so the doctor says
it out loud.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from karmad import codec
from karmad.doctor import Doctor, fail, ok, warn
from karmad.protocol import DoctorCheck
from karmad.services import Services

DEFAULT_CLEANUP_DAYS = 30
"""Claude Code's default when settings.json does not say."""

KEEPS_LONG_ENOUGH_DAYS = 3650
"""A period this long (ten years) is treated as "never deletes"."""

KEEP_FOREVER_DAYS = 99999


def data_dir_findings(claude_dir: Path) -> list[DoctorCheck]:
    name = "claude.data_dir"
    where = (
        "if Claude Code keeps its data elsewhere, set CLAUDE_CONFIG_DIR for karmad "
        "(or start it with --claude-dir)"
    )
    if claude_dir.is_symlink() and not claude_dir.exists():
        target = os.readlink(claude_dir)
        return [
            fail(
                name,
                f"{claude_dir} is a symbolic link to {target}, which does not exist",
                "mount or restore the link's target, or point the link somewhere that exists",
            )
        ]
    if not claude_dir.exists():
        return [warn(name, f"no Claude Code data at {claude_dir}", where)]
    if not claude_dir.is_dir():
        return [fail(name, f"{claude_dir} is not a directory", where)]
    projects = claude_dir / "projects"
    try:
        entries = list(os.scandir(projects))
    except FileNotFoundError:
        return [
            warn(
                name,
                f"{claude_dir} exists but has no projects/ directory: Claude Code has "
                "recorded no session here yet",
                where,
            )
        ]
    except NotADirectoryError:
        return [
            fail(
                name,
                f"{projects} is not a directory",
                f"move {projects} aside; Claude Code recreates the directory",
            )
        ]
    except PermissionError:
        return [
            fail(
                name,
                f"karmad may not read {projects}",
                f"give karmad's user read access: `chmod -R u+rX {claude_dir}`",
            )
        ]
    except OSError as exc:
        return [fail(name, f"cannot read {projects}: {exc.strerror}", "check that disk")]
    unreadable = []
    count = 0
    for entry in entries:
        try:
            if not entry.is_dir():
                continue
            count += 1
            with os.scandir(entry.path):
                pass
        except OSError:
            unreadable.append(entry.name)
    if unreadable:
        shown = ", ".join(sorted(unreadable)[:3])
        return [
            fail(
                name,
                f"{len(unreadable)} of {count} project directories under {projects} "
                f"cannot be read ({shown})",
                f"give karmad's user read access: `chmod -R u+rX {projects}`",
            )
        ]
    return [ok(name, f"{projects}: {count} project directories, all readable")]


def cleanup_findings(settings: Path, *, archived: bool = False) -> list[DoctorCheck]:
    """`archived`: karmad's archive keeps own sessions (`archive.enabled`)."""
    name = "claude.cleanup"
    keep = (
        f'set "cleanupPeriodDays": {KEEP_FOREVER_DAYS} in {settings} to keep every session '
        "on this machine"
    )
    try:
        data: Any = codec.decode_any(settings.read_bytes())
    except FileNotFoundError:
        data = {}
    except OSError as exc:
        return [warn(name, f"cannot read {settings}: {exc.strerror}", "check its permissions")]
    except codec.InvalidData as exc:
        return [
            warn(
                name,
                f"{settings} is not valid JSON ({exc}); Claude Code cannot read its "
                "settings either",
                "fix the file's syntax",
            )
        ]
    value = data.get("cleanupPeriodDays") if isinstance(data, dict) else None
    if value is None:
        days = DEFAULT_CLEANUP_DAYS
        source = "by default"
    elif isinstance(value, bool) or not isinstance(value, int | float):
        return [warn(name, f"cleanupPeriodDays in {settings} is not a number: {value!r}", keep)]
    else:
        days = int(value)
        source = f"as set in {settings}"
    if days <= 0:
        return [
            fail(
                name,
                f"cleanupPeriodDays is {days} ({source}): Claude Code deletes transcripts at "
                "once (recent versions stop writing them), so there is nothing to share",
                keep,
            )
        ]
    if days < KEEPS_LONG_ENOUGH_DAYS and archived:
        return [
            ok(
                name,
                f"Claude Code deletes sessions inactive for {days} days ({source}); karmad's "
                "archive keeps them (`karmactl archive status`)",
            )
        ]
    if days < KEEPS_LONG_ENOUGH_DAYS:
        return [
            warn(
                name,
                f"Claude Code deletes sessions inactive for {days} days ({source}); after "
                "that karmad's outbox is their only copy, and only for projects shared "
                "with a team",
                keep,
            )
        ]
    return [ok(name, f"Claude Code keeps sessions for {days} days ({source})")]


def register(doctor: Doctor, svc: Services) -> None:
    claude_dir = svc.paths.claude_dir
    settings = svc.paths.claude_settings
    doctor.register_blocking("claude.data_dir", lambda: data_dir_findings(claude_dir))
    archived = svc.config.archive.enabled
    doctor.register_blocking(
        "claude.cleanup", lambda: cleanup_findings(settings, archived=archived)
    )
