"""Numbered migrations of the state store (`karmad.db`).

Append only: a released migration is never edited, because users' files already carry
its version number.
"""

from __future__ import annotations

from karmad.store import Migration, Schema

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
    ),
)
