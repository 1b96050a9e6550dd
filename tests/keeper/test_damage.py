"""A keeper's own check of its data (docs/keeper.md 2.9), as measured in section 1."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from karmad.keeper.damage import GRACE, REPAIR_INTERVAL, damage, due_repairs
from karmad.syncthing.models import FolderStatus

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _idle(**counts: int) -> FolderStatus:
    whole = FolderStatus(state="idle", local_files=332, global_files=332, in_sync_files=332)
    return msgspec.structs.replace(whole, **counts)


@pytest.mark.parametrize(
    ("status", "error", "marker", "reason"),
    [
        # A whole folder, in sync.
        (_idle(), "", True, None),
        # The wiped directory: Syncthing says so at its next scan; karmad sees the marker
        # gone at once.
        (_idle(), "folder path missing", True, "folder path missing"),
        (FolderStatus(state="error", error="folder marker missing"), "", True, "marker missing"),
        (_idle(), "", False, "directory or its marker is missing"),
        # The marker recreated and rescanned: "in sync" and empty (measured).
        (_idle(local_files=0, need_files=0), "", True, "holds 0 of 332 files"),
        # The database lost: its own ciphertext rescanned as unexpected items.
        (_idle(receive_only_changed_files=332), "", True, "unexpected item"),
        (_idle(need_files=3), "", True, "3 file(s) needed while idle"),
        # Still syncing: counts are moving, nothing to conclude.
        (
            FolderStatus(state="syncing", local_files=10, global_files=332, need_files=322),
            "",
            True,
            None,
        ),
        (None, "", True, None),
    ],
)
def test_lost_data_is_named_and_a_whole_folder_is_not(
    status: FolderStatus | None, error: str, marker: bool, reason: str | None
) -> None:
    found = damage(status, error, marker=marker)
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason in found


@given(
    st.dictionaries(
        st.sampled_from(["a", "b", "c", "d"]),
        st.timedeltas(min_value=timedelta(0), max_value=2 * REPAIR_INTERVAL),
    ),
    st.dictionaries(
        st.sampled_from(["a", "b", "c", "d"]),
        st.timedeltas(min_value=timedelta(0), max_value=2 * GRACE),
    ),
)
def test_a_folder_is_repaired_at_most_once_an_interval_and_never_while_new(
    recreated_ago: dict[str, timedelta], touched_ago: dict[str, timedelta]
) -> None:
    damaged = dict.fromkeys("abcd", "lost")
    due = due_repairs(
        damaged,
        {f: NOW - ago for f, ago in recreated_ago.items()},
        {f: NOW - ago for f, ago in touched_ago.items()},
        NOW,
    )
    for fid in "abcd":
        recent = recreated_ago.get(fid, REPAIR_INTERVAL) < REPAIR_INTERVAL
        new = touched_ago.get(fid, GRACE) < GRACE
        assert (fid in due) == (not recent and not new)
