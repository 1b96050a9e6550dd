"""Purging a declined project: only inside its inbox, and only once the inbox ignores it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from karmad.domain import folder_id, project_key
from karmad.paths import project_dir
from karmad.state_schema import STATE_SCHEMA
from karmad.store import Store
from karmad.sync.executor import Executor
from karmad.sync.plan import Action, PurgeReceived, SetIgnores
from karmad.sync.port import ActionFailed

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 6, 1, tzinfo=UTC)
FID = folder_id("abcdefghijklmnopqrstuvwxyz", "OWNER")
KEY = project_key("github.com/o/r")


class RefusingSyncthing:
    """Syncthing as the executor sees it, refusing every change. A purge never needs it."""

    async def set_ignores(self, folder_id: str, patterns: Sequence[str]) -> None:
        raise ActionFailed("refused")

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"a purge used Syncthing: {name}")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(tmp_path / "karmad.db", STATE_SCHEMA)
    yield store
    store.close()


def _executor(store: Store, folders: Path) -> Executor:
    return Executor(RefusingSyncthing(), store, folders, lambda: NOW)  # type: ignore[arg-type]


def _received(folders: Path) -> Path:
    target = project_dir(folders, FID, KEY)
    target.mkdir(parents=True)
    (target / "s1.jsonl").write_text("{}\n")
    return target


async def test_a_purge_deletes_the_project_directory(tmp_path: Path, store: Store) -> None:
    folders = tmp_path / "folders"
    target = _received(folders)
    outcome = await _executor(store, folders).execute([PurgeReceived(FID, KEY)])
    assert outcome.done == [PurgeReceived(FID, KEY)] and not target.exists()
    assert (folders / FID / "projects").is_dir()


@pytest.mark.parametrize("link", ["project", "projects"])
async def test_a_purge_never_follows_a_link_out_of_the_inbox(
    tmp_path: Path, store: Store, link: str
) -> None:
    """The owner's Syncthing decides what an inbox holds, links included."""
    folders = tmp_path / "folders"
    elsewhere = tmp_path / "home"
    (elsewhere / KEY).mkdir(parents=True)
    (elsewhere / KEY / "precious").write_text("keep")
    (folders / FID / "projects").mkdir(parents=True)
    if link == "project":
        (folders / FID / "projects" / KEY).symlink_to(elsewhere / KEY)
    else:
        (folders / FID / "projects").rmdir()
        (folders / FID / "projects").symlink_to(elsewhere)
    outcome = await _executor(store, folders).execute([PurgeReceived(FID, KEY)])
    assert not outcome.done
    assert [type(a) for a, _ in outcome.failed] == [PurgeReceived]
    assert "outside its inbox" in outcome.failed[0][1]
    assert (elsewhere / KEY / "precious").read_text() == "keep"


async def test_a_purge_waits_for_its_inbox_to_ignore_the_project(
    tmp_path: Path, store: Store
) -> None:
    """Deleting what Syncthing still admits would be a local change it sends back for."""
    folders = tmp_path / "folders"
    target = _received(folders)
    actions: list[Action] = [SetIgnores(FID, ("!/state", "*")), PurgeReceived(FID, KEY)]
    executor = _executor(store, folders)
    outcome = await executor.execute(actions)
    assert [type(a) for a, _ in outcome.failed] == [SetIgnores]
    assert outcome.skipped == [PurgeReceived(FID, KEY)]
    assert target.exists()
    # Still failing (backing off): the purge keeps waiting.
    outcome = await executor.execute([PurgeReceived(FID, KEY)])
    assert outcome.skipped == [PurgeReceived(FID, KEY)] and target.exists()
