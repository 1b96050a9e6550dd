"""Real Syncthing nodes on loopback, alone or each under its own real karmad.

    cluster = syncthing_cluster(2, karmad=True)        # the fixture in tests/conftest.py
    a, b = cluster.nodes
    cluster.pair(a, b)                                 # explicit tcp://127.0.0.1:port addresses
    cluster.share(a, [b], "karma-test")                # sendonly on a, receiveonly on b
    (a.folder_dir("karma-test") / "x").write_text("hi")
    a.rest.post("/rest/db/scan", folder="karma-test")
    wait_until(lambda: (b.folder_dir("karma-test") / "x").exists(), 10)

Every node uses the loopback profile (discovery, relays, NAT, reporting and upgrades off;
sync and REST on 127.0.0.1 or a Unix socket only), its own home and free ports. Nodes are
torn down by pid - karmad, the Syncthing monitor and the real Syncthing process - even
when a test fails half-way or killed something itself.

`node.rest` is a small blocking REST client for assertions and for configuring what the
test needs (devices, folders); it is deliberately independent of karmad's own client.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec

from karmad.syncthing import binary as binary_mod
from karmad.syncthing import home as home_mod
from karmad.syncthing import proctree
from karmad.syncthing.addresses import Endpoint, parse_endpoint
from karmad.syncthing.compat import child_env
from karmad.syncthing.models import FolderConfig, FolderDevice
from karmad.syncthing.profile import Profile
from karmad.syncthing.supervisor import PID_FILE
from tests.support.daemon import Home, KarmadProcess

PLAIN_STDOUT = "syncthing.out"
"""What a plain node's Syncthing prints outside its log file (start-up, crashes)."""

T = TypeVar("T")

MANAGED_CONFIG = 'mode = "managed"\nrestart_delay_s = 0.2'
START_TIMEOUT_S = 60.0


class RigError(AssertionError):
    pass


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float = 15.0,
    *,
    interval: float = 0.05,
    message: str = "",
) -> T:
    """Poll until `predicate()` is truthy and return its value; fail with the last result.

    Exceptions raised by the predicate count as "not yet" (a node still starting), and
    the last one is shown if time runs out.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
        except Exception as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise RigError(f"{message or 'condition'} not met within {timeout}s; last: {last!r}")
        time.sleep(interval)


class RestError(Exception):
    def __init__(self, status: int, text: str) -> None:
        self.status = status
        self.text = text
        super().__init__(f"{status}: {text}")


class Rest:
    """Blocking JSON access to one Syncthing's REST API."""

    def __init__(self, endpoint: Endpoint, api_key: str, timeout: float = 15.0) -> None:
        transport = httpx.HTTPTransport(uds=str(endpoint.uds)) if endpoint.uds else None
        self.endpoint = endpoint
        self._http = httpx.Client(
            base_url=endpoint.url,
            transport=transport,
            headers={"X-API-Key": api_key},
            timeout=timeout,
            trust_env=False,
        )

    def request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        content = None if body is None else msgspec.json.encode(body)
        response = self._http.request(
            method,
            path,
            params={k: v for k, v in params.items() if v is not None},
            content=content,
        )
        if response.status_code >= 400:
            raise RestError(response.status_code, response.text.strip())
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, **params)

    def post(self, path: str, body: Any = None, **params: Any) -> Any:
        return self.request("POST", path, body, **params)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body)

    def delete(self, path: str, **params: Any) -> Any:
        return self.request("DELETE", path, **params)

    def close(self) -> None:
        self._http.close()


@dataclass
class Node:
    """One Syncthing (and, optionally, the karmad managing it)."""

    name: str
    root: Path
    syncthing_home: Path
    karmad: KarmadProcess | None = None
    proc: subprocess.Popen[bytes] | None = None
    api_key: str = ""
    endpoint: Endpoint | None = None
    device_id: str = ""
    listen_address: str = ""
    wrapper: tuple[str, ...] = ()
    """The command a plain node's Syncthing runs under (its network namespace)."""
    _rest: Rest | None = field(default=None, repr=False)

    @property
    def rest(self) -> Rest:
        if self._rest is None:
            raise RigError(f"{self.name} is not running")
        return self._rest

    def folder_dir(self, folder_id: str) -> Path:
        return self.root / "folders" / folder_id

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """A karmad RPC (only for nodes under karmad)."""
        if self.karmad is None:
            raise RigError(f"{self.name} has no karmad")
        return self.karmad.call(method, params)

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("syncthing.status")
        return result

    def syncthing_pids(self) -> list[int]:
        """The monitor and the real Syncthing process, as recorded or found."""
        pids: list[int] = []
        if self.proc is not None:
            pids.append(self.proc.pid)
        pids += proctree.PidFile(self.syncthing_home / PID_FILE).read()
        for pid in list(pids):
            pids += proctree.children(pid)
        return [p for p in dict.fromkeys(pids) if proctree.is_syncthing_of(p, self.syncthing_home)]

    def connected_to(self, other: Node) -> bool:
        conns = self.rest.get("/rest/system/connections")["connections"]
        return bool(conns.get(other.device_id, {}).get("connected"))

    def diagnose(self, tail: int = 60) -> str:
        """What a failed test needs to tell a stuck link from a stuck pipeline: links,
        folder states and the last lines of karmad's and Syncthing's logs."""
        out = [f"===== {self.name} ({self.device_id[:7] or '?'})"]
        try:
            uds = self.endpoint.uds if self.endpoint else None
            if uds is not None and not uds.exists():
                # Stopped (a test took it offline): httpx's blocking transport would leak
                # a socket per failed connect, and the warning would fail the teardown.
                raise RigError("Syncthing is not running (its REST socket is gone)")
            conns = self.rest.get("/rest/system/connections")["connections"]
            for device_id, c in sorted(conns.items()):
                if device_id != self.device_id:
                    out.append(
                        f"link {device_id[:7]}: connected={c.get('connected')} "
                        f"paused={c.get('paused')} address={c.get('address')}"
                    )
            for folder in self.rest.get("/rest/config/folders"):
                status = self.rest.get("/rest/db/status", folder=folder["id"])
                out.append(
                    f"folder {folder['id']} {folder['type']}: {status.get('state')} "
                    f"need={status.get('needFiles')} local={status.get('localFiles')} "
                    f"global={status.get('globalFiles')} "
                    f"changed={status.get('receiveOnlyChangedFiles')} "
                    f"devices={[d['deviceID'][:7] for d in folder['devices']]}"
                )
        except Exception as exc:  # the node may be why the test failed
            out.append(f"Syncthing not answering: {exc!r}")
        logs = [("karmad", self.karmad.log())] if self.karmad is not None else []
        for path in (self.syncthing_home / home_mod.LOG, self.root / PLAIN_STDOUT):
            if path.exists():
                logs.append((path.name, path.read_text(errors="replace")))
        for name, text in logs:
            lines = text.splitlines()[-tail:]
            out.append(f"--- last {len(lines)} lines of {name}")
            out += lines
        return "\n".join(out)

    def teardown(self) -> None:
        if self._rest is not None:
            self._rest.close()
            self._rest = None
        if self.karmad is not None:
            with contextlib.suppress(Exception):
                self.karmad.stop(timeout=20)
            self.karmad.kill()
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # Whatever is left (a karmad killed by the test, an orphaned real process).
        proctree.terminate(self.syncthing_pids(), self.syncthing_home, 5.0)


def _binary() -> binary_mod.Binary:
    path = binary_mod.locate("")
    if path is None:
        raise RigError("Syncthing is not installed; `./dev test` installs it")
    return binary_mod.probe(path)


def start_plain_node(
    root: Path,
    name: str,
    *,
    wait: bool = True,
    syncthing_home: Path | None = None,
    gui_socket: Path | None = None,
    profile: Profile = "loopback",
    listen_addresses: tuple[str, ...] = (),
    wrapper: tuple[str, ...] = (),
) -> Node:
    """A stand-alone Syncthing prepared like a managed one, with the loopback profile.

    `syncthing_home` places its home elsewhere (e.g. where a user's own Syncthing keeps
    it, for external mode); `gui_socket` moves its REST socket. The network rig passes
    another `profile`, its `listen_addresses` and a `wrapper` (its namespace).
    """
    root.mkdir(parents=True, exist_ok=True)
    user_home = root / "home"
    user_home.mkdir(exist_ok=True)
    st_home = syncthing_home or root / "syncthing"
    binary = _binary()
    prepared = home_mod.prepare(
        binary,
        home_mod.HomeSettings(
            home=st_home,
            api_key_file=st_home / "karmad-api-key",
            gui_socket=gui_socket or root / "st.sock",
            profile=profile,
            listen_addresses=listen_addresses,
        ),
        environ={**os.environ, "HOME": str(user_home)},
    )
    node = Node(name=name, root=root, syncthing_home=st_home, wrapper=wrapper)
    node.api_key, node.endpoint = prepared.api_key, prepared.endpoint
    node.device_id, node.listen_address = prepared.device_id, prepared.listen_addresses[0]
    launch_plain(node, binary)
    if wait:
        wait_started(node)
    return node


def launch_plain(node: Node, binary: binary_mod.Binary | None = None) -> None:
    """(Re)start a prepared stand-alone node's Syncthing process."""
    binary = binary or _binary()
    st_home = node.syncthing_home
    assert node.endpoint is not None
    env = child_env({**os.environ, "HOME": str(node.root / "home")}, node.api_key)
    log = (node.root / PLAIN_STDOUT).open("ab")
    node.proc = subprocess.Popen(
        [
            *node.wrapper,
            str(binary.path),
            *binary.compat.serve_args(st_home, st_home / home_mod.LOG),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=node.root,
    )
    log.close()
    if node._rest is None:
        node._rest = Rest(node.endpoint, node.api_key)


def stop_plain(node: Node) -> None:
    """Stop a stand-alone node's Syncthing (gracefully), keeping its home."""
    proc = node.proc
    if proc is None:
        return
    pids = node.syncthing_pids()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(20)
    proctree.terminate(pids, node.syncthing_home, 10)
    node.proc = None


def wait_started(node: Node, timeout: float = START_TIMEOUT_S) -> None:
    """Until the node answers (its karmad: until Syncthing runs and events are live)."""
    if node.karmad is not None:
        node.karmad.wait_ready(timeout)
        attach_karmad_node(node, timeout)
        return
    proc = node.proc
    assert proc is not None

    def answers() -> bool:
        if proc.poll() is not None:
            raise RigError(f"{node.name}: Syncthing exited with {proc.returncode}")
        uds = node.endpoint.uds if node.endpoint else None
        if uds is not None and not uds.exists():
            return False  # (httpx's blocking transport leaks a socket per failed connect)
        node.rest.get("/rest/system/ping")
        return True

    wait_until(answers, timeout, message=f"{node.name}: Syncthing answering")


def start_karmad_node(
    root: Path,
    name: str,
    *,
    backend: str = "asyncio",
    config: str = "",
    syncthing: str = "",
    wait: bool = True,
    network: str = 'profile = "loopback"',
    wrapper: tuple[str, ...] = (),
) -> Node:
    """A real karmad managing its own loopback Syncthing, configured via its config file.

    `config` is prepended to the file; `syncthing` adds keys to its `[syncthing]` section.
    The network rig replaces the `network` keys (profile, listen addresses) and runs
    karmad through a `wrapper` (its namespace); its Syncthing inherits both.
    """
    home = Home(root).create()
    section = f"[syncthing]\n{MANAGED_CONFIG}\n{network.strip()}\n{syncthing.strip()}\n"
    home.write_config(f"{config.rstrip()}\n\n{section}".lstrip())
    karmad = KarmadProcess(home, backend=backend, wrapper=wrapper)
    node = Node(
        name=name,
        root=root,
        syncthing_home=home.state / "syncthing",
        karmad=karmad,
    )
    karmad.start(timeout=START_TIMEOUT_S, wait=False)
    if wait:
        wait_started(node)
    return node


def attach_karmad_node(node: Node, timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
    """Wait until the node's karmad has Syncthing running and its event stream live."""
    assert node.karmad is not None

    def live() -> dict[str, Any] | None:
        status = node.status()
        if status["state"] == "running" and status["stream"]["live"]:
            return status
        if node.karmad is not None and node.karmad.proc and node.karmad.proc.poll() is not None:
            raise RigError(f"{node.name}: karmad exited:\n{node.karmad.log()}")
        return None

    status = wait_until(live, timeout, message=f"{node.name}: karmad's Syncthing live")
    node.api_key = (node.syncthing_home / "karmad-api-key").read_text().strip()
    node.endpoint = parse_endpoint(status["api_address"])
    node.device_id = status["device_id"]
    node.listen_address = status["listen_addresses"][0]
    if node._rest is not None:
        node._rest.close()
    node._rest = Rest(node.endpoint, node.api_key)
    return status


@dataclass
class Cluster:
    nodes: list[Node]

    def __iter__(self) -> Any:
        return iter(self.nodes)

    def __getitem__(self, index: int) -> Node:
        return self.nodes[index]

    # ------------------------------------------------------------------ devices

    @staticmethod
    def add_device(node: Node, other: Node, *, dial: bool = True) -> None:
        """`node` trusts `other`; with `dial=False` it only accepts `other`'s connections."""
        node.rest.put(
            f"/rest/config/devices/{other.device_id}",
            {
                "deviceID": other.device_id,
                "name": other.name,
                "addresses": [other.listen_address] if dial else ["dynamic"],
            },
        )

    def pair(self, a: Node, b: Node, *, wait: bool = True, timeout: float = 20.0) -> None:
        """Each adds the other with its explicit loopback address; waits for the link.

        `b` first trusts `a` without dialling it, so only `a` dials: when both dial at
        once, Syncthing (1.19) can stall the duplicate handshakes for 20 s. Once they are
        connected `b` learns `a`'s address too, so either side can reconnect later.
        """
        self.add_device(b, a, dial=False)
        self.add_device(a, b)
        if wait:
            wait_until(
                lambda: a.connected_to(b) and b.connected_to(a),
                timeout,
                message=f"{a.name} and {b.name} connected",
            )
        b.rest.patch(f"/rest/config/devices/{a.device_id}", {"addresses": [a.listen_address]})

    def pair_all(self) -> None:
        for i, a in enumerate(self.nodes):
            for b in self.nodes[i + 1 :]:
                self.pair(a, b)

    # ------------------------------------------------------------------ folders

    @staticmethod
    def add_folder(
        node: Node,
        folder_id: str,
        folder_type: str,
        devices: Iterable[Node],
        *,
        path: Path | None = None,
        watcher: bool = True,
        watcher_delay_s: float = 10,
        label: str = "",
    ) -> Path:
        directory = path or node.folder_dir(folder_id)
        directory.mkdir(parents=True, exist_ok=True)
        folder = FolderConfig(
            id=folder_id,
            label=label or folder_id,
            path=str(directory),
            type=folder_type,
            devices=[FolderDevice(device_id=node.device_id)]
            + [FolderDevice(device_id=d.device_id) for d in devices if d is not node],
            fs_watcher_enabled=watcher,
            fs_watcher_delay_s=watcher_delay_s,
        )
        node.rest.put(f"/rest/config/folders/{folder_id}", msgspec.to_builtins(folder))
        return directory

    def offer(self, owner: Node, readers: Iterable[Node], folder_id: str, **kw: Any) -> Path:
        """The owner shares a sendonly folder; readers see it as a pending folder."""
        return self.add_folder(owner, folder_id, "sendonly", readers, **kw)

    def accept(self, reader: Node, owner: Node, folder_id: str, **kw: Any) -> Path:
        """The reader adds the owner's folder as receiveonly, shared with the owner only."""
        return self.add_folder(reader, folder_id, "receiveonly", [owner], **kw)

    def share(
        self, owner: Node, readers: Iterable[Node], folder_id: str, **kw: Any
    ) -> dict[str, Path]:
        readers = list(readers)
        paths = {owner.name: self.offer(owner, readers, folder_id, **kw)}
        for reader in readers:
            paths[reader.name] = self.accept(reader, owner, folder_id)
        return paths

    @staticmethod
    def wait_idle(node: Node, folder_id: str, timeout: float = 20.0) -> dict[str, Any]:
        def idle() -> dict[str, Any] | None:
            status: dict[str, Any] = node.rest.get("/rest/db/status", folder=folder_id)
            return status if status["state"] == "idle" else None

        return wait_until(idle, timeout, message=f"{node.name}: {folder_id} idle")

    def teardown(self) -> None:
        for node in self.nodes:
            node.teardown()


def start_cluster(
    root: Path,
    count: int,
    *,
    karmad: bool = False,
    backend: str = "asyncio",
    config: str = "",
    syncthing: str = "",
    started: list[Node] | None = None,
) -> Cluster:
    """Start `count` nodes side by side (in parallel), each in `root/n<i>`.

    `started` collects every node as soon as it exists, so a fixture can tear down
    what did start when a later node fails (across several clusters of one test); the
    cluster returned holds only the nodes this call started.
    """
    if not 1 <= count <= 3:
        raise ValueError("the rig runs 1 to 3 nodes")
    nodes: list[Node] = []
    for i in range(1, count + 1):
        name = f"n{i}"
        if karmad:
            node = start_karmad_node(
                root / name, name, backend=backend, config=config, syncthing=syncthing, wait=False
            )
        else:
            node = start_plain_node(root / name, name, wait=False)
        nodes.append(node)
        if started is not None:
            started.append(node)
    for node in nodes:
        wait_started(node)
    return Cluster(nodes)
