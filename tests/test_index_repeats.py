"""A session that holds its own records twice counts and shows each once.

Claude Code 1.x replays a resumed session's history into the same file: the same message
ids, tool_use ids, timestamps and content, with new uuids. 2.x replays records too. The
index identifies records by what they are (docs/index.md), never by uuid.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from karmad.config import IndexConfig
from karmad.index.discovery import Root
from karmad.index.engine import Engine
from karmad.index.pricing import load_table
from karmad.index.schema import INDEX_SCHEMA
from karmad.index.writer import IndexWriter
from karmad.protocol import SessionMessagesParams, SessionSearchParams
from karmad.store import Schema, Store
from tests.support.indexing import LocalIndex
from tests.support.sessions import synthetic_records
from tests.support.transcripts import write

SID = "77777777-7777-7777-7777-777777777777"
TURNS = 15


def history(version: str) -> list[dict[str, Any]]:
    """Prompts, answers calling a tool, results (one of them failed)."""
    records = [dict(r, sessionId=SID, version=version) for r in synthetic_records(TURNS)]
    failed = records[5]["message"]["content"][0]
    failed["is_error"] = True
    return records


def replayed(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same records as a resume writes them again: new uuids, the chain relinked."""
    renamed = {r["uuid"]: str(uuid.uuid4()) for r in records}
    return [
        dict(r, uuid=renamed[r["uuid"]], parentUuid=renamed.get(r["parentUuid"] or ""))
        for r in records
    ]


def figures(idx: LocalIndex) -> dict[str, Any]:
    d = idx.detail(SID)
    shown = idx.reader.messages(SessionMessagesParams(id=SID, limit=500))
    return {
        "tools": d.tool_uses,
        "prompts": d.user_prompts,
        "errors": d.tool_errors,
        "requests": d.tokens.requests,
        "output": d.tokens.output,
        "messages": shown.total,
        "distinct shown": len({(i.kind, i.time, str(i.blocks)) for i in shown.items}),
    }


EXPECTED = {
    "tools": {"Bash": TURNS},
    "prompts": TURNS,
    "errors": 1,
    "requests": TURNS,
    "output": sum(90 + n for n in range(TURNS)),
    "messages": 3 * TURNS,
    "distinct shown": 3 * TURNS,
}


@pytest.mark.parametrize("version", ["1.0.53", "2.1.16"])
@pytest.mark.parametrize("appended", [False, True], ids=["read-at-once", "appended-later"])
def test_a_replayed_history_counts_and_shows_each_record_once(
    tmp_path: Path, version: str, appended: bool
) -> None:
    root = tmp_path / "projects"
    path = root / "-tmp-x" / f"{SID}.jsonl"
    records = history(version)
    more = [*replayed(records), *replayed(records)]  # resumed twice
    idx = LocalIndex(tmp_path / "index.db", [Root(root)])
    try:
        if appended:
            write(path, records)
            idx.scan()
            assert figures(idx) == EXPECTED
            write(path, more, mode="ab")
            idx.process(path)
        else:
            write(path, records + more)
            idx.scan()
        assert figures(idx) == EXPECTED
    finally:
        idx.close()


def test_the_same_records_in_two_files_of_a_session_count_once(tmp_path: Path) -> None:
    """A session restored from the archive beside a copy of it in another checkout: one
    session id, two files, the same records."""
    root = tmp_path / "projects"
    records = history("2.1.16")
    write(root / "-tmp-x" / f"{SID}.jsonl", records)
    write(root / "-tmp-y" / f"{SID}.jsonl", replayed(records))
    idx = LocalIndex(tmp_path / "index.db", [Root(root)])
    try:
        idx.scan()
        assert len(idx.detail(SID).files) == 2
        assert figures(idx) == EXPECTED
    finally:
        idx.close()


def test_a_rebuilt_session_counts_again_from_nothing(tmp_path: Path) -> None:
    """A rewritten file makes the whole session be read again: what it had counted is
    forgotten first, or nothing would count."""
    root = tmp_path / "projects"
    path = root / "-tmp-x" / f"{SID}.jsonl"
    records = history("2.1.16")
    write(path, [*records, *replayed(records)])
    idx = LocalIndex(tmp_path / "index.db", [Root(root)])
    try:
        idx.scan()
        write(path, [*records[:30], *replayed(records[:30])])  # shorter: rewritten
        idx.process(path)
        assert figures(idx)["tools"] == {"Bash": 10}
        assert figures(idx)["messages"] == 30
    finally:
        idx.close()


def test_a_text_rebuild_shows_each_line_once_again(tmp_path: Path) -> None:
    """`index.rebuild` of the text pass alone drops the lines and reads them again: what
    the session showed is forgotten with them, what it counted is not."""
    root = tmp_path / "projects"
    records = history("2.1.16")
    write(root / "-tmp-x" / f"{SID}.jsonl", [*records, *replayed(records)])
    idx = LocalIndex(tmp_path / "index.db", [Root(root)])
    try:
        idx.scan()
        idx.engine.text_backlog()
        assert figures(idx) == EXPECTED
        idx.writer.clear_text()
        idx.scan()
        idx.engine.text_backlog()
        assert figures(idx) == EXPECTED
        assert idx.reader.search(SessionSearchParams(text="step"), complete=True).hits
    finally:
        idx.close()


def test_an_index_of_the_previous_schema_is_read_again(tmp_path: Path) -> None:
    """Rows indexed before the copy rule know neither copies nor records: schema 5
    clears them (full-text rows included) and the next scan reads everything again."""
    root = tmp_path / "projects"
    records = history("2.1.16")
    write(root / "-tmp-x" / f"{SID}.jsonl", [*records, *replayed(records)])
    db = tmp_path / "index.db"
    old = Schema("index", INDEX_SCHEMA.migrations[:4])  # up to file_problems
    store = Store.open(db, old, check_same_thread=False)
    engine = Engine(
        IndexWriter(store, load_table(), lambda: 0),
        IndexConfig(parse_processes=0),
        full_text=True,
        on_progress=lambda p: None,
        on_sessions=lambda s: None,
        should_stop=lambda: False,
        take_changed=set,
    )
    engine.add_root(Root(root))
    store.execute("ALTER TABLE usage ADD COLUMN copied INTEGER NOT NULL DEFAULT 0")
    store.execute("CREATE TABLE record_keys (session_pk INTEGER, key INTEGER)")
    store.execute("CREATE TABLE entry_keys (session_pk INTEGER, key INTEGER)")
    engine.scan()  # as the previous release did, with what this one's writer needs
    engine.text_backlog()
    store.execute("ALTER TABLE usage DROP COLUMN copied")
    store.execute("DROP TABLE record_keys")
    store.execute("DROP TABLE entry_keys")
    assert store.scalar("SELECT COUNT(*) FROM entries_text") > 0
    store.close()
    idx = LocalIndex(db, [Root(root)])
    try:
        idx.scan()
        assert figures(idx) == EXPECTED
        assert idx.reader.search(SessionSearchParams(text="step"), complete=True).hits
    finally:
        idx.close()
