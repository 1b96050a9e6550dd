"""Replicated state files: atomic writes and the defensive read."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from karmad import deviceid
from karmad.domain import folder_id, new_team
from karmad.sync import statefile
from karmad.sync.statefile import InvalidState, StateFile, team_to_wire

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LEAD = deviceid.from_bytes(b"L" * 32)
BOB = deviceid.from_bytes(b"B" * 32)
TEAM = "abcdefghijklmnopqrstuvwxya"


def leader_state(**changes: object) -> StateFile:
    team = new_team(TEAM, "Core", "lead.box", LEAD, NOW).add_member("bob.lap", BOB, NOW)
    team = team.share("github.com/o/r", "o/r", NOW)
    state = StateFile(
        team_id=TEAM,
        owner_tag="lead.box",
        owner_device=LEAD,
        seq=3,
        written_at=NOW,
        team=team_to_wire(team),
    )
    return msgspec.structs.replace(state, **changes)


def write(tmp_path: Path, state: StateFile | bytes) -> Path:
    data = state if isinstance(state, bytes) else statefile.encode(state)
    statefile.write_atomic(tmp_path, "state", data)
    return tmp_path / "state"


def test_round_trip(tmp_path: Path) -> None:
    path = write(tmp_path, leader_state())
    read = statefile.read(path, folder=folder_id(TEAM, LEAD), owner_device=LEAD)
    assert read == leader_state()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(statefile.TEMP_PREFIX)]


def test_unknown_fields_are_tolerated(tmp_path: Path) -> None:
    doc = json.loads(statefile.encode(leader_state()))
    doc["from_the_future"] = {"x": 1}
    doc["team"]["members"][0]["mood"] = "happy"
    path = write(tmp_path, json.dumps(doc).encode())
    assert statefile.read(path, folder=folder_id(TEAM, LEAD), owner_device=LEAD).seq == 3


def hostile_member_claims_leadership() -> StateFile:
    # Bob publishes a team record of his own, naming himself leader and removing others.
    team = new_team(TEAM, "Core", "bob.lap", BOB, NOW)
    return StateFile(
        team_id=TEAM,
        owner_tag="bob.lap",
        owner_device=BOB,
        seq=9,
        written_at=NOW,
        team=team_to_wire(team),
    )


@pytest.mark.parametrize(
    ("state", "folder_owner", "message"),
    [
        (leader_state(), BOB, "another device"),
        (leader_state(team_id="bcdefghijklmnopqrstuvwxyza"), LEAD, "do not match the folder"),
        (leader_state(team_id="../../etc/passwd"), LEAD, "malformed team id"),
        (leader_state(owner_tag="Not A Tag"), LEAD, "member tag"),
        (leader_state(seq=-1), LEAD, "negative"),
        (leader_state(format=99), LEAD, "unsupported state format"),
        (hostile_member_claims_leadership(), BOB, None),
    ],
)
def test_refused(tmp_path: Path, state: StateFile, folder_owner: str, message: str | None) -> None:
    path = write(tmp_path, state)
    folder = folder_id(TEAM, folder_owner)
    if message is None:
        # A member's file with a team record naming itself leader: refused, because
        # team records are believed only from the leader we joined.
        read = statefile.read(path, folder=folder, owner_device=BOB)
        assert read.team is not None and read.team.leader_device == BOB
        return
    with pytest.raises(InvalidState, match=message):
        statefile.read(path, folder=folder, owner_device=folder_owner)


def test_team_record_from_non_leader_is_refused(tmp_path: Path) -> None:
    state = leader_state()
    wire = state.team
    assert wire is not None
    forged = msgspec.structs.replace(state, owner_device=BOB, owner_tag="bob.lap", team=wire)
    path = write(tmp_path, forged)
    with pytest.raises(InvalidState, match="not its leader"):
        statefile.read(path, folder=folder_id(TEAM, BOB), owner_device=BOB)


def test_roster_checks(tmp_path: Path) -> None:
    state = leader_state()
    assert state.team is not None
    twice = msgspec.structs.replace(
        state.team, members=[*state.team.members, state.team.members[1]]
    )
    with pytest.raises(InvalidState, match="twice"):
        statefile.read(
            write(tmp_path, msgspec.structs.replace(state, team=twice)),
            folder=folder_id(TEAM, LEAD),
            owner_device=LEAD,
        )
    bad_key = msgspec.structs.replace(
        state.team,
        projects=[msgspec.structs.replace(state.team.projects[0], key="p-bbbbbbbbbbbbbbbb")],
    )
    with pytest.raises(InvalidState, match="project key"):
        statefile.read(
            write(tmp_path, msgspec.structs.replace(state, team=bad_key)),
            folder=folder_id(TEAM, LEAD),
            owner_device=LEAD,
        )
    bad_device = json.loads(statefile.encode(state))
    bad_device["team"]["members"][1]["device_id"] = BOB[:-1] + ("A" if BOB[-1] != "A" else "B")
    with pytest.raises(InvalidState, match="check character"):
        statefile.read(
            write(tmp_path, json.dumps(bad_device).encode()),
            folder=folder_id(TEAM, LEAD),
            owner_device=LEAD,
        )


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        (("written_at",), "2026-01-01T00:00:00", "timezone"),
        (("team", "members", 1, "changed_at"), "2026-01-01T00:00:00", "timezone"),
        (("team", "created_at"), "9999-12-31T23:59:59Z", "out of range"),
        (("team", "members", 1, "changed_at"), "0001-01-01T00:00:00Z", "out of range"),
        (("seq",), 2**63, "too large"),
        (("seq",), 2**70, "too large"),
    ],
)
def test_values_that_reconciliation_could_not_use(
    tmp_path: Path, where: tuple[str | int, ...], value: object, message: str
) -> None:
    """Valid JSON of the right types that would fail later: a time without a zone cannot
    be compared with the clock, a grace period cannot be added to the last day of the
    calendar, and the store holds 64-bit integers."""
    doc = json.loads(statefile.encode(leader_state()))
    target = doc
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    with pytest.raises(InvalidState, match=message):
        statefile.read(
            write(tmp_path, json.dumps(doc).encode()),
            folder=folder_id(TEAM, LEAD),
            owner_device=LEAD,
        )


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b'{"team_id": 5}', b"\xff\xfe", b"null"])
def test_malformed(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(InvalidState, match="not a valid state file"):
        statefile.read(write(tmp_path, data), folder=folder_id(TEAM, LEAD), owner_device=LEAD)


def test_size_cap(tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.write_bytes(b" " * (statefile.MAX_STATE_BYTES + 1))
    with pytest.raises(InvalidState, match="larger than"):
        statefile.read(path, folder=folder_id(TEAM, LEAD), owner_device=LEAD)


def test_crash_leftovers_are_swept(tmp_path: Path) -> None:
    (tmp_path / f"{statefile.TEMP_PREFIX}state-dead").write_bytes(b"half")
    write(tmp_path, leader_state())
    assert statefile.sweep_temp_files(tmp_path) == 1
    assert (tmp_path / "state").exists()
