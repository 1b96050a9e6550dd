"""The JSON-RPC server, over the real socket of a real karmad process."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from tests.support.daemon import KarmadProcess
from tests.support.rpc import RawClient

pytestmark = pytest.mark.anyio


async def assert_alive(karmad: KarmadProcess) -> None:
    async with await RawClient.connect(karmad.socket) as client:
        answer = await client.call("daemon.hello")
        assert answer["result"]["protocol"] == 1


async def test_hello_and_status(karmad: KarmadProcess, anyio_backend: str) -> None:
    async with await RawClient.connect(karmad.socket) as client:
        hello = await client.call("daemon.hello")
        assert hello["jsonrpc"] == "2.0"
        assert hello["result"]["protocol"] == 1
        assert "events" in hello["result"]["capabilities"]
        status = (await client.call("daemon.status"))["result"]
        assert status["backend"] == anyio_backend
        assert status["pid"] == karmad.pid
        assert status["store"]["schema_version"] == status["store"]["latest_schema_version"] >= 1
        assert status["paths"]["socket"] == str(karmad.socket)
        assert status["subsystems"]["rpc"]["state"] == "listening"
        assert status["uptime_s"] >= 0


async def test_malformed_json_is_a_parse_error(karmad: KarmadProcess) -> None:
    async with await RawClient.connect(karmad.socket) as client:
        await client.send_line(b'{"jsonrpc": "2.0", "method": ')
        answer = await client.receive()
        assert answer["error"]["code"] == -32700
        assert answer["error"]["data"]["reason"] == "parse_error"
        assert answer["id"] is None
        # The connection survives a bad line.
        assert "result" in await client.call("daemon.hello")


@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "1.0", "id": 1, "method": "daemon.hello"},
        {"id": 1, "method": "daemon.hello"},
        {"jsonrpc": "2.0", "id": 1, "method": 5},
        {"jsonrpc": "2.0", "id": 1, "method": "daemon.hello", "params": "x"},
        {"jsonrpc": "2.0", "id": {"a": 1}, "method": "daemon.hello"},
        "a string",
        42,
    ],
)
async def test_invalid_requests(karmad: KarmadProcess, message: object) -> None:
    async with await RawClient.connect(karmad.socket) as client:
        await client.send(message)
        answer = await client.receive()
        assert answer["error"]["code"] == -32600
        assert answer["error"]["data"]["reason"] == "invalid_request"
        assert answer["id"] is None


async def test_unknown_method(karmad: KarmadProcess) -> None:
    async with await RawClient.connect(karmad.socket) as client:
        answer = await client.call("no.such")
        assert answer["error"]["code"] == -32601
        assert answer["error"]["data"] == {"reason": "method_not_found", "detail": "no.such"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"topics": "not-a-list"}, "$.topics"),
        ({"topics": [1, 2]}, "$.topics[0]"),
        ({"since": "yesterday"}, "$.since"),
        ({"bogus": True}, ""),
        (["positional"], ""),
    ],
)
async def test_bad_params(karmad: KarmadProcess, params: object, field: str) -> None:
    async with await RawClient.connect(karmad.socket) as client:
        answer = await client.call("events.subscribe", params)
        error = answer["error"]
        assert error["code"] == -32602
        assert error["data"]["reason"] == "invalid_params"
        assert error["data"].get("field", "") == field
        assert error["data"]["detail"]


async def test_application_error_has_a_stable_reason(karmad: KarmadProcess) -> None:
    async with await RawClient.connect(karmad.socket) as client:
        answer = await client.call("events.recent", {"limit": -1})
        assert answer["error"]["code"] == 1005
        assert answer["error"]["data"]["reason"] == "invalid_argument"
        assert answer["error"]["data"]["field"] == "limit"


async def test_empty_params_array_means_no_params(karmad: KarmadProcess) -> None:
    async with await RawClient.connect(karmad.socket) as client:
        assert "result" in await client.call("daemon.hello", [])


async def test_notification_gets_no_answer(karmad: KarmadProcess) -> None:
    async with await RawClient.connect(karmad.socket) as client:
        await client.send({"jsonrpc": "2.0", "method": "daemon.hello"})
        await client.send({"jsonrpc": "2.0", "method": "no.such"})
        # The next thing on the wire is the answer to this request, nothing before it.
        await client.send({"jsonrpc": "2.0", "id": "after", "method": "daemon.hello"})
        answer = await client.receive()
        assert answer["id"] == "after"


async def test_batch_with_mixed_items(karmad: KarmadProcess) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "daemon.hello"},
        {"jsonrpc": "2.0", "method": "daemon.hello"},  # notification: no answer
        {"jsonrpc": "2.0", "id": 2, "method": "no.such"},
        {"foo": "boo"},
        1,
        {"jsonrpc": "2.0", "id": 3, "method": "events.recent", "params": {"limit": "x"}},
        {"jsonrpc": "2.0", "id": 4, "method": "daemon.status"},
    ]
    async with await RawClient.connect(karmad.socket) as client:
        await client.send(batch)
        answers = await client.receive()
    assert isinstance(answers, list)
    assert len(answers) == 6
    by_id = {a["id"]: a for a in answers if a["id"] is not None}
    assert by_id[1]["result"]["protocol"] == 1
    assert by_id[2]["error"]["code"] == -32601
    assert by_id[3]["error"]["code"] == -32602
    assert by_id[4]["result"]["pid"] == karmad.pid
    nulls = [a for a in answers if a["id"] is None]
    assert [a["error"]["code"] for a in nulls] == [-32600, -32600]


async def test_batch_edge_cases(karmad: KarmadProcess) -> None:
    async with await RawClient.connect(karmad.socket) as client:
        await client.send([])
        answer = await client.receive()
        assert answer["error"]["code"] == -32600  # a single object, not a list
        await client.send([{"jsonrpc": "2.0", "method": "daemon.hello"}])
        await client.send({"jsonrpc": "2.0", "id": 9, "method": "daemon.hello"})
        assert (await client.receive())["id"] == 9  # all-notification batch: nothing sent


async def test_oversize_message_closes_only_that_connection(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str
) -> None:
    from tests.support.daemon import Home

    daemon = karmad_factory(anyio_backend, start=False)
    home: Home = daemon.home
    home.write_config("[rpc]\nmax_message_bytes = 8192\n")
    daemon.start()
    async with await RawClient.connect(daemon.socket) as bystander:
        async with await RawClient.connect(daemon.socket) as client:
            padding = "x" * 9000
            await client.send({"jsonrpc": "2.0", "id": 1, "method": "daemon.hello", "p": padding})
            answer = await client.receive()
            assert answer["error"]["code"] == -32000
            assert answer["error"]["data"]["reason"] == "message_too_large"
            assert await client.at_eof()
        # Just under the limit is fine.
        ok = {"jsonrpc": "2.0", "id": 2, "method": "daemon.hello", "params": []}
        line = json.dumps(ok)
        assert len(line) < 8192
        assert "result" in await bystander.call("daemon.hello")
    await assert_alive(daemon)


async def test_oversize_without_newline(karmad: KarmadProcess) -> None:
    async with await RawClient.connect(karmad.socket) as client:
        # 2 MiB of garbage and no newline: the daemon must not buffer it forever.
        with anyio.move_on_after(10), contextlib.suppress(anyio.BrokenResourceError, OSError):
            await client.stream.send(b"[" * (2 << 20))
        answer = await client.receive()
        assert answer["error"]["data"]["reason"] == "message_too_large"
    await assert_alive(karmad)


async def test_client_disconnecting_mid_request(karmad: KarmadProcess) -> None:
    for _ in range(20):
        client = await RawClient.connect(karmad.socket)
        await client.stream.send(b'{"jsonrpc":"2.0","id":1,"method":"daemon.st')
        await client.aclose()
        client = await RawClient.connect(karmad.socket)
        await client.send({"jsonrpc": "2.0", "id": 1, "method": "daemon.status"})
        await client.aclose()  # gone before the answer is written
    await assert_alive(karmad)


async def test_fifty_concurrent_clients(karmad: KarmadProcess) -> None:
    results: list[int] = []

    async def one(n: int) -> None:
        async with await RawClient.connect(karmad.socket) as client:
            for i in range(10):
                answer = await client.call("daemon.status")
                assert answer["result"]["pid"] == karmad.pid
                answer = await client.call("events.recent", {"limit": i})
                assert len(answer["result"]["events"]) <= i
            results.append(n)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for n in range(50):
                tg.start_soon(one, n)
    assert sorted(results) == list(range(50))


async def test_events_subscribe_pushes_notifications(karmad: KarmadProcess) -> None:
    async with await RawClient.connect(karmad.socket) as watcher:
        answer = await watcher.call("events.subscribe", {"topics": ["rpc.client"]})
        assert answer["result"]["topics"] == ["rpc.client"]
        async with await RawClient.connect(karmad.socket) as other:
            await other.call("daemon.hello")
        seen: list[str] = []
        connection = None
        while len(seen) < 2:
            note = await watcher.receive()
            assert "id" not in note
            assert note["method"] == "event"
            topic, data = note["params"]["topic"], note["params"]["data"]
            if connection is None and topic == "rpc.client.disconnected":
                continue  # a connection that ended before `other` began (a readiness probe)
            connection = connection or data["connection"]
            if data["connection"] == connection:
                seen.append(topic)
        assert seen == ["rpc.client.connected", "rpc.client.disconnected"]
        # Requests still work on a subscribed connection.
        assert "result" in await watcher.call("daemon.hello")


async def test_events_replay_since(karmad: KarmadProcess) -> None:
    async with await RawClient.connect(karmad.socket) as client:
        recent = (await client.call("events.recent", {"topics": ["daemon"]}))["result"]["events"]
        assert [e["topic"] for e in recent][:2] == ["daemon.subsystem", "daemon.subsystem"]
        first = recent[0]["seq"]
        await client.call("events.subscribe", {"topics": ["daemon"], "since": first})
        note = await client.receive()
        assert note["params"]["seq"] == recent[1]["seq"]


async def test_slow_client_is_dropped_with_overflow(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str
) -> None:
    daemon = karmad_factory(anyio_backend, start=False)
    daemon.home.write_config("[rpc]\nclient_buffer = 4\n")
    daemon.start()
    async with await RawClient.connect(daemon.socket) as slow:
        await slow.call("events.subscribe", {"topics": ["rpc.client"]})
        # The slow client reads nothing while thousands of events are published: enough
        # to fill the kernel's socket buffers and then its 4-event buffer in the daemon.
        for _ in range(2500):
            other = await anyio.connect_unix(daemon.socket)
            await other.aclose()
        # The daemon stayed responsive the whole time.
        await assert_alive(daemon)
        notes = []
        while True:
            note = await slow.receive()
            notes.append(note)
            if note["method"] == "events.overflow":
                break
        assert all(n["method"] == "event" for n in notes[:-1])
        seqs = [n["params"]["seq"] for n in notes[:-1]]
        assert seqs == sorted(set(seqs))
        assert len(seqs) < 5000  # it was cut off, not served everything
        overflow = notes[-1]["params"]
        assert overflow["buffer"] == 4
        assert overflow["dropped_after"] == notes[-2]["params"]["seq"]
        assert await slow.at_eof()
    await assert_alive(daemon)


PROBE = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print("EACCES")
    sys.exit(0)
try:
    s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"daemon.status"}\\n')
    answer = s.recv(100)
except OSError:  # refused before or while we wrote
    answer = b""
print("ANSWER" if answer else "CLOSED")
"""


def test_connection_from_another_uid_is_refused(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str, tmp_path: Path
) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to run a client as another user")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user on this machine")

    def demote() -> None:
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)

    def as_nobody(*argv: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            argv,
            preexec_fn=demote,
            capture_output=True,
            timeout=30,
            check=True,
            cwd="/",
        )

    # Our interpreter may live under a private home; any Python nobody may run will do.
    interpreter = None
    for candidate in (sys.executable, "/usr/bin/python3"):
        try:
            as_nobody(candidate, "-c", "pass")
        except (OSError, subprocess.CalledProcessError):
            continue
        interpreter = candidate
        break
    if interpreter is None:
        pytest.skip("no Python interpreter that user 'nobody' may execute")

    # The socket lives outside pytest's private temp tree, so that only karmad's own
    # permissions stand between it and user nobody.
    outside = Path(tempfile.mkdtemp(prefix="karmad-uid-", dir="/tmp"))
    try:
        sock = outside / "run" / "karmad.sock"
        karmad = karmad_factory(anyio_backend, env={"KARMAD_SOCKET": str(sock)})
        assert karmad.socket == sock

        def probe() -> str:
            return as_nobody(interpreter, "-c", PROBE, str(sock)).stdout.decode().strip()

        # First lock: the 0700 directory and 0600 socket keep other users out entirely.
        assert oct(sock.stat().st_mode & 0o777) == "0o600"
        assert oct(sock.parent.stat().st_mode & 0o777) == "0o700"
        assert probe() == "EACCES"
        # Second lock: permissions loosened by hand, the kernel credentials still refuse.
        outside.chmod(0o755)
        sock.parent.chmod(0o755)
        sock.chmod(0o777)
        assert probe() == "CLOSED"
        events = karmad.log_events()
        assert any(
            e.get("event") == "peer_refused" and e.get("uid") == nobody.pw_uid for e in events
        )
        # Our own uid is still served.
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(sock))
            s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"daemon.hello"}\n')
            assert b'"result"' in s.recv(4096)
    finally:
        shutil.rmtree(outside, ignore_errors=True)


# ------------------------------------------------------------------ hostile input


@pytest.mark.parametrize(
    "line",
    [
        b"[" * 1_000 + b"]" * 1_000,
        b"[" * 50_000 + b"]" * 50_000,
        b'{"jsonrpc":"2.0","id":1,"method":"events.recent","params":{"topics":'
        + b"[" * 5_000
        + b"]" * 5_000
        + b"}}",
        b'{"jsonrpc":"2.0","id":' + b"[" * 2_000 + b"]" * 2_000 + b',"method":"daemon.hello"}',
        b'[{"jsonrpc":"2.0","id":1,"method":"daemon.hello","params":{"x":'
        + b'{"a":[' * 450
        + b"]}" * 450
        + b"}}]",
        # Just past the limit, and far below what the interpreter could follow.
        b'{"jsonrpc":"2.0","id":1,"method":"daemon.hello","params":{"a":'
        + b"[" * 31
        + b"]" * 31
        + b"}}",
    ],
    ids=["1000", "50000", "params", "id", "batch-900", "33"],
)
async def test_deep_nesting_is_refused_and_the_daemon_lives_on(
    karmad: KarmadProcess, line: bytes
) -> None:
    async with await RawClient.connect(karmad.socket) as client:
        await client.send_line(line)
        answer = await client.receive()
        assert answer["error"]["code"] == -32003
        assert answer["error"]["data"]["reason"] == "message_too_deep"
        assert "32" in answer["error"]["data"]["detail"]
        assert answer["id"] is None
        # The same connection goes on.
        assert "result" in await client.call("daemon.hello")
    await assert_alive(karmad)


async def test_nesting_up_to_the_limit_is_served(karmad: KarmadProcess) -> None:
    async with await RawClient.connect(karmad.socket) as client:
        # A batch (1), its request (2), params (3), and 29 more levels: 32.
        deep: object = []
        for _ in range(28):
            deep = [deep]
        await client.send(
            [{"jsonrpc": "2.0", "id": 1, "method": "daemon.hello", "params": {"x": deep}}]
        )
        [answer] = await client.receive()
        assert answer["error"]["data"]["reason"] == "invalid_params"  # no such param
        assert answer["error"]["data"]["detail"] == "Object contains unknown field `x`"


def daemon_with(factory: Callable[..., KarmadProcess], backend: str, rpc: str) -> KarmadProcess:
    daemon = factory(backend, start=False)
    daemon.home.write_config(f"[rpc]\n{rpc}\n")
    return daemon.start()


def request(ident: object, method: str, **params: object) -> dict[str, object]:
    message: dict[str, object] = {"jsonrpc": "2.0", "method": method, "params": params}
    if ident is not None:
        message["id"] = ident
    return message


async def test_a_batch_over_the_limit_is_refused_whole(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str
) -> None:
    daemon = daemon_with(karmad_factory, anyio_backend, "max_batch_items = 5")
    async with await RawClient.connect(daemon.socket) as client:
        await client.send([request(i, "daemon.hello") for i in range(5)])
        assert len(await client.receive()) == 5
        # One more, with a shutdown in it: nothing of the batch may run.
        await client.send(
            [request(i, "daemon.hello") for i in range(5)] + [request(None, "daemon.shutdown")]
        )
        answer = await client.receive()
        assert answer["error"]["code"] == -32004
        assert answer["error"]["data"] == {
            "reason": "batch_too_large",
            "detail": "a batch may hold at most 5 requests, not 6",
        }
        assert answer["id"] is None
        assert "result" in await client.call("daemon.hello")
    await assert_alive(daemon)


async def test_a_response_is_bounded_and_what_does_not_fit_is_not_run(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str
) -> None:
    daemon = daemon_with(karmad_factory, anyio_backend, "max_response_bytes = 65536")
    batch = [request(i, "daemon.status") for i in range(90)]
    batch.append(request(None, "daemon.shutdown"))  # a notification past the limit
    batch.append(request("last", "daemon.hello"))
    async with await RawClient.connect(daemon.socket) as client:
        await client.send_line(json.dumps(batch).encode())
        line = await client._reader.receive_until(b"\n", 64 << 20)
        answers = json.loads(line)
        results = [a for a in answers if "result" in a]
        errors = [a for a in answers if "error" in a]
        assert results and errors
        assert len(results) + len(errors) == 91  # every request answered, the notification not
        assert [a["id"] for a in answers] == [*range(90), "last"]
        assert sum(len(json.dumps(a, separators=(",", ":"))) for a in results) <= 65536
        assert len(line) < 65536 + 91 * 300  # results within the limit, then short errors
        assert {a["error"]["data"]["reason"] for a in errors} == {"response_too_large"}
        not_run = [a for a in errors if a["error"]["data"]["detail"].startswith("not run")]
        assert len(not_run) >= len(errors) - 1
        assert answers[-1]["error"]["data"]["reason"] == "response_too_large"
        # A single answer over the limit is refused too.
        answer = await client.call("events.recent", {"limit": 10})
        assert "result" in answer
    await assert_alive(daemon)  # the shutdown past the limit did not run


async def test_a_long_batch_does_not_make_other_clients_wait(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str
) -> None:
    daemon = daemon_with(
        karmad_factory,
        anyio_backend,
        "max_batch_items = 100000\nmax_message_bytes = 16777216\nmax_response_bytes = 1073741824",
    )
    finished: list[str] = []
    batch = json.dumps([request(i, "daemon.status") for i in range(10_000)]).encode()
    async with (
        await RawClient.connect(daemon.socket) as greedy,
        await RawClient.connect(daemon.socket) as other,
    ):
        assert "result" in await other.call("daemon.hello")

        async def run_batch() -> None:
            await greedy.send_line(batch)
            await greedy.stream.receive()  # the answer begins once every item has run
            finished.append("batch")

        async def call_other() -> None:
            # Once the daemon is busy with the batch (it answered nothing yet).
            await anyio.sleep(0.2)
            for _ in range(5):
                assert "result" in await other.call("daemon.hello", timeout=60)
            finished.append("other")

        with anyio.fail_after(300):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run_batch)
                tg.start_soon(call_other)
    # Before, handlers ran back to back on the event loop: the other client waited for
    # the whole batch to run. Now the batch yields between its items.
    assert finished == ["other", "batch"]


async def test_idle_connections_are_closed_but_subscribers_are_not(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str
) -> None:
    daemon = daemon_with(karmad_factory, anyio_backend, "idle_timeout_s = 1")
    async with (
        await RawClient.connect(daemon.socket) as idle,
        await RawClient.connect(daemon.socket) as partial,
        await RawClient.connect(daemon.socket) as subscriber,
    ):
        assert "result" in await idle.call("daemon.hello")
        await subscriber.call("events.subscribe", {"topics": ["nothing.here"]})
        await partial.stream.send(b'{"jsonrpc":"2.0","id":1,"method":"daemo')  # never ends
        for client in (idle, partial):
            answer = await client.receive()
            assert answer["error"]["code"] == -32006
            assert answer["error"]["data"]["reason"] == "idle_timeout"
            assert "rpc.idle_timeout_s" in answer["error"]["data"]["detail"]
            assert answer["id"] is None
            assert await client.at_eof()
        await anyio.sleep(1.5)
        assert "result" in await subscriber.call("daemon.hello")
    events = [e for e in daemon.log_events() if e.get("event") == "idle_timeout"]
    assert len(events) == 2
    assert {e["pid"] for e in events} == {os.getpid()}


HOLDER = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
try:
    s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"daemon.hello"}\\n')
except OSError:  # refused at once: the refusal is still there to read
    pass
answer = json.loads(s.makefile("rb").readline())
print(answer["error"]["data"]["reason"] if "error" in answer else "served", flush=True)
sys.stdin.read()  # hold the connection until told to go
"""


async def test_one_process_cannot_take_every_connection(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str
) -> None:
    daemon = daemon_with(
        karmad_factory, anyio_backend, "max_clients = 6\nmax_clients_per_process = 4"
    )
    holders: list[subprocess.Popen[bytes]] = []

    def holder() -> str:
        """Another process that connects, says how it was received, and stays."""
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(daemon.socket)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        holders.append(proc)
        assert proc.stdout is not None
        return proc.stdout.readline().decode().strip()

    try:
        async with contextlib.AsyncExitStack() as stack:
            mine = [
                await stack.enter_async_context(await RawClient.connect(daemon.socket))
                for _ in range(4)
            ]
            for client in mine:
                assert "result" in await client.call("daemon.hello")
            async with await RawClient.connect(daemon.socket) as fifth:
                answer = await fifth.receive()
                assert answer["error"]["code"] == -32002
                assert answer["error"]["data"]["reason"] == "too_many_clients"
                assert "rpc.max_clients_per_process" in answer["error"]["data"]["detail"]
                assert answer["id"] is None
                assert await fifth.at_eof()
            # Other processes are still served, until the daemon as a whole is full.
            assert await anyio.to_thread.run_sync(holder) == "served"
            assert await anyio.to_thread.run_sync(holder) == "served"
            assert await anyio.to_thread.run_sync(holder) == "too_many_clients"
            await mine[0].aclose()
            with anyio.fail_after(10):
                while (answer := await anyio.to_thread.run_sync(holder)) != "served":
                    assert answer == "too_many_clients"  # until the daemon saw the close
                    await anyio.sleep(0.05)
    finally:
        for proc in holders:
            proc.kill()
            proc.communicate()  # reaps it and closes its pipes
    refused = [e for e in daemon.log_events() if e.get("event") == "too_many_clients"]
    assert refused[0]["pid"] == os.getpid()
    assert "rpc.max_clients_per_process" in refused[0]["detail"]
    assert "(rpc.max_clients)" in refused[1]["detail"]


async def test_mutating_calls_are_audited(karmad: KarmadProcess) -> None:
    async with await RawClient.connect(karmad.socket) as client:
        await client.call("daemon.hello")
        refused = await client.call("identity.init", {"user": "No Such User"})
        assert refused["error"]["data"]["reason"] == "invalid_argument"
        assert "result" in await client.call("identity.init", {"user": "ada"})
        # Bad params never reach the handler: nothing to audit.
        await client.call("identity.init", {"usr": "ada"})
    audit = [e for e in karmad.log_events() if e.get("event") == "rpc_mutation"]
    assert [(e["method"], e["outcome"], e["pid"]) for e in audit] == [
        ("identity.init", "invalid_argument", os.getpid()),
        ("identity.init", "ok", os.getpid()),
    ]
