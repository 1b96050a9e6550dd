"""What a handler may know and do about the request it serves.

Its own module so that handlers, the router and the dispatcher depend on this small
contract and not on the transport (`server.py`), which depends on all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from karmad.bus import Subscription
    from karmad.peercred import PeerCredentials


class Channel(Protocol):
    """The connection a request came in on (implemented by `server.Connection`)."""

    @property
    def id(self) -> int: ...

    @property
    def peer(self) -> PeerCredentials: ...

    def subscribe(self, topics: list[str], since: int | None, call: Call) -> Subscription:
        """Buffer matching events from now on; deliver them once `call` is answered."""
        ...


@dataclass
class Call:
    connection: Channel
    _after: list[Callable[[], None]] = field(default_factory=list)

    @property
    def peer(self) -> PeerCredentials:
        return self.connection.peer

    def after_response(self, fn: Callable[[], None]) -> None:
        """Run `fn` once the response has been written (e.g. shut down after saying so)."""
        self._after.append(fn)

    def answered(self) -> None:
        """Called by the transport once the response is on its way."""
        for fn in self._after:
            fn()
        self._after.clear()
