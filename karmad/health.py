"""What each subsystem is doing, for `daemon.status`, STATUS= lines and `karmactl doctor`.

Subsystems report transitions here instead of being polled, so a status call is a dict
read and never touches the subsystem itself.
"""

from __future__ import annotations

from collections.abc import Callable

from karmad.bus import Bus, Clock, utc_now
from karmad.protocol import SubsystemState


class Health:
    def __init__(self, bus: Bus | None = None, clock: Clock = utc_now) -> None:
        self._bus = bus
        self._clock = clock
        self._states: dict[str, SubsystemState] = {}
        self._summaries: dict[str, Callable[[], str]] = {}

    def set(self, name: str, state: str, detail: str = "") -> None:
        current = self._states.get(name)
        if current is not None and current.state == state and current.detail == detail:
            return
        since = current.since if current is not None and current.state == state else self._clock()
        self._states[name] = SubsystemState(state=state, detail=detail, since=since)
        if self._bus is not None:
            self._bus.publish("daemon.subsystem", {"name": name, "state": state, "detail": detail})

    def get(self, name: str) -> SubsystemState | None:
        return self._states.get(name)

    def snapshot(self) -> dict[str, SubsystemState]:
        return dict(self._states)

    def add_summary(self, name: str, summary: Callable[[], str]) -> None:
        """Register a one-line description of a subsystem's progress (indexing 40 %...)."""
        self._summaries[name] = summary

    def summary(self) -> str:
        parts = [text for fn in self._summaries.values() if (text := fn())]
        if not parts:
            parts = [f"{n}: {s.state}" for n, s in sorted(self._states.items())]
        return "; ".join(parts)
