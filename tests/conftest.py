from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from tests.support import netns
from tests.support.daemon import Home, KarmadProcess
from tests.support.syncthing import Cluster, Node, start_cluster

pytest_plugins = ["anyio"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that starts Syncthing nodes is marked `syncthing` whether or not it says so,
    so `-m "not syncthing"` (the newest-versions run in CI) leaves out exactly those."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "syncthing_cluster" in names or "netns_rig" in names:
            item.add_marker(pytest.mark.syncthing)
        if "netns_rig" in names:
            item.add_marker(pytest.mark.netns)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test, so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


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
        wrapper: tuple[str, ...] = (),
    ) -> KarmadProcess:
        nonlocal count
        count += 1
        process = KarmadProcess(
            home or Home(tmp_path / f"node{count}").create(),
            backend=backend,
            args=args,
            extra_env=dict(env or {}),
            wrapper=wrapper,
        )
        started.append(process)
        if start:
            process.start()
        return process

    yield factory
    for process in started:
        process.kill()


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    """Nodes a test starts by hand (append each as it starts): torn down at the end."""
    started: list[Node] = []
    try:
        yield started
    finally:
        for node in started:
            node.teardown()


@pytest.fixture
def karmad(karmad_factory: Callable[..., KarmadProcess], anyio_backend: str) -> KarmadProcess:
    """A running daemon on the same event loop as the test."""
    return karmad_factory(anyio_backend)


@pytest.fixture
def syncthing_cluster(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Cluster]]:
    """Start real Syncthing nodes on loopback: `syncthing_cluster(2, karmad=True)`.

    With `karmad=True` each node is a real karmad process managing its own Syncthing
    (loopback profile, configured through its config file); otherwise plain Syncthing
    processes prepared the same way. Everything is killed by pid at teardown.
    """
    started: list[Node] = []
    clusters = 0

    def factory(
        count: int = 2,
        *,
        karmad: bool = False,
        backend: str = "asyncio",
        config: str = "",
        syncthing: str = "",
    ) -> Cluster:
        nonlocal clusters
        clusters += 1
        return start_cluster(
            tmp_path / f"c{clusters}",
            count,
            karmad=karmad,
            backend=backend,
            config=config,
            syncthing=syncthing,
            started=started,
        )

    try:
        yield factory
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            for node in started:
                print(node.diagnose())  # shown under the failure, as captured teardown output
        for node in started:
            node.teardown()


@pytest.fixture
def netns_rig(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[netns.Net]:
    """Separate hosts: each node in its own network namespace (see tests/support/netns.py).

    Skipped, saying why, where namespaces cannot be made. Torn down whatever happened;
    a failed test prints the rig's links and every node's state and log tails.
    """
    reason = netns.unavailable()
    if reason is not None:
        pytest.skip(f"network namespaces: {reason}")
    net = netns.Net(tmp_path / "net")
    try:
        yield net
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(net.diagnose())
        net.teardown()
