"""The SQLite seam: migrations, transactions, error translation — on real files."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from karmad.state_schema import STATE_SCHEMA
from karmad.store import (
    Migration,
    Schema,
    Store,
    StoreConstraint,
    StoreCorrupt,
    StoreError,
    StoreFull,
    StoreTooNew,
)

SCHEMA = Schema(
    "test",
    (
        Migration(1, "CREATE TABLE a (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"),
        Migration(
            2,
            """
            CREATE TABLE b (
                id INTEGER PRIMARY KEY,
                a_id INTEGER NOT NULL REFERENCES a(id) ON DELETE CASCADE,
                note TEXT
            );
            CREATE TRIGGER b_note AFTER INSERT ON b BEGIN
                UPDATE b SET note = 'x;y' WHERE id = new.id AND note IS NULL;
            END;
            """,
        ),
    ),
)


def test_fresh_file_is_migrated_in_wal_with_foreign_keys(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db", SCHEMA)
    assert store.schema_version == 2
    assert store.scalar("PRAGMA journal_mode") == "wal"
    assert store.scalar("PRAGMA foreign_keys") == 1
    a = store.insert("INSERT INTO a(name) VALUES (?)", ("one",))
    store.execute("INSERT INTO b(a_id) VALUES (?)", (a,))
    assert store.scalar("SELECT note FROM b") == "x;y"
    with pytest.raises(StoreConstraint):
        store.execute("INSERT INTO b(a_id) VALUES (999)")
    store.close()


def test_migrations_resume_from_the_recorded_version(tmp_path: Path) -> None:
    first = Schema("test", SCHEMA.migrations[:1])
    Store.open(tmp_path / "s.db", first).close()
    store = Store.open(tmp_path / "s.db", SCHEMA)
    assert store.schema_version == 2
    assert store.query("SELECT name FROM sqlite_master WHERE name = 'b'")


def test_failed_migration_leaves_the_previous_version(tmp_path: Path) -> None:
    broken = Schema(
        "test", (*SCHEMA.migrations, Migration(3, "CREATE TABLE c (x);\nCREATE TABLE a (y);"))
    )
    Store.open(tmp_path / "s.db", SCHEMA).close()
    with pytest.raises(StoreError):
        Store.open(tmp_path / "s.db", broken)
    store = Store.open(tmp_path / "s.db", SCHEMA)
    assert store.schema_version == 2
    assert not store.query("SELECT name FROM sqlite_master WHERE name = 'c'")


def test_newer_file_is_refused(tmp_path: Path) -> None:
    Store.open(tmp_path / "s.db", SCHEMA).close()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("PRAGMA user_version = 7")
    with pytest.raises(StoreTooNew, match="newer than this karmad knows"):
        Store.open(tmp_path / "s.db", SCHEMA)


def test_schema_numbering_is_checked() -> None:
    with pytest.raises(ValueError, match="numbered"):
        Schema("bad", (Migration(2, "SELECT 1;"),))


def test_transaction_is_all_or_nothing_and_nests(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db", SCHEMA)
    with pytest.raises(StoreConstraint), store.transaction():
        store.execute("INSERT INTO a(name) VALUES ('x')")
        with store.transaction():
            store.execute("INSERT INTO a(name) VALUES ('y')")
        store.execute("INSERT INTO a(name) VALUES ('x')")
    assert store.scalar("SELECT count(*) FROM a") == 0
    with store.transaction(), store.transaction():
        store.execute("INSERT INTO a(name) VALUES ('z')")
    assert store.scalar("SELECT count(*) FROM a") == 1


def test_disk_full_is_translated_and_loses_nothing(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db", SCHEMA)
    store.execute("INSERT INTO a(name) VALUES ('kept')")
    pages = store.scalar("PRAGMA page_count")
    # A page limit is SQLite's own way to make the file "full" (SQLITE_FULL).
    store.execute(f"PRAGMA max_page_count = {pages + 1}")
    with pytest.raises(StoreFull), store.transaction():
        for n in range(10_000):
            store.execute("INSERT INTO a(name) VALUES (?)", (f"row-{n}-" + "x" * 200,))
    assert [r["name"] for r in store.query("SELECT name FROM a")] == ["kept"]


def test_corrupt_file_is_translated(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreCorrupt):
        Store.open(path, SCHEMA)


def test_quick_check_on_healthy_and_state_schema(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "karmad.db", STATE_SCHEMA)
    assert store.quick_check() == []
    assert store.schema_version == STATE_SCHEMA.latest


def test_incomplete_migration_sql_is_rejected(tmp_path: Path) -> None:
    bad = Schema("bad", (Migration(1, "CREATE TABLE x (a"),))
    with pytest.raises(ValueError, match="incomplete SQL"):
        Store.open(tmp_path / "s.db", bad)


def test_database_and_side_files_are_private(tmp_path: Path) -> None:
    """SQLite would create them 0644; they hold identity, teams and session text."""
    path = tmp_path / "s.db"
    store = Store.open(path, SCHEMA)
    store.execute("INSERT INTO a (name) VALUES ('x')")
    files = sorted(tmp_path.iterdir())
    assert {f.name for f in files} >= {"s.db", "s.db-wal", "s.db-shm"}
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f.name
    store.close()


def test_files_of_an_older_karmad_are_made_private(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store.open(path, SCHEMA).close()
    for name in ("s.db", "s.db-wal", "s.db-shm"):
        (tmp_path / name).touch()
        os.chmod(tmp_path / name, 0o644)
    store = Store.open(path, SCHEMA)
    for name in ("s.db", "s.db-wal", "s.db-shm"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    store.close()


def test_a_store_that_cannot_be_created_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot create"):
        Store.open(tmp_path / "missing" / "s.db", SCHEMA)
