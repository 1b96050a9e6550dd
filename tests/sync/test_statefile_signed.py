"""Signed state files: readers believe only the owner's own file for its own folder, and
in a team that requires signatures nothing unsigned; the owner signs what it writes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from karmad.domain import folder_id, new_team
from karmad.state_schema import STATE_SCHEMA
from karmad.store import Store
from karmad.sync import integritystore, statefile, teamstore
from karmad.sync.executor import UNSIGNED, Executor
from karmad.sync.model import LocalTeam
from karmad.sync.plan import WriteState
from karmad.sync.port import ActionFailed
from karmad.sync.statefile import InvalidState, StateFile, team_to_wire
from karmad.trust import keys, signed
from karmad.trust.keys import DeviceKey, TrustError
from tests.support.identities import made_identity

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TEAM = "abcdefghijklmnopqrstuvwxya"
OTHER_TEAM = "bbcdefghijklmnopqrstuvwxya"


def _key(kind: str) -> DeviceKey:
    return keys.device_key_from_pem(*made_identity(kind))


LEAD = _key("ecdsa-p384")
BOB = _key("ed25519")
FOLDER = folder_id(TEAM, LEAD.device_id)


def leader_state(team_id: str = TEAM, **changes: object) -> StateFile:
    team = new_team(team_id, "Core", "lead.box", LEAD.device_id, NOW)
    team = team.add_member("bob.lap", BOB.device_id, NOW)
    state = StateFile(
        team_id=team_id,
        owner_tag="lead.box",
        owner_device=LEAD.device_id,
        seq=3,
        written_at=NOW,
        team=team_to_wire(team),
    )
    return msgspec.structs.replace(state, **changes)


def _parse(data: bytes, *, folder: str = FOLDER, required: bool = False) -> StateFile:
    return statefile.parse(
        data,
        folder=folder,
        owner_device=LEAD.device_id,
        leader_device=LEAD.device_id,
        require_signature=required,
    )


@pytest.mark.parametrize("required", [False, True])
def test_the_owners_signed_file_is_believed(tmp_path: Path, required: bool) -> None:
    data = statefile.encode_signed(leader_state(), LEAD, FOLDER)
    statefile.write_atomic(tmp_path, statefile.STATE_NAME, data)
    path = tmp_path / statefile.STATE_NAME
    read = statefile.read(
        path, folder=FOLDER, owner_device=LEAD.device_id, require_signature=required
    )
    assert read == leader_state()
    # The payload stays the readable JSON line it was; the signature is a line of its own.
    payload, line = data.splitlines()
    assert payload == statefile.encode(leader_state()).rstrip(b"\n")
    assert json.loads(line)["signer"] == LEAD.device_id


def test_a_file_signed_by_another_device_is_refused() -> None:
    """Bob writes a roster of his own into the leader's folder and signs it himself."""
    forged = statefile.encode_signed(leader_state(seq=99), BOB, FOLDER)
    with pytest.raises(InvalidState, match="bad signature: signed by another device"):
        _parse(forged, required=False)


def test_a_file_claiming_the_owner_with_another_certificate_is_refused() -> None:
    forged = statefile.encode_signed(leader_state(seq=99), BOB, FOLDER)
    payload, line = forged.splitlines()
    claim = json.loads(line)
    claim["signer"] = LEAD.device_id
    data = payload + b"\n" + json.dumps(claim).encode() + b"\n"
    with pytest.raises(InvalidState, match="bad signature"):
        _parse(data)


def test_a_payload_altered_after_signing_is_refused() -> None:
    genuine = statefile.encode_signed(leader_state(), LEAD, FOLDER)
    payload, line = genuine.splitlines()
    altered = payload.replace(b'"bob.lap"', b'"eve.lap"')
    assert altered != payload
    with pytest.raises(InvalidState, match="bad signature"):
        _parse(altered + b"\n" + line + b"\n")


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_change_to_a_signed_payload_is_believed(data: st.DataObject) -> None:
    """Whatever is changed in the payload (a byte replaced, inserted or removed), the
    file is refused with a reason: never believed, never a crash."""
    genuine = statefile.encode_signed(leader_state(), LEAD, FOLDER)
    payload, line = genuine.splitlines()
    at = data.draw(st.integers(0, len(payload) - 1))
    how = data.draw(st.sampled_from(["replace", "insert", "delete"]))
    byte = bytes([data.draw(st.integers(0, 255))])
    if how == "replace":
        if byte == payload[at : at + 1]:
            byte = bytes([(byte[0] + 1) % 256])
        changed = payload[:at] + byte + payload[at + 1 :]
    elif how == "insert":
        changed = payload[:at] + byte + payload[at:]
    else:
        changed = payload[:at] + payload[at + 1 :]
    with pytest.raises(InvalidState):
        _parse(changed + b"\n" + line + b"\n")


def test_an_unsigned_file_is_refused_where_signatures_are_required() -> None:
    with pytest.raises(InvalidState, match=r"^unsigned: "):
        _parse(statefile.encode(leader_state()), required=True)


def test_an_unsigned_file_is_believed_where_they_are_not() -> None:
    """Teams that never had a keeper still hear members whose karmad cannot sign."""
    assert _parse(statefile.encode(leader_state())) == leader_state()


def test_a_signed_file_copied_into_another_folder_is_refused() -> None:
    """The folder is part of what is signed: the leader's genuine file of one team does
    not speak in another folder, even one whose checks it would otherwise pass."""
    other = folder_id(OTHER_TEAM, LEAD.device_id)
    genuine = statefile.encode_signed(leader_state(team_id=OTHER_TEAM), LEAD, other)
    assert _parse(genuine, folder=other).team_id == OTHER_TEAM
    with pytest.raises(InvalidState, match=r"bad signature: .*does not match"):
        _parse(genuine, folder=FOLDER)


def test_the_signature_line_fits_under_the_cap() -> None:
    """A payload at the payload cap still fits with its signature, with the largest
    key Syncthing ever generated (RSA)."""
    rsa = _key("rsa-3072")
    line = signed.sign(rsa, b"{}", kind="state", folder=FOLDER, path="state").splitlines()[1]
    assert len(line) <= signed.MAX_SIGNATURE_LINE
    assert statefile.MAX_PAYLOAD_BYTES + 1 + len(line) + 1 <= statefile.MAX_STATE_BYTES


def test_an_oversized_payload_is_refused_even_with_room_left_in_the_file() -> None:
    padding = b" " * (statefile.MAX_PAYLOAD_BYTES + 1)
    with pytest.raises(InvalidState, match="larger than"):
        _parse(padding)


# --------------------------------------------------------------------------- the writer


class QuietSyncthing:
    """Syncthing as the executor sees it when writing a state file: only a scan."""

    async def scan(self, folder_id: str, paths: list[str]) -> None:
        raise ActionFailed("not running")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(tmp_path / "karmad.db", STATE_SCHEMA)
    record = new_team(TEAM, "Core", "lead.box", LEAD.device_id, NOW)
    teamstore.insert_team(store, LocalTeam.led(record, NOW), NOW)
    yield store
    store.close()


def _no_key() -> DeviceKey:
    raise TrustError("the device key is unreadable")


async def _write(store: Store, folders: Path, signer: object) -> tuple[list[str], bytes | None]:
    executor = Executor(QuietSyncthing(), store, folders, lambda: NOW, signer)  # type: ignore[arg-type]
    body = leader_state(seq=0)
    digest = statefile.digest(statefile.encode(body))
    action = WriteState(FOLDER, TEAM, body, digest)
    outcome = await executor.execute([action])
    path = folders / FOLDER / statefile.STATE_NAME
    errors = [error for _, error in outcome.failed]
    return errors, path.read_bytes() if path.exists() else None


@pytest.mark.anyio
async def test_the_owner_signs_its_state_file(tmp_path: Path, store: Store) -> None:
    errors, data = await _write(store, tmp_path, lambda: LEAD)
    assert not errors and data is not None
    state = _parse(data, required=True)
    assert state.seq == 1
    # What the planner compares stays the digest of the body, not of the signed file
    # (whose signature differs each time): an unchanged body is not written again.
    assert teamstore.published_digests(store)[TEAM] == statefile.digest(
        statefile.encode(leader_state(seq=0))
    )


@pytest.mark.anyio
async def test_without_a_key_the_file_goes_out_unsigned(tmp_path: Path, store: Store) -> None:
    errors, data = await _write(store, tmp_path, _no_key)
    assert not errors and data is not None
    assert signed.split(data)[1] is None
    assert _parse(data).seq == 1
    # Marked, so that it is written again, signed, once the key is there.
    body = statefile.encode(leader_state(seq=0))
    assert teamstore.published_digests(store)[TEAM] == UNSIGNED + statefile.digest(body)


@pytest.mark.anyio
async def test_without_a_key_a_team_that_requires_signatures_writes_nothing(
    tmp_path: Path, store: Store
) -> None:
    integritystore.require_signatures(store, [TEAM], NOW)
    errors, data = await _write(store, tmp_path, _no_key)
    assert data is None
    assert len(errors) == 1 and "requires signed state files" in errors[0]
    assert "the device key is unreadable" in errors[0]
    assert teamstore.team(store, TEAM).seq == 0  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_a_store_restored_from_an_older_backup_goes_on_from_the_published_seq(
    tmp_path: Path, store: Store
) -> None:
    """Readers never believe a lower seq again: a store whose count went back (restored
    from a backup) must not publish below what it published before."""
    (tmp_path / FOLDER).mkdir()
    published = statefile.encode_signed(leader_state(seq=41), LEAD, FOLDER)
    (tmp_path / FOLDER / statefile.STATE_NAME).write_bytes(published)
    errors, data = await _write(store, tmp_path, lambda: LEAD)
    assert not errors and data is not None
    assert _parse(data, required=True).seq == 42
    assert teamstore.team(store, TEAM).seq == 42  # type: ignore[union-attr]


def test_the_flag_is_never_cleared(store: Store) -> None:
    assert integritystore.require_signatures(store, [TEAM], NOW) == {TEAM}
    assert integritystore.require_signatures(store, [TEAM], NOW) == frozenset()
    assert integritystore.require_signatures(store, [], NOW) == frozenset()
    assert integritystore.signatures_required(store, TEAM)


def test_the_highest_sequence_number_only_grows(store: Store) -> None:
    integritystore.raise_state_seqs(store, {FOLDER: 7}, NOW)
    integritystore.raise_state_seqs(store, {FOLDER: 3}, NOW)
    assert integritystore.state_seqs(store) == {FOLDER: 7}
    integritystore.raise_state_seqs(store, {FOLDER: 9}, NOW)
    assert integritystore.state_seqs(store) == {FOLDER: 9}
