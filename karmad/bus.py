"""In-process publish/subscribe of daemon events.

Publishing never blocks and never fails: each subscriber has a bounded buffer, and one
that falls behind is cut off (its stream ends and it learns it overflowed) rather than
slowing the daemon or growing memory without bound. RPC clients that called
`events.subscribe` and internal tasks (the reconciler, the receiver) use the same bus.
A bounded history lets a reconnecting client replay what it missed.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from karmad.protocol import Event

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def topic_matches(prefixes: tuple[str, ...], topic: str) -> bool:
    """Empty prefixes match everything; `sync` matches `sync` and `sync.folder.x`."""
    if not prefixes:
        return True
    return any(topic == p or topic.startswith(p + ".") for p in prefixes)


class Subscription:
    def __init__(
        self,
        ident: int,
        topics: tuple[str, ...],
        buffer: int,
        send: MemoryObjectSendStream[Event],
        receive: MemoryObjectReceiveStream[Event],
    ) -> None:
        self.id = ident
        self.topics = topics
        self.buffer = buffer
        self._send = send
        self.receive = receive
        self.overflowed = False
        self.last_seq = 0
        """Sequence number of the last event that made it into the buffer."""

    def offer(self, event: Event) -> bool:
        """Queue without waiting; False means this subscriber is gone (closed or too slow)."""
        try:
            self._send.send_nowait(event)
        except anyio.WouldBlock:
            self.overflowed = True
            self._send.close()
            return False
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._send.close()
            return False
        self.last_seq = event.seq
        return True

    def close(self) -> None:
        self._send.close()


class Bus:
    def __init__(self, clock: Clock = utc_now, history: int = 500) -> None:
        self._clock = clock
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self._subs: dict[int, Subscription] = {}
        self._history: deque[Event] = deque(maxlen=history)

    def subscribe(
        self, topics: Iterable[str] = (), buffer: int = 1000, *, since: int | None = None
    ) -> Subscription:
        """Start receiving; with `since`, first replay remembered events after that seq.

        Replay lets a client that reconnects continue without a gap, as long as the
        events it missed are still in the (bounded) history.
        """
        send, receive = anyio.create_memory_object_stream[Event](max_buffer_size=buffer)
        sub = Subscription(next(self._ids), tuple(topics), buffer, send, receive)
        if since is not None:
            for event in self._history:
                wanted = event.seq > since and topic_matches(sub.topics, event.topic)
                if wanted and not sub.offer(event):
                    return sub
        self._subs[sub.id] = sub
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.pop(sub.id, None)
        sub.close()

    def recent(self, topics: Iterable[str] = (), limit: int = 100) -> list[Event]:
        prefixes = tuple(topics)
        matching = [e for e in self._history if topic_matches(prefixes, e.topic)]
        return matching[-limit:] if limit > 0 else []

    def publish(
        self, topic: str, data: Mapping[str, Any] | None = None, *, remember: bool = True
    ) -> Event:
        """Deliver to every matching subscriber; `remember=False` keeps chatter (client
        connections, progress ticks) out of the history that `events.recent` shows."""
        event = Event(seq=next(self._seq), topic=topic, time=self._clock(), data=dict(data or {}))
        if remember:
            self._history.append(event)
        for sub in list(self._subs.values()):
            if topic_matches(sub.topics, topic) and not sub.offer(event):
                del self._subs[sub.id]
        return event

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def close(self) -> None:
        for sub in list(self._subs.values()):
            self.unsubscribe(sub)
