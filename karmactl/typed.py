"""Daemon answers as the protocol's types, for commands that read their fields.

`karmad.protocol` is the contract karmad encodes its answers from; decoding into the same
structs here means a field renamed or retyped there is a type error in karmactl (mypy),
not a KeyError at run time. It costs msgspec and the protocol module at start-up, so the
commands that must start fastest (`status`, `hello`) read plain JSON instead. `--json`
prints the answer as it came, so scripts see every field even of a newer daemon: the
commands keep the raw answer beside the typed one for that, and only this module looks
inside a raw answer (a test holds the commands to it).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, TypeVar

import msgspec

from karmactl.client import ProtocolViolation

T = TypeVar("T")


def decode(raw: Any, kind: type[T]) -> T:
    """`raw` (decoded JSON) as `kind`; an answer that does not fit is the daemon's fault."""
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        name = getattr(kind, "__name__", str(kind))
        raise ProtocolViolation(f"the daemon's answer is not a {name}: {exc}") from None


def as_sent(raw: Any, field: str, items: list[T]) -> Iterator[tuple[Any, T]]:
    """Each of `items` (decoded from the list `raw[field]`) beside its JSON as it came, for
    `--json` output of a part of an answer."""
    return zip(raw[field], items, strict=True)


def wire_time(value: datetime) -> str:
    """A time written as the daemon wrote it (both encode with msgspec, which round-trips)."""
    text: str = msgspec.to_builtins(value)
    return text
