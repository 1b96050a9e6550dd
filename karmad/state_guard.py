"""Refusing to start as a new member on a state store that lost an identity.

SQLite treats an empty or missing file as a new database, so a `karmad.db` truncated
to zero bytes (a full disk, a bad restore, a tool gone wrong) would silently become a
brand-new member: identity and teams gone, nothing said. What survives such an accident
is what lies beside the file, so two witnesses are kept there:

- a marker file, `karmad.identity` beside `karmad.db`, written whenever the identity is
  set (and at start-up when an identity exists without one, for stores older than the
  marker): it names the member, never anything secret;
- the managed Syncthing's `config.xml`, which lists a `karma-` folder only once this
  machine belonged to a team (the evidence for stores from before the marker).

With a witness, a store that is missing, empty or without its identity stops karmad
with one line saying how to restore or reset. A store that cannot be read stops it too.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

import msgspec

from karmad import atomic_file, codec, logs
from karmad.store import StoreError

log = logs.get("karmad.state")

MARKER: Final = "karmad.identity"
STARTING_OVER: Final = "docs/starting-over.md"


class IdentityLost(StoreError):
    """The store holds no identity, though this machine had one."""


class StoreUnreadable(StoreError):
    pass


@dataclass(frozen=True, slots=True)
class Witness:
    member_tag: str
    since: datetime | None
    source: str
    """What says so: the marker file or Syncthing's configuration."""


class _Marker(msgspec.Struct):
    member_tag: str
    created_at: datetime


def marker_path(store: Path) -> Path:
    return store.with_name(MARKER)


def remember(store: Path, member_tag: str, created_at: datetime) -> None:
    """Record that `store` holds this identity (blocking; called when it is set)."""
    data = codec.encode_json(_Marker(member_tag=member_tag, created_at=created_at)) + b"\n"
    path = marker_path(store)
    try:
        if path.read_bytes() == data:
            return
    except OSError:
        pass
    atomic_file.write_atomic(path, data, 0o600)


def remember_quietly(store: Path, member_tag: str, created_at: datetime) -> None:
    """`remember`, where failing must not undo what the store already holds: the next
    start writes the marker again."""
    try:
        remember(store, member_tag, created_at)
    except OSError as exc:
        log.warning("identity_marker_unwritable", path=str(marker_path(store)), error=str(exc))


def _witness(store: Path, syncthing_config: Path | None) -> Witness | None:
    marker = marker_path(store)
    try:
        raw = marker.read_bytes()
    except FileNotFoundError:
        raw = None
    except OSError:
        return Witness("an unknown member", None, str(marker))
    if raw is not None:
        try:
            known = codec.decode_json(raw, _Marker)
        except codec.InvalidData:
            return Witness("an unknown member", None, str(marker))
        return Witness(known.member_tag, known.created_at, str(marker))
    if syncthing_config is not None:
        try:
            text = syncthing_config.read_bytes()
        except OSError:
            return None
        if b'<folder id="karma-' in text:
            return Witness("a team member", None, str(syncthing_config))
    return None


def _lost(store: Path, what: str, witness: Witness) -> IdentityLost:
    since = f" since {witness.since.date().isoformat()}" if witness.since else ""
    return IdentityLost(
        f"{store} {what}, but this machine was {witness.member_tag}{since} (says "
        f"{witness.source}): restore {store.name} from a backup, or move "
        f"{store.parent} aside to start over as a new member ({STARTING_OVER})"
    )


def check_before_open(store: Path, syncthing_config: Path | None) -> None:
    """Raise unless opening `store` is safe: it is readable and, if an identity existed,
    not missing or empty. Blocking; before the store is opened (which would create it)."""
    try:
        fd = os.open(store, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        witness = _witness(store, syncthing_config)
        if witness is not None:
            raise _lost(store, "is missing", witness) from None
        return
    except OSError as exc:
        hint = (
            "give it back to this user (chown, chmod 600)"
            if exc.errno in (errno.EACCES, errno.EPERM)
            else "restore it from a backup"
        )
        raise StoreUnreadable(
            f"{store} cannot be opened ({exc.strerror or exc}): {hint}, or move "
            f"{store.parent} aside to start over as a new member ({STARTING_OVER})"
        ) from None
    try:
        head = os.read(fd, 1)
    except OSError as exc:
        raise StoreUnreadable(
            f"{store} cannot be read ({exc.strerror or exc}): restore it from a backup, "
            f"or move {store.parent} aside to start over as a new member ({STARTING_OVER})"
        ) from None
    finally:
        os.close(fd)
    if head:
        return  # anything else wrong with it is SQLite's to say, when it opens it
    witness = _witness(store, syncthing_config)
    if witness is not None:
        raise _lost(store, "is empty", witness)


def check_after_open(
    store: Path,
    syncthing_config: Path | None,
    member_tag: str | None,
    created_at: datetime | None,
) -> None:
    """With the store open: an identity present is remembered; one missing while a
    witness says it existed (a store already replaced by a fresh one) stops karmad."""
    if member_tag is not None and created_at is not None:
        remember_quietly(store, member_tag, created_at)
        return
    witness = _witness(store, syncthing_config)
    if witness is not None:
        raise _lost(store, "holds no identity", witness)
