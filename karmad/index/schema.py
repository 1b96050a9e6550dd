"""Numbered migrations of the session index (`index.db`).

The index is derived data: any version can be dropped and rebuilt from transcripts, so
a migration may also simply clear tables and let the indexer read everything again.
Append only, like every schema.
"""

from __future__ import annotations

import sqlite3

from karmad.store import Migration, Schema

_TABLES = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE roots (
    id         INTEGER PRIMARY KEY,
    path       TEXT NOT NULL UNIQUE,
    origin     TEXT NOT NULL CHECK (origin IN ('local', 'remote')),
    origin_key TEXT NOT NULL,
    member_tag TEXT NOT NULL DEFAULT '',
    user_id    TEXT NOT NULL DEFAULT '',
    device_id  TEXT NOT NULL DEFAULT '',
    project    TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE TABLE sessions (
    id                INTEGER PRIMARY KEY,
    root_id           INTEGER NOT NULL REFERENCES roots(id) ON DELETE CASCADE,
    origin_key        TEXT NOT NULL,
    session_id        TEXT NOT NULL,
    project_dir       TEXT NOT NULL DEFAULT '',
    cwd               TEXT NOT NULL DEFAULT '',
    project           TEXT NOT NULL DEFAULT '',
    project_path      TEXT NOT NULL DEFAULT '',
    project_source    TEXT NOT NULL DEFAULT '',
    git_remote        TEXT NOT NULL DEFAULT '',
    title             TEXT NOT NULL DEFAULT '',
    first_ts          INTEGER NOT NULL DEFAULT 0,
    last_ts           INTEGER NOT NULL DEFAULT 0,
    user_prompts      INTEGER NOT NULL DEFAULT 0,
    requests          INTEGER NOT NULL DEFAULT 0,
    shared_requests   INTEGER NOT NULL DEFAULT 0,
    input             INTEGER NOT NULL DEFAULT 0,
    output            INTEGER NOT NULL DEFAULT 0,
    cache_write_5m    INTEGER NOT NULL DEFAULT 0,
    cache_write_1h    INTEGER NOT NULL DEFAULT 0,
    cache_read        INTEGER NOT NULL DEFAULT 0,
    cost              REAL NOT NULL DEFAULT 0,
    unpriced          INTEGER NOT NULL DEFAULT 0,
    web_search        INTEGER NOT NULL DEFAULT 0,
    web_fetch         INTEGER NOT NULL DEFAULT 0,
    bytes             INTEGER NOT NULL DEFAULT 0,
    bad_lines         INTEGER NOT NULL DEFAULT 0,
    missing           INTEGER NOT NULL DEFAULT 0,
    tool_result_files INTEGER NOT NULL DEFAULT 0,
    tool_result_bytes INTEGER NOT NULL DEFAULT 0,
    facts             TEXT NOT NULL DEFAULT '{}',
    price_version     TEXT NOT NULL DEFAULT '',
    updated_at        INTEGER NOT NULL DEFAULT 0,
    UNIQUE (origin_key, session_id)
) STRICT;
CREATE INDEX sessions_by_last ON sessions(last_ts);
CREATE INDEX sessions_by_session ON sessions(session_id);
CREATE INDEX sessions_by_dir ON sessions(root_id, project_dir);

CREATE TABLE files (
    id           INTEGER PRIMARY KEY,
    root_id      INTEGER NOT NULL REFERENCES roots(id) ON DELETE CASCADE,
    session_pk   INTEGER REFERENCES sessions(id) ON DELETE CASCADE,
    path         TEXT NOT NULL UNIQUE,
    project_dir  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    agent_id     TEXT NOT NULL DEFAULT '',
    inode        INTEGER NOT NULL DEFAULT 0,
    size         INTEGER NOT NULL DEFAULT 0,
    mtime_ns     INTEGER NOT NULL DEFAULT 0,
    digest       BLOB,
    usage_offset INTEGER NOT NULL DEFAULT 0,
    usage_lines  INTEGER NOT NULL DEFAULT 0,
    records      INTEGER NOT NULL DEFAULT 0,
    text_offset  INTEGER NOT NULL DEFAULT 0,
    text_lines   INTEGER NOT NULL DEFAULT 0,
    pending      INTEGER NOT NULL DEFAULT 0,
    bad_lines    INTEGER NOT NULL DEFAULT 0,
    missing      INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX files_by_session ON files(session_pk);

CREATE TABLE line_errors (
    file_id  INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    offset   INTEGER NOT NULL,
    line     INTEGER NOT NULL,
    reason   TEXT NOT NULL,
    sample   TEXT NOT NULL,
    repaired INTEGER NOT NULL,
    PRIMARY KEY (file_id, offset)
) STRICT, WITHOUT ROWID;

CREATE TABLE session_models (
    session_pk     INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    model          TEXT NOT NULL,
    requests       INTEGER NOT NULL DEFAULT 0,
    input          INTEGER NOT NULL DEFAULT 0,
    output         INTEGER NOT NULL DEFAULT 0,
    cache_write_5m INTEGER NOT NULL DEFAULT 0,
    cache_write_1h INTEGER NOT NULL DEFAULT 0,
    cache_read     INTEGER NOT NULL DEFAULT 0,
    cost           REAL NOT NULL DEFAULT 0,
    unpriced       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (session_pk, model)
) STRICT, WITHOUT ROWID;

-- One row per API request per session: the de-duplicated usage. `canonical` says
-- whether this row is the one counted in usage summaries (1) or the same request is
-- counted in another session, e.g. the one it was forked or resumed from (0); NULL,
-- 2 and -1 only exist inside a write transaction while that is being decided.
CREATE TABLE usage (
    session_pk     INTEGER NOT NULL,
    key            INTEGER NOT NULL,
    file_id        INTEGER NOT NULL,
    model          TEXT NOT NULL,
    ts             INTEGER NOT NULL,
    input          INTEGER NOT NULL,
    output         INTEGER NOT NULL,
    cache_write_5m INTEGER NOT NULL,
    cache_write_1h INTEGER NOT NULL,
    cache_read     INTEGER NOT NULL,
    complete       INTEGER NOT NULL,
    speed          TEXT NOT NULL,
    web_search     INTEGER NOT NULL,
    web_fetch      INTEGER NOT NULL,
    cost           REAL NOT NULL,
    priced         INTEGER NOT NULL,
    canonical      INTEGER,
    PRIMARY KEY (session_pk, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX usage_by_key ON usage(key, ts);
CREATE INDEX usage_undecided ON usage(key) WHERE canonical IS NULL;

-- Counted usage in 15-minute slots, so summaries by day in any time zone (every UTC
-- offset in use is a multiple of 15 minutes) read a small table.
CREATE TABLE usage_buckets (
    session_pk     INTEGER NOT NULL,
    bucket         INTEGER NOT NULL,
    model          TEXT NOT NULL,
    requests       INTEGER NOT NULL,
    input          INTEGER NOT NULL,
    output         INTEGER NOT NULL,
    cache_write_5m INTEGER NOT NULL,
    cache_write_1h INTEGER NOT NULL,
    cache_read     INTEGER NOT NULL,
    cost           REAL NOT NULL,
    unpriced       INTEGER NOT NULL,
    PRIMARY KEY (session_pk, bucket, model)
) STRICT, WITHOUT ROWID;
CREATE INDEX usage_buckets_by_bucket ON usage_buckets(bucket);

-- Where each conversation line is, for reading a transcript back in order.
CREATE TABLE entries (
    id         INTEGER PRIMARY KEY,
    session_pk INTEGER NOT NULL,
    file_id    INTEGER NOT NULL,
    offset     INTEGER NOT NULL,
    length     INTEGER NOT NULL,
    line       INTEGER NOT NULL,
    ts         INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    sidechain  INTEGER NOT NULL,
    agent_id   TEXT NOT NULL,
    uuid       TEXT NOT NULL
) STRICT;
CREATE INDEX entries_by_session ON entries(session_pk, ts, file_id, offset);
"""


def _fts_available(conn: sqlite3.Connection) -> bool:
    options = {str(row[0]).upper() for row in conn.execute("PRAGMA compile_options")}
    return "ENABLE_FTS5" in options


def _full_text(conn: sqlite3.Connection) -> None:
    """The full-text table, where this SQLite has FTS5; search reports it missing else."""
    if _fts_available(conn):
        conn.execute(
            "CREATE VIRTUAL TABLE entries_text USING fts5("
            "text, tokenize = 'unicode61 remove_diacritics 2')"
        )
        available = "1"
    else:
        available = "0"
    conn.execute("INSERT INTO meta (key, value) VALUES ('fts', ?)", (available,))


def _copies(conn: sqlite3.Connection) -> None:
    """The copy rule (docs/index.md). `usage.copied`: the row's every line is a copy
    karmad made for a resume (`karmadCopyOf`), which ranks after any row of the same
    request that is not. `record_keys` and `entry_keys`: the records each session
    counted and the lines it shows, by identity (karmad.index.repeats), so that a record
    read again counts and shows once. Rows indexed before know neither, so everything is
    read again."""
    conn.execute("ALTER TABLE usage ADD COLUMN copied INTEGER NOT NULL DEFAULT 0")
    for table in ("record_keys", "entry_keys"):
        conn.execute(
            f"CREATE TABLE {table} ("
            "session_pk INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE, "
            "key INTEGER NOT NULL, PRIMARY KEY (session_pk, key)) STRICT, WITHOUT ROWID"
        )
    tables = ["entries", "usage", "usage_buckets", "session_models", "line_errors", "files"]
    fts = conn.execute("SELECT value FROM meta WHERE key = 'fts'").fetchone()
    if fts is not None and fts[0] == "1":
        tables.append("entries_text")
    for table in [*tables, "sessions"]:
        conn.execute(f"DELETE FROM {table}")  # noqa: S608 - constant names


INDEX_SCHEMA = Schema(
    "index",
    (
        Migration(1, _TABLES),
        Migration(2, _full_text),
        Migration(
            3,
            """
            -- Files received from teammates that failed validation (karmad.index.remote):
            -- skipped until they change (inode, size or mtime).
            CREATE TABLE rejected (
                path     TEXT PRIMARY KEY,
                root_id  INTEGER NOT NULL REFERENCES roots(id) ON DELETE CASCADE,
                inode    INTEGER NOT NULL,
                size     INTEGER NOT NULL,
                mtime_ns INTEGER NOT NULL,
                reason   TEXT NOT NULL,
                at       INTEGER NOT NULL
            ) STRICT;
            """,
        ),
        Migration(
            4,
            """
            -- Files that could not be read or parsed (karmad.index.engine): shown in
            -- index.status, session.get and doctor. Transient problems (permissions,
            -- I/O) are tried again at `retry_at`; the others when the file changes.
            CREATE TABLE file_problems (
                path       TEXT PRIMARY KEY,
                root_id    INTEGER NOT NULL REFERENCES roots(id) ON DELETE CASCADE,
                session_id TEXT NOT NULL,
                reason     TEXT NOT NULL,
                transient  INTEGER NOT NULL,
                attempts   INTEGER NOT NULL,
                since      INTEGER NOT NULL,
                at         INTEGER NOT NULL,
                retry_at   INTEGER NOT NULL,
                inode      INTEGER NOT NULL,
                size       INTEGER NOT NULL,
                mtime_ns   INTEGER NOT NULL
            ) STRICT;
            CREATE INDEX file_problems_by_session ON file_problems(session_id);
            """,
        ),
        Migration(5, _copies),
    ),
)
