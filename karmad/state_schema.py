"""Numbered migrations of the state store (`karmad.db`).

Append only: a released migration is never edited, because users' files already carry
its version number.
"""

from __future__ import annotations

from karmad.store import Migration, Schema

RESUMES = """
-- What each `session.resume` wrote: where, from which member's session, how much; an
-- earlier resume of the same session is recognised by the hash of what it wrote.
CREATE TABLE resumes (
    path           TEXT PRIMARY KEY,
    session_id     TEXT NOT NULL,
    origin_session TEXT NOT NULL,
    origin         TEXT NOT NULL,
    member         TEXT NOT NULL,
    checkout       TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    files          INTEGER NOT NULL,
    bytes          INTEGER NOT NULL,
    main_bytes     INTEGER NOT NULL,
    main_sha256    TEXT NOT NULL,
    created_at     TEXT NOT NULL
) STRICT;
CREATE INDEX resumes_by_origin ON resumes(origin_session);
"""
"""Kept as a constant so its migration number can change without touching its text."""

STATE_SCHEMA = Schema(
    "state",
    (
        Migration(
            1,
            """
            CREATE TABLE meta (
                key   TEXT PRIMARY KEY,
                value TEXT NOT NULL
            ) STRICT;
            """,
        ),
        Migration(
            2,
            """
            CREATE TABLE identity (
                id          INTEGER PRIMARY KEY CHECK (id = 1),
                user_id     TEXT NOT NULL,
                machine_tag TEXT NOT NULL,
                created_at  TEXT NOT NULL
            ) STRICT;

            CREATE TABLE teams (
                team_id          TEXT PRIMARY KEY,
                name             TEXT NOT NULL,
                role             TEXT NOT NULL CHECK (role IN ('leader', 'member')),
                phase            TEXT NOT NULL,
                phase_since      TEXT NOT NULL,
                leader_device    TEXT NOT NULL,
                leader_tag       TEXT NOT NULL,
                leader_addresses TEXT NOT NULL DEFAULT '[]',
                record           BLOB,
                record_seq       INTEGER NOT NULL DEFAULT -1,
                state_seq        INTEGER NOT NULL DEFAULT 0,
                state_digest     TEXT,
                created_at       TEXT NOT NULL
            ) STRICT;

            CREATE TABLE subscriptions (
                team_id     TEXT NOT NULL REFERENCES teams(team_id) ON DELETE CASCADE,
                project_key TEXT NOT NULL,
                state       TEXT NOT NULL,
                direction   TEXT NOT NULL,
                changed_at  TEXT,
                PRIMARY KEY (team_id, project_key)
            ) STRICT;

            CREATE TABLE acks (
                team_id   TEXT NOT NULL REFERENCES teams(team_id) ON DELETE CASCADE,
                device_id TEXT NOT NULL,
                seen_at   TEXT NOT NULL,
                PRIMARY KEY (team_id, device_id)
            ) STRICT;

            CREATE TABLE trusted_leaders (
                device_id   TEXT PRIMARY KEY,
                member_tag  TEXT NOT NULL,
                accepted_at TEXT NOT NULL
            ) STRICT;

            CREATE TABLE managed_devices (
                device_id TEXT PRIMARY KEY,
                added_at  TEXT NOT NULL
            ) STRICT;

            CREATE TABLE sync_events (
                id          INTEGER PRIMARY KEY,
                time        TEXT NOT NULL,
                kind        TEXT NOT NULL,
                team_id     TEXT,
                member_tag  TEXT,
                device_id   TEXT,
                project_key TEXT,
                detail      TEXT NOT NULL DEFAULT '{}'
            ) STRICT;
            CREATE INDEX sync_events_team ON sync_events(team_id, id);
            """,
        ),
        Migration(
            3,
            """
            -- What the packager has copied into each outbox: enough to continue where it
            -- stopped (crash included) and to write the session manifests.
            CREATE TABLE packaged_files (
                folder_id   TEXT NOT NULL,
                rel         TEXT NOT NULL,
                project_key TEXT NOT NULL,
                session_id  TEXT NOT NULL,
                src         TEXT NOT NULL,
                src_inode   INTEGER NOT NULL,
                src_offset  INTEGER NOT NULL,
                dest_size   INTEGER NOT NULL,
                lines       INTEGER NOT NULL,
                dropped     INTEGER NOT NULL DEFAULT 0,
                sha256      TEXT NOT NULL,
                redactions  TEXT NOT NULL DEFAULT '{}',
                updated_at  TEXT NOT NULL,
                PRIMARY KEY (folder_id, rel)
            ) STRICT;
            CREATE INDEX packaged_by_session ON packaged_files(folder_id, project_key, session_id);
            """,
        ),
        Migration(4, RESUMES),
        Migration(
            5,
            """
            -- A team's keeper (docs/keeper.md), on the leader and on members: where it
            -- is, the password epoch this device holds and its secret. The leader also
            -- keeps who was given the secret and the sequence numbers of the files it
            -- writes for the keeper.
            CREATE TABLE team_keepers (
                team_id          TEXT PRIMARY KEY,
                keeper_device    TEXT NOT NULL,
                keeper_addresses TEXT NOT NULL DEFAULT '[]',
                added_at         TEXT NOT NULL,
                epoch            INTEGER,
                secret           BLOB,
                holders          TEXT NOT NULL DEFAULT '[]',
                current_epoch    INTEGER,
                control_seq      INTEGER NOT NULL DEFAULT 0,
                keys_seq         INTEGER NOT NULL DEFAULT 0,
                join_secret      BLOB,
                removed_at       TEXT
            ) STRICT;
            -- The leader: the join secret of each invite to a team with a keeper, until
            -- the member publishes its own sealing key.
            CREATE TABLE keeper_joins (
                team_id     TEXT NOT NULL,
                device_id   TEXT NOT NULL,
                join_secret BLOB NOT NULL,
                PRIMARY KEY (team_id, device_id)
            ) STRICT;
            -- Keeper mode: the teams this keeper agreed to serve, known only by the
            -- leader's device and the team's keeper folder, and the last control file
            -- applied for each (its verified payload).
            CREATE TABLE keeper_served (
                folder_id        TEXT PRIMARY KEY,
                leader_device    TEXT NOT NULL,
                leader_addresses TEXT NOT NULL DEFAULT '[]',
                accepted_at      TEXT NOT NULL,
                control_seq      INTEGER,
                control          BLOB,
                problem          TEXT
            ) STRICT;
            """,
        ),
        Migration(
            6,
            """
            -- Teams whose state files must carry their owner's signature: the team has
            -- or had a keeper (docs/keeper.md 2.3). Never cleared: files forged through
            -- the keeper stay in the folders after it is gone.
            CREATE TABLE signed_teams (
                team_id TEXT PRIMARY KEY,
                since   TEXT NOT NULL
            ) STRICT;
            -- The highest `seq` of a teammate's state file believed, per folder: an
            -- older file, replayed by whoever can write into the folder, is ignored.
            CREATE TABLE state_seqs (
                folder_id TEXT PRIMARY KEY,
                seq       INTEGER NOT NULL,
                seen_at   TEXT NOT NULL
            ) STRICT;
            -- Our state files were written unsigned before: write them again, signed,
            -- once the device key is there (`karmad.sync.executor.UNSIGNED`).
            UPDATE teams SET state_digest = 'unsigned:' || state_digest
                WHERE state_digest IS NOT NULL;
            """,
        ),
    ),
)
