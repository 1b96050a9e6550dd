"""A keeper checking its own data (docs/keeper.md 2.9): pure judgements, no I/O.

Syncthing's completion figure for a receive-encrypted folder stays at 100 % whatever
the keeper lost (docs/keeper.md section 1), so the keeper reads its own folder status
instead. Lost data shows as:

- the folder path or its marker missing (the directory was wiped or unmounted);
- fewer local files than the folder announces while idle (a wiped directory whose
  marker was recreated: Syncthing then reports the files as in sync, and serves nothing);
- files needed while idle;
- "unexpected items" (a lost database: K rescans its own ciphertext as local changes).

The repair is to re-create the folder (wipe, add, reset the peers) and refill it from
whoever is online; at most once per `REPAIR_INTERVAL` per folder, since a folder whose
only holders are offline stays short however often it is re-created.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from karmad.syncthing.models import FolderStatus

REPAIR_INTERVAL = timedelta(hours=1)
GRACE = timedelta(seconds=10)
"""A folder just added or changed is not judged yet: Syncthing is still creating its
marker and counting its files."""
_MISSING = ("folder path missing", "folder marker missing")


def damage(status: FolderStatus | None, error: str, *, marker: bool = True) -> str | None:
    """Why this receive-encrypted folder has lost data, or None if nothing says so.

    `marker`: whether the folder's directory still holds Syncthing's `.stfolder` marker
    (checked by the keeper on its own disk: Syncthing notices only at its next scan,
    which for a keeper's folders may be an hour away)."""
    if not marker:
        return "the folder's directory or its marker is missing"
    lowered = error.lower()
    if any(m in lowered for m in _MISSING):
        return f"Syncthing reports: {error}"
    if status is None:
        return None
    if any(m in status.error.lower() for m in _MISSING):
        return f"Syncthing reports: {status.error}"
    if status.state != "idle":
        return None  # scanning or syncing: the counts are moving
    if status.receive_only_changed_files > 0:
        return f"{status.receive_only_changed_files} unexpected item(s): the database was lost"
    if status.need_files > 0:
        return f"{status.need_files} file(s) needed while idle"
    if status.local_files < status.global_files:
        return f"holds {status.local_files} of {status.global_files} files"
    return None


def due_repairs(
    damaged: Mapping[str, str],
    recreated: Mapping[str, datetime],
    touched: Mapping[str, datetime],
    now: datetime,
) -> dict[str, str]:
    """The damaged folders to re-create now: not re-created within `REPAIR_INTERVAL`
    (`recreated`), nor added or changed within `GRACE` (`touched`)."""
    return {
        fid: reason
        for fid, reason in damaged.items()
        if (fid not in recreated or now - recreated[fid] >= REPAIR_INTERVAL)
        and (fid not in touched or now - touched[fid] >= GRACE)
    }
