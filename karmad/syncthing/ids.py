"""Folder IDs and which folders are karmad's.

Folders karmad manages carry the `karma-` prefix (their IDs are derived from team and
owner, never typed by people), so a user's own folders in an external Syncthing are
recognisable and left alone.
"""

from __future__ import annotations

import re

from karmad.domain import FOLDER_PREFIX

_FOLDER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def is_managed(folder_id: str) -> bool:
    return folder_id.startswith(FOLDER_PREFIX) and len(folder_id) > len(FOLDER_PREFIX)


def check_folder_id(folder_id: str) -> str:
    if not _FOLDER_ID.fullmatch(folder_id):
        raise ValueError(
            f"folder ID {folder_id[:80]!r}: 1-64 characters of A-Z, a-z, 0-9, '.', '_', '-'"
        )
    return folder_id
