"""The switch's link model, on its own: what netem would do to a stream of packets."""

from __future__ import annotations

import random

from tests.support.netswitch import Shape, Stage


def departures(stage: Stage, sends: list[tuple[float, int]], seed: int = 1) -> list[float | None]:
    rng = random.Random(seed)
    return [stage.admit(at, size, rng) for at, size in sends]


def test_a_neutral_link_passes_packets_at_once() -> None:
    assert departures(Stage(), [(1.0, 100), (1.5, 100)]) == [1.0, 1.5]


def test_jitter_delays_without_reordering() -> None:
    stage = Stage(Shape(delay_s=0.1, jitter_s=0.02))
    sends = [(n * 0.001, 100) for n in range(500)]
    out = departures(stage, sends)
    assert all(t is not None for t in out)
    times = [t for t in out if t is not None]
    assert times == sorted(times)
    lags = [t - at for t, (at, _) in zip(times, sends, strict=True)]
    assert min(lags) >= 0.08 - 1e-9
    assert max(lags) <= 0.12 + 0.001 * 500  # in-order queueing may add to a lag, never cut it
    assert max(lags) - min(lags) > 0.02  # the jitter is there


def test_a_rate_spaces_packets_by_their_size() -> None:
    stage = Stage(Shape(rate_bps=8000))  # 1000 bytes a second
    out = departures(stage, [(0.0, 500), (0.0, 500), (0.0, 1000)])
    assert out == [0.5, 1.0, 2.0]


def test_loss_is_random_but_reproducible_and_near_its_rate() -> None:
    sends = [(float(n), 100) for n in range(5000)]
    first = departures(Stage(Shape(loss=0.02)), sends, seed=7)
    again = departures(Stage(Shape(loss=0.02)), sends, seed=7)
    assert first == again
    lost = sum(t is None for t in first)
    assert 60 <= lost <= 140  # 2% of 5000 is 100


def test_a_full_queue_drops_the_tail() -> None:
    stage = Stage(Shape(delay_s=1.0, limit=3))
    out = []
    for _ in range(5):
        departure = stage.admit(0.0, 100, random.Random(0))
        if departure is not None:
            stage.queued += 1  # the switch counts what it holds on the wire
        out.append(departure)
    assert out == [1.0, 1.0, 1.0, None, None]
