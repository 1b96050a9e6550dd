"""The notify protocol: against a real datagram socket, in-process and from a real karmad."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

from karmad.bus import Bus
from karmad.health import Health
from karmad.sdnotify import Notifier, feed_watchdog, report_status
from tests.support.daemon import KarmadProcess, request
from tests.support.notify import Datagram, NotifyListener


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Socket paths must stay under ~108 bytes; pytest's tmp_path can be longer."""
    path = Path(tempfile.mkdtemp(prefix="kn-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def listener(short_dir: Path) -> Iterator[NotifyListener]:
    with NotifyListener(short_dir / "notify") as lst:
        yield lst


def texts(messages: list[Datagram]) -> list[str]:
    return [m.text for m in messages]


# --------------------------------------------------------------------------- the protocol


def test_messages_arrive_one_datagram_each_in_order(listener: NotifyListener) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": listener.address})
    assert notifier.enabled
    assert notifier.ready()
    assert notifier.status("indexing 40 %")
    assert notifier.watchdog()
    assert notifier.stopping("stopping")
    listener.wait_for(lambda m: "STOPPING=1" in m.text)
    assert texts(listener.messages) == [
        "READY=1",
        "STATUS=indexing 40 %",
        "WATCHDOG=1",
        "STOPPING=1\nSTATUS=stopping",
    ]
    notifier.close()


def test_abstract_namespace_address(short_dir: Path) -> None:
    name = f"@karmad-test-{uuid.uuid4().hex}"
    with NotifyListener(name) as lst:
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": name})
        assert notifier.ready()
        assert lst.wait_for(lambda m: True).text == "READY=1"
        notifier.close()


def test_a_newline_cannot_smuggle_an_assignment(listener: NotifyListener) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": listener.address})
    notifier.status("all fine\nREADY=1\n")
    message = listener.wait_for(lambda m: True)
    assert message.text == "STATUS=all fine READY=1"
    notifier.close()


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = Notifier.from_environ({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert notifier.watchdog_timeout is None
    assert notifier.ready() is False
    assert notifier.status("x") is False
    assert notifier.stopping() is False


def test_unsupported_address_kind_is_ignored() -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notifier.enabled
    assert notifier.ready() is False


def test_a_missing_socket_never_raises_and_sending_recovers(short_dir: Path) -> None:
    path = short_dir / "later"
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(path)})
    assert notifier.ready() is False  # nobody listens yet: reported, not raised
    with NotifyListener(path) as lst:
        assert notifier.ready() is True
        assert lst.wait_for(lambda m: True).text == "READY=1"
    notifier.close()


def test_environment_is_taken_away_from_children() -> None:
    env = {
        "NOTIFY_SOCKET": "/run/user/1000/systemd/notify",
        "WATCHDOG_USEC": "30000000",
        "WATCHDOG_PID": str(os.getpid()),
        "OTHER": "kept",
    }
    notifier = Notifier.from_environ(env, unset=True)
    assert env == {"OTHER": "kept"}
    assert notifier.watchdog_timeout == 30.0


def test_watchdog_meant_for_another_process_is_ignored() -> None:
    env = {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}
    assert Notifier.from_environ(env).watchdog_timeout is None
    bad = {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "soon"}
    assert Notifier.from_environ(bad).watchdog_timeout is None


# --------------------------------------------------------------------------- loop tasks


@pytest.mark.anyio
async def test_pings_stop_while_the_event_loop_is_blocked(listener: NotifyListener) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": listener.address})
    timeout = 0.2
    block = 0.8
    async with anyio.create_task_group() as tg:
        tg.start_soon(feed_watchdog, notifier, timeout)
        await anyio.sleep(0.5)
        before = len(listener.messages)
        assert before >= 2, "the pinger runs while the loop runs"
        started = time.monotonic()
        time.sleep(block)  # noqa: ASYNC251 - the wedged loop itself: nothing else can run
        ended = time.monotonic()
        await anyio.sleep(0.5)
        tg.cancel_scope.cancel()
    pings = [m for m in listener.messages if m.text == "WATCHDOG=1"]
    # Nothing arrives while the loop is blocked (the one sent just before may land a
    # moment after the block began, hence the small margin)...
    during = [m for m in pings if started + 0.05 < m.at < ended]
    assert during == []
    # ...so systemd, waiting `timeout` seconds, would have seen a silence this long...
    gaps = [b.at - a.at for a, b in itertools.pairwise(pings)]
    assert max(gaps) > block - 0.05 > timeout
    # ...and the pings resume as soon as the loop runs again.
    assert any(m.at > ended for m in pings)
    notifier.close()


@pytest.mark.anyio
async def test_status_is_sent_when_the_summary_changes_only(listener: NotifyListener) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": listener.address})
    bus = Bus()
    health = Health(bus)
    progress = {"text": "indexing 10 %"}
    health.add_summary("index", lambda: progress["text"])
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: report_status(notifier, health.summary, bus, settle=0.05, poll=60))
        await anyio.to_thread.run_sync(listener.wait_for, lambda m: m.text.startswith("STATUS="))
        # Events that leave the summary as it is send nothing.
        for _ in range(5):
            bus.publish("rpc.client.connected", {"connection": 1}, remember=False)
        await anyio.sleep(0.3)
        assert texts(listener.messages) == ["STATUS=indexing 10 %"]
        # A change announced by an event is sent once, after the burst settles.
        progress["text"] = "indexing 50 %"
        for _ in range(200):  # more than the subscriber buffer: cut off and resubscribed
            bus.publish("index.progress", {"done": 1}, remember=False)
        await anyio.to_thread.run_sync(listener.wait_for, lambda m: "50 %" in m.text)
        progress["text"] = "indexing 90 %"
        health.set("index", "running", "90 %")
        await anyio.to_thread.run_sync(listener.wait_for, lambda m: "90 %" in m.text)
        await anyio.sleep(0.3)
        tg.cancel_scope.cancel()
    assert texts(listener.messages) == [
        "STATUS=indexing 10 %",
        "STATUS=indexing 50 %",
        "STATUS=indexing 90 %",
    ]
    notifier.close()


@pytest.mark.anyio
async def test_status_poll_catches_a_change_without_an_event(listener: NotifyListener) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": listener.address})
    bus = Bus()
    state = {"text": "a"}
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: report_status(notifier, lambda: state["text"], bus, poll=0.2))
        await anyio.to_thread.run_sync(listener.wait_for, lambda m: m.text == "STATUS=a")
        state["text"] = "b"
        await anyio.to_thread.run_sync(listener.wait_for, lambda m: m.text == "STATUS=b", 10.0)
        tg.cancel_scope.cancel()
    notifier.close()


# --------------------------------------------------------------------------- real karmad


def test_karmad_tells_systemd_ready_status_watchdog_stopping(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str, listener: NotifyListener
) -> None:
    watchdog_s = 1.0
    karmad = karmad_factory(
        anyio_backend,
        env={"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": str(int(watchdog_s * 1e6))},
        start=False,
    )
    karmad.start(wait=False)
    ready = listener.wait_for(lambda m: True)
    assert ready.text == "READY=1", "READY=1 comes first, alone"
    # READY means the socket already listens: one attempt, no retry.
    hello = request(karmad.socket, "daemon.hello")
    assert hello["result"]["protocol"] == 1
    listener.wait_for(lambda m: m.text.startswith("STATUS="))
    # Subsystems report in as they finish starting; the status line follows the summary.
    time.sleep(1.0)
    summary = request(karmad.socket, "daemon.status")["result"]["summary"]
    assert summary
    status = listener.wait_for(lambda m: m.text == f"STATUS={summary}", 10.0)
    assert status.fields["STATUS"] == summary

    # The watchdog is fed at about half its timeout, never slower than the timeout.
    time.sleep(2.5)
    pings = [m for m in listener.messages if m.text == "WATCHDOG=1"]
    assert len(pings) >= 3
    gaps = [b.at - a.at for a, b in itertools.pairwise(pings)]
    assert max(gaps) < watchdog_s
    assert 0.3 < statistics.median(gaps) < 0.75

    # A stopped process sends nothing: systemd would restart it after the timeout.
    karmad.signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        time.sleep(watchdog_s * 1.5)
        resumed_at = time.monotonic()
    finally:
        karmad.signal(signal.SIGCONT)
    silent = [m for m in listener.messages if stopped_at + 0.05 < m.at < resumed_at]
    assert silent == []
    count = len(listener.messages)
    listener.wait_for(lambda m: m.text == "WATCHDOG=1", 5.0, after=count)

    assert karmad.stop() == 0
    messages = listener.messages
    stopping = [i for i, m in enumerate(messages) if "STOPPING=1" in m.text]
    assert stopping == [len(messages) - 1], "STOPPING=1 is sent once, last"
    assert texts(messages).count("READY=1") == 1


def test_karmad_speaks_to_an_abstract_socket(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str
) -> None:
    name = f"@karmad-test-{uuid.uuid4().hex}"
    with NotifyListener(name) as lst:
        karmad = karmad_factory(anyio_backend, env={"NOTIFY_SOCKET": name})
        assert lst.wait_for(lambda m: True).text == "READY=1"
        assert karmad.stop() == 0
        assert "STOPPING=1" in lst.wait_for(lambda m: "STOPPING" in m.text).text
        # No watchdog was asked for, so none is sent.
        assert not any(m.text == "WATCHDOG=1" for m in lst.messages)


def test_a_failed_start_reports_why(
    karmad_factory: Callable[..., KarmadProcess], listener: NotifyListener
) -> None:
    karmad = karmad_factory(env={"NOTIFY_SOCKET": listener.address}, start=False)
    karmad.home.create()
    karmad.home.state.mkdir(parents=True)
    (karmad.home.state / "karmad.db").write_bytes(b"this is not a database at all" * 100)
    karmad.start(wait=False)
    assert karmad.wait() == 1
    message = listener.wait_for(lambda m: m.text.startswith("STATUS="))
    assert message.text.startswith("STATUS=failed: ")
    assert "karmad.db" in message.text
    assert not any("READY=1" in m.text for m in listener.messages)
