"""The teams a keeper serves, in a real `karmad.db`: consent, the control in effect, and
what survives a restart."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from karmad import deviceid
from karmad.keeper import servedstore
from karmad.keeper.control import Control, ControlFolder
from karmad.keeper.plan import HeldKind, keeper_folder_id
from karmad.state_schema import STATE_SCHEMA
from karmad.store import Store

NOW = datetime(2026, 6, 1, tzinfo=UTC)
LEADER = deviceid.from_bytes(b"\x01" * 32)
OTHER = deviceid.from_bytes(b"\x02" * 32)
KEEPER = deviceid.from_bytes(b"\x07" * 32)
FOLDER = keeper_folder_id("a" * 26)


def _control(seq: int) -> Control:
    return Control(
        seq=seq,
        leader=LEADER,
        keeper=KEEPER,
        epoch=2,
        folders=[ControlFolder(id=FOLDER, kind=HeldKind.CONTROL, devices=[LEADER])],
    )


def test_serving_twice_changes_nothing_and_the_applied_control_survives_a_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "karmad.db"
    store = Store.open(path, STATE_SCHEMA)
    assert servedstore.serve(store, FOLDER, LEADER, ("tcp://192.0.2.1:22000",), NOW)
    assert not servedstore.serve(store, FOLDER, LEADER, ("tcp://192.0.2.1:22000",), NOW)
    assert servedstore.serve(store, FOLDER, LEADER, ("tcp://192.0.2.2:22000",), NOW)
    servedstore.apply_control(store, FOLDER, _control(3))
    servedstore.set_problem(store, FOLDER, "control file refused: not signed by the leader")
    store.close()

    store = Store.open(path, STATE_SCHEMA)
    (row,) = servedstore.served(store)
    assert row.leader_addresses == ("tcp://192.0.2.2:22000",)
    assert row.control == _control(3) and row.control_seq == 3
    assert row.problem == "control file refused: not signed by the leader"
    servedstore.apply_control(store, FOLDER, _control(4))
    assert servedstore.get(store, FOLDER) == servedstore.Served(
        FOLDER, LEADER, ("tcp://192.0.2.2:22000",), NOW, _control(4), None
    )
    # Another leader for the same folder: the operator consented anew; nothing of the
    # first leader's control stays in effect.
    assert servedstore.serve(store, FOLDER, OTHER, (), NOW)
    row = servedstore.served(store)[0]
    assert (row.leader_device, row.control) == (OTHER, None)
    assert servedstore.leave(store, FOLDER)
    assert servedstore.served(store) == []
    store.close()
