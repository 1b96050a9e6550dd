from __future__ import annotations

from datetime import UTC, datetime

import pytest

from karmad.bus import Bus, topic_matches

pytestmark = pytest.mark.anyio


def fixed_clock() -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC)


def test_topic_prefixes() -> None:
    assert topic_matches((), "anything")
    assert topic_matches(("sync",), "sync")
    assert topic_matches(("sync",), "sync.folder.error")
    assert not topic_matches(("sync",), "syncthing.device")
    assert topic_matches(("a", "sync"), "sync.x")


async def test_delivery_in_order_with_filter() -> None:
    bus = Bus(clock=fixed_clock)
    sub = bus.subscribe(["index"], buffer=10)
    bus.publish("index.progress", {"n": 1})
    bus.publish("sync.x")
    bus.publish("index.done")
    bus.close()
    async with sub.receive:
        received = [e async for e in sub.receive]
    assert [e.topic for e in received] == ["index.progress", "index.done"]
    assert received[0].data == {"n": 1}
    assert received[0].time == fixed_clock()
    assert received[0].seq < received[1].seq


async def test_overflow_cuts_off_only_the_slow_subscriber() -> None:
    bus = Bus()
    slow = bus.subscribe(buffer=2)
    fast = bus.subscribe(buffer=100)
    for n in range(5):
        bus.publish("t", {"n": n})  # never blocks, never raises
    assert slow.overflowed
    assert not fast.overflowed
    assert bus.subscriber_count == 1
    bus.close()
    async with slow.receive, fast.receive:
        kept = [e.data["n"] async for e in slow.receive]
    assert kept == [0, 1]
    assert slow.last_seq == 2


async def test_replay_since_and_recent() -> None:
    bus = Bus(history=3)
    events = [bus.publish("a", {"n": n}) for n in range(5)]
    bus.publish("chatter", remember=False)
    assert [e.data["n"] for e in bus.recent()] == [2, 3, 4]
    assert [e.data["n"] for e in bus.recent(limit=1)] == [4]
    sub = bus.subscribe(buffer=10, since=events[2].seq)
    bus.publish("a", {"n": 5})
    bus.unsubscribe(sub)
    async with sub.receive:
        assert [e.data["n"] async for e in sub.receive] == [3, 4, 5]


async def test_closed_receiver_is_forgotten() -> None:
    bus = Bus()
    sub = bus.subscribe()
    await sub.receive.aclose()
    bus.publish("x")
    assert bus.subscriber_count == 0
