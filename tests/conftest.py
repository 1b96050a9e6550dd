from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Home, KarmadProcess

pytest_plugins = ["anyio"]


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param("trio", id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test runs on both event loops karmad supports."""
    return str(request.param)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path).create()


@pytest.fixture
def karmad_factory(tmp_path: Path) -> Iterator[Callable[..., KarmadProcess]]:
    """Start real karmad processes; every one is killed at teardown whatever happened."""
    started: list[KarmadProcess] = []
    count = 0

    def factory(
        backend: str = "asyncio",
        *,
        home: Home | None = None,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        start: bool = True,
    ) -> KarmadProcess:
        nonlocal count
        count += 1
        process = KarmadProcess(
            home or Home(tmp_path / f"node{count}").create(),
            backend=backend,
            args=args,
            extra_env=dict(env or {}),
        )
        started.append(process)
        if start:
            process.start()
        return process

    yield factory
    for process in started:
        process.kill()


@pytest.fixture
def karmad(karmad_factory: Callable[..., KarmadProcess], anyio_backend: str) -> KarmadProcess:
    """A running daemon on the same event loop as the test."""
    return karmad_factory(anyio_backend)
