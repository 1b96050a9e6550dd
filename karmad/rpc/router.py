"""The method table: each method declared in `protocol.METHODS` bound to its handler.

A handler is a plain synchronous function `(params, call) -> result` with the types the
protocol declares for its method. Everything around it — decoding params into the
declared struct, turning what it raises into an error, encoding the result — is done
once for all methods by `dispatch.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from karmad.protocol import METHODS, MethodSpec, Params
from karmad.rpc.call import Call

P = TypeVar("P", bound=Params)
Handler = Callable[[P, Call], Any]


@dataclass(frozen=True, slots=True)
class Route:
    spec: MethodSpec
    handler: Handler[Any]


class Router:
    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}

    def add(self, name: str, handler: Handler[Any]) -> None:
        spec = METHODS.get(name)
        if spec is None:
            raise KeyError(f"{name} is not declared in karmad.protocol.METHODS")
        if name in self._routes:
            raise KeyError(f"{name} is already registered")
        self._routes[name] = Route(spec, handler)

    def method(self, name: str) -> Callable[[Handler[P]], Handler[P]]:
        def decorator(fn: Handler[P]) -> Handler[P]:
            self.add(name, fn)
            return fn

        return decorator

    @property
    def routes(self) -> Mapping[str, Route]:
        return self._routes

    def missing(self) -> list[str]:
        """Declared methods nobody implements; the daemon refuses to start with any."""
        return sorted(set(METHODS) - set(self._routes))
