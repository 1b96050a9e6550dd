"""Keeper mode: the teams this keeper agreed to serve (`keeper_served` in `karmad.db`).

A served team is known only by its leader's device (pinned when the operator consented
with `karmactl keeper serve`) and its keeper folder. Beside them the row keeps the last
control file applied, as its verified payload, so that after a restart the keeper holds
what it held until a newer control file verifies, and why the latest one was refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from karmad import codec
from karmad.keeper.control import Control
from karmad.store import Row, Store


@dataclass(frozen=True, slots=True)
class Served:
    folder_id: str
    """The team's keeper folder (the leader writes `control` there)."""
    leader_device: str
    leader_addresses: tuple[str, ...]
    accepted_at: datetime
    control: Control | None = None
    """The last control file applied (None: none yet)."""
    problem: str | None = None
    """Why the last control file read was not applied; None once one is."""

    @property
    def control_seq(self) -> int | None:
        return None if self.control is None else self.control.seq


def _row(row: Row) -> Served:
    control = None
    if row["control"] is not None:
        try:
            control = codec.decode_json(bytes(row["control"]), Control)
        except codec.InvalidData:
            # Written by this keeper after verifying it; unreadable only if the file was
            # damaged, and then the next control file from the leader replaces it.
            control = None
    return Served(
        folder_id=row["folder_id"],
        leader_device=row["leader_device"],
        leader_addresses=tuple(json.loads(row["leader_addresses"])),
        accepted_at=datetime.fromisoformat(row["accepted_at"]),
        control=control,
        problem=row["problem"],
    )


def served(store: Store) -> list[Served]:
    return [_row(r) for r in store.query("SELECT * FROM keeper_served ORDER BY folder_id")]


def get(store: Store, folder_id: str) -> Served | None:
    row = store.query_one("SELECT * FROM keeper_served WHERE folder_id = ?", (folder_id,))
    return None if row is None else _row(row)


def serve(
    store: Store, folder_id: str, leader: str, addresses: tuple[str, ...], now: datetime
) -> bool:
    """Agree to serve the team of keeper folder `folder_id`; False if it is already served
    by this leader with these addresses (nothing changes).

    The same folder from another leader replaces the pin and forgets the applied control
    file: the operator consented to the new leader, and the old one's file is no
    evidence of anything the new one wants.
    """
    encoded = json.dumps(list(addresses))
    with store.transaction():
        current = get(store, folder_id)
        if current is not None and current.leader_device == leader:
            if current.leader_addresses == addresses:
                return False
            store.execute(
                "UPDATE keeper_served SET leader_addresses = ? WHERE folder_id = ?",
                (encoded, folder_id),
            )
            return True
        store.execute(
            "INSERT OR REPLACE INTO keeper_served"
            " (folder_id, leader_device, leader_addresses, accepted_at) VALUES (?, ?, ?, ?)",
            (folder_id, leader, encoded, now.isoformat()),
        )
    return True


def leave(store: Store, folder_id: str) -> bool:
    return store.execute("DELETE FROM keeper_served WHERE folder_id = ?", (folder_id,)) > 0


def apply_control(store: Store, folder_id: str, control: Control) -> None:
    """Record a verified control file as the one in effect, and clear the problem."""
    store.execute(
        "UPDATE keeper_served SET control_seq = ?, control = ?, problem = NULL WHERE folder_id = ?",
        (control.seq, codec.encode_json(control), folder_id),
    )


def set_problem(store: Store, folder_id: str, problem: str | None) -> None:
    store.execute(
        "UPDATE keeper_served SET problem = ? WHERE folder_id = ? AND problem IS NOT ?",
        (problem, folder_id, problem),
    )
