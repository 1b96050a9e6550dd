"""This member's signing key: the device key of the Syncthing karmad drives.

A member signs what it publishes with its Syncthing device key (docs/keeper.md, 2.3), so
readers need nothing but the device ID they already know. The key is believed to be this
member's only when its certificate's device ID is the one Syncthing itself reports
(`/rest/system/status`): a home that is not the running Syncthing's (a stale
`syncthing.home`, a copy) would make karmad sign as a device it is not.

`DeviceKeys.current()` is the one accessor: the key, or None with `problem` saying why.
It reads `cert.pem` and `key.pem` lazily, keeps what it read while both files and the
reported device ID stay the same, and reports `health["trust"]` on every answer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from karmad import deviceid
from karmad.health import Health
from karmad.syncthing.home import CERT, KEY
from karmad.trust.keys import DeviceKey, IdentityError, load_device_key

SUBSYSTEM: Final = "trust"


@dataclass(frozen=True, slots=True)
class KeySource:
    """Where the key should be, and who Syncthing says it is."""

    home: Path | None
    """The Syncthing home holding `cert.pem` and `key.pem`; None when unknown."""
    reported: str
    """The device ID Syncthing reports; empty while unknown."""
    why_not: str = ""
    """Why `home` or `reported` is unknown, as the problem to show."""


_Stamp = tuple[Path, str, tuple[int, int, int], tuple[int, int, int]]


def _stat(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


class DeviceKeys:
    def __init__(self, source: Callable[[], KeySource], health: Health) -> None:
        self._source = source
        self._health = health
        self._stamp: _Stamp | None = None
        self._loaded: DeviceKey | None = None
        self._load_error = ""
        self.problem: str | None = "Syncthing's device ID is not known yet"
        """Why `current()` last answered None; None when it answered a key."""
        health.set(SUBSYSTEM, "degraded", self.problem)

    def current(self) -> DeviceKey | None:
        """The key this member signs with, or None (then `problem` says why).

        Cheap enough to call whenever a key is needed: two `stat`s, and a read of two
        small files only when one of them or Syncthing's device ID changed.
        """
        source = self._source()
        if source.home is None or not source.reported:
            return self._answer(None, source.why_not or "Syncthing's device ID is not known yet")
        home = source.home
        cert, key = home / CERT, home / KEY
        try:
            stamp = (cert, source.reported, _stat(cert), _stat(key))
        except OSError as exc:
            return self._answer(
                None,
                f"cannot read the device identity in {home}: "
                f"{exc.strerror or exc}: {exc.filename or home}",
            )
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._loaded, self._load_error = load_device_key(cert, key), ""
            except IdentityError as exc:
                self._loaded, self._load_error = None, f"{exc} (in {home})"
        loaded = self._loaded
        if loaded is None:
            return self._answer(None, self._load_error)
        if loaded.device_id != source.reported:
            return self._answer(
                None,
                f"the certificate in {home} is device {deviceid.short(loaded.device_id)}, but "
                f"Syncthing reports {deviceid.short(source.reported)}: it is not the home of "
                "the Syncthing karmad is attached to",
            )
        return self._answer(loaded, None)

    def _answer(self, key: DeviceKey | None, problem: str | None) -> DeviceKey | None:
        self.problem = problem
        if key is None:
            self._health.set(SUBSYSTEM, "degraded", problem or "")
        else:
            self._health.set(
                SUBSYSTEM, "ok", f"signs as {deviceid.short(key.device_id)} ({key.algorithm})"
            )
        return key
