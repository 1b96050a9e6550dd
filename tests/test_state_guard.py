"""A state store that lost this machine's identity stops karmad instead of starting it as
a brand-new member; the databases are private. Real karmad processes, real files."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from karmad.state_guard import MARKER
from karmad.state_schema import STATE_SCHEMA
from karmad.store import Store
from tests.support.daemon import REPO, Home, KarmadProcess, karmad_command

Factory = Callable[..., KarmadProcess]


def start_fails(home: Home) -> str:
    """Run karmad expecting a start-up failure; returns its stderr."""
    done = subprocess.run(
        karmad_command(), env=home.env(), capture_output=True, timeout=60, cwd=REPO, check=False
    )
    assert done.returncode == 1, done.stderr.decode()
    return done.stderr.decode()


def member(karmad_factory: Factory, home: Home) -> None:
    """A machine with an identity, stopped cleanly."""
    karmad = karmad_factory(home=home)
    karmad.call("identity.init", {"user": "alice", "machine": "laptop"})
    assert karmad.stop() == 0


def empty(store: Path) -> None:
    store.write_bytes(b"")


def missing(store: Path) -> None:
    store.unlink()


def fresh(store: Path) -> None:
    """Replaced by a sound store without an identity (as an older karmad would have
    made of an emptied one)."""
    store.unlink()
    Store.open(store, STATE_SCHEMA).close()


@pytest.mark.parametrize(
    ("damage", "said"),
    [(empty, "is empty"), (missing, "is missing"), (fresh, "holds no identity")],
)
def test_a_store_that_lost_the_identity_stops_karmad(
    karmad_factory: Factory, home: Home, damage: Callable[[Path], None], said: str
) -> None:
    member(karmad_factory, home)
    store = home.state / "karmad.db"
    damage(store)
    before = store.read_bytes() if store.exists() else None
    err = start_fails(home)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert said in line and "alice.laptop" in line and str(store) in line
    assert "restore karmad.db from a backup" in line and "docs/starting-over.md" in line
    # Nothing was created or changed: the evidence stays as it was for the restore.
    assert (store.read_bytes() if store.exists() else None) == before
    assert (home.state / MARKER).exists()


def test_a_restored_store_starts_again(karmad_factory: Factory, home: Home) -> None:
    member(karmad_factory, home)
    store = home.state / "karmad.db"
    backup = store.read_bytes()
    empty(store)
    start_fails(home)
    store.write_bytes(backup)
    karmad = karmad_factory(home=home)
    assert karmad.call("identity.get")["member_tag"] == "alice.laptop"


def test_without_an_identity_an_empty_store_is_a_fresh_start(
    karmad_factory: Factory, home: Home
) -> None:
    karmad = karmad_factory(home=home)
    assert karmad.stop() == 0
    empty(home.state / "karmad.db")
    karmad_factory(home=home).call("daemon.status")


def test_a_team_folder_in_syncthings_config_is_a_witness_too(
    karmad_factory: Factory, home: Home
) -> None:
    """A store from before the marker existed: the managed Syncthing's configuration
    lists a team folder only once this machine was in a team."""
    member(karmad_factory, home)
    (home.state / MARKER).unlink()
    config = home.state / "syncthing" / "config.xml"
    config.parent.mkdir(mode=0o700)
    config.write_text('<configuration>\n    <folder id="karma-abc" path="x"></folder>\n')
    empty(home.state / "karmad.db")
    line = start_fails(home).strip()
    assert "is empty" in line and str(config) in line


def test_the_marker_is_written_for_an_identity_that_has_none(
    karmad_factory: Factory, home: Home
) -> None:
    member(karmad_factory, home)
    marker = home.state / MARKER
    assert stat.S_IMODE(marker.stat().st_mode) == 0o600
    marker.unlink()
    karmad_factory(home=home).call("daemon.status")
    assert b"alice.laptop" in marker.read_bytes()


def test_a_store_that_cannot_be_opened_says_so(karmad_factory: Factory, home: Home) -> None:
    karmad_factory(home=home).stop()
    store = home.state / "karmad.db"
    store.unlink()
    store.mkdir()
    line = start_fails(home).strip()
    assert f"{store} cannot be opened" in line and "docs/starting-over.md" in line


def test_databases_are_private(karmad_factory: Factory, home: Home) -> None:
    karmad = karmad_factory(home=home)
    karmad.call("identity.init", {"user": "alice", "machine": "laptop"})
    names = {p.name for p in home.state.iterdir()}
    for base in ("karmad.db", "index.db"):
        for suffix in ("", "-wal", "-shm"):
            if suffix and base + suffix not in names:
                continue
            mode = stat.S_IMODE(os.stat(home.state / (base + suffix)).st_mode)
            assert mode == 0o600, (base + suffix, oct(mode))
    assert {"karmad.db-wal", "index.db-wal"} <= names
