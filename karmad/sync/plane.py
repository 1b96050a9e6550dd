"""What every application service of the control plane works with.

The state store it changes, Syncthing as the reconciler's port sees it (read only: the
services never change Syncthing), the reconciler to wake after a change, and the clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from karmad.store import Store
from karmad.sync.port import SyncthingPort
from karmad.sync.reconciler import Reconciler


@dataclass
class ControlPlane:
    store: Store
    port: SyncthingPort
    reconciler: Reconciler
    clock: Callable[[], datetime]
