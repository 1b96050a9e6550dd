"""When a member lists its team's keeper on the keeper folder alone (docs/keeper.md 2.6).

A password K does not follow makes K close the whole link a moment after it opens,
keeper folder included. A member back from a rotation it missed meets exactly that, and
Syncthing dials again every few seconds: the link is up for moments, again and again.
It must still fall back, to read the new key through K, and the reconciler must not
spin while it waits to list K again.

Syncthing is seen through what the reconciler's keeper side reads of it: whether K is
connected.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from karmad import deviceid
from karmad.domain import Phase, Team, new_team
from karmad.keeper.epoch import SECRET_BYTES
from karmad.state_schema import STATE_SCHEMA
from karmad.store import Store
from karmad.sync.keeper_side import FALLBACK_AFTER, SETTLE, KeeperSide
from karmad.sync.model import LocalTeam, Role, TeamKeeper

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TEAM = "abcdefghijklmnopqrstuvwxyz"
LEADER = deviceid.from_bytes(b"\x01" * 32)
KEEPER = deviceid.from_bytes(b"\xee" * 32)
BOB = deviceid.from_bytes(b"\x02" * 32)
CAROL = deviceid.from_bytes(b"\x03" * 32)


class Link:
    """K as the keeper side sees it; anything else it would ask Syncthing is a failure."""

    def __init__(self) -> None:
        self.up = False

    def connected(self, device_id: str) -> bool | None:
        assert device_id == KEEPER
        return self.up

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the keeper side used Syncthing: {name}")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(tmp_path / "karmad.db", STATE_SCHEMA)
    yield store
    store.close()


def _roster() -> Team:
    record = new_team(TEAM, "core", "lead.m", LEADER, T0 - timedelta(days=1))
    for n, device in enumerate((BOB, CAROL)):
        record = record.add_member(f"user{n}.m", device, T0 - timedelta(hours=2))
        record = record.activate(device, T0 - timedelta(hours=1))
    return record


def _side(store: Store, link: Link, tmp_path: Path) -> KeeperSide:
    return KeeperSide(store, link, tmp_path / "folders", None)  # type: ignore[arg-type]


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _member_fallen_back(side: KeeperSide, k: TeamKeeper, at: float) -> bool:
    team = LocalTeam(TEAM, "core", Role.MEMBER, Phase.MEMBER, LEADER, "lead.m", T0, _roster())
    return side._fallen_back(team, k, _at(at), rotated=False)


def _member_keeper() -> TeamKeeper:
    return TeamKeeper(TEAM, KEEPER, (), T0, epoch=1, secret=b"\x01" * SECRET_BYTES)


def test_a_link_the_keeper_keeps_closing_ends_in_the_fallback(store: Store, tmp_path: Path) -> None:
    link = Link()
    side = _side(store, link, tmp_path)
    k = _member_keeper()
    # Up for a moment every ten seconds, each time a cycle sees it (the connection event
    # wakes the reconciler), then closed again by K.
    for second in range(0, int(FALLBACK_AFTER.total_seconds()), 10):
        link.up = False
        assert not _member_fallen_back(side, k, second)
        link.up = True
        assert not _member_fallen_back(side, k, second + 1)
    link.up = False
    assert _member_fallen_back(side, k, FALLBACK_AFTER.total_seconds() + 1)


def test_a_link_that_lasts_stops_the_clock(store: Store, tmp_path: Path) -> None:
    link = Link()
    side = _side(store, link, tmp_path)
    k = _member_keeper()
    assert not _member_fallen_back(side, k, 0)  # K not there yet (starting up)
    link.up = True
    assert not _member_fallen_back(side, k, 2)
    assert not _member_fallen_back(side, k, FALLBACK_AFTER.total_seconds() + 1)
    assert side.next_check(_at(40)) is None
    link.up = False  # K goes away for good: the clock starts again, and runs out
    assert not _member_fallen_back(side, k, 100)
    assert _member_fallen_back(side, k, 100 + FALLBACK_AFTER.total_seconds())


def test_in_fallback_the_keeper_is_listed_again_once_the_link_lasts(
    store: Store, tmp_path: Path
) -> None:
    link = Link()
    side = _side(store, link, tmp_path)
    k = _member_keeper()
    assert not _member_fallen_back(side, k, 0)
    assert _member_fallen_back(side, k, FALLBACK_AFTER.total_seconds())
    # Nothing is due while K stays away: no past deadline to run the reconciler again
    # and again on.
    later = _at(FALLBACK_AFTER.total_seconds() + 1)
    due = side.next_check(later)
    assert due is None or due > later
    link.up = True
    assert _member_fallen_back(side, k, 40)
    due = side.next_check(_at(40))
    assert due is not None and due > _at(40)
    assert not _member_fallen_back(side, k, 40 + SETTLE.total_seconds())


def test_waiting_in_fallback_for_a_key_wakes_nobody_again_and_again(
    store: Store, tmp_path: Path
) -> None:
    """Connected and settled, but the key file announces an epoch we cannot open yet:
    the relisting deadline is past and must not be returned (the reconciler would spin)."""
    link = Link()
    side = _side(store, link, tmp_path)
    stale = replace(_member_keeper(), current_epoch=2)
    assert not _member_fallen_back(side, stale, 0)
    assert _member_fallen_back(side, stale, FALLBACK_AFTER.total_seconds())
    link.up = True
    assert _member_fallen_back(side, stale, 40)
    assert _member_fallen_back(side, stale, 40 + SETTLE.total_seconds() + 5)
    now = _at(40 + SETTLE.total_seconds() + 5)
    due = side.next_check(now)
    assert due is None or due > now
