"""Run real karmad processes in throw-away homes.

Each `KarmadProcess` gets its own HOME, XDG directories, Claude directory and socket, so
several can run side by side (the multi-node tests) and nothing touches the real user's
files. Processes are always reaped by PID, even when a test fails half-way.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


class DaemonFailed(Exception):
    pass


OFFLINE_SYNCTHING = 'mode = "off"'
"""What a test karmad's `[syncthing]` section says unless the test decides otherwise.

karmad's default is a managed Syncthing with the `internet` profile; tests must never
start one (no test may send traffic beyond loopback), so every config a test writes
gets this section when it has none. Tests of sharing use `tests.support.syncthing`,
which configures the `loopback` profile.
"""


@dataclass
class Home:
    """A fake user's home with the directories karmad resolves from the environment."""

    root: Path

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def runtime(self) -> Path:
        return self.root / "run"

    @property
    def socket(self) -> Path:
        return self.runtime / "karmad" / "karmad.sock"

    @property
    def claude(self) -> Path:
        return self.home / ".claude"

    @property
    def state(self) -> Path:
        return self.home / ".local" / "state" / "karmad"

    @property
    def config_file(self) -> Path:
        return self.home / ".config" / "karmad" / "config.toml"

    def create(self) -> Home:
        self.home.mkdir(parents=True, exist_ok=True)
        self.runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.claude / "projects").mkdir(parents=True, exist_ok=True)
        if not self.config_file.exists():
            self.write_config("")
        return self

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("KARMAD_", "XDG_", "CLAUDE_", "STGUI", "STHOME"))
        }
        env.update(
            HOME=str(self.home),
            XDG_RUNTIME_DIR=str(self.runtime),
            PYTHONUNBUFFERED="1",
        )
        env.pop("JOURNAL_STREAM", None)
        env.pop("NOTIFY_SOCKET", None)
        if extra:
            env.update(extra)
        return env

    def write_config(self, text: str) -> None:
        """Replace karmad's config; a missing `[syncthing]` section means Syncthing off."""
        if "[syncthing]" not in text:
            text = f"{text.rstrip()}\n\n[syncthing]\n{OFFLINE_SYNCTHING}\n".lstrip()
        self.config_file.parent.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(text)


def karmad_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "karmad", *args]


def karmactl_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "karmactl", *args]


@dataclass
class KarmadProcess:
    home: Home
    backend: str = "asyncio"
    args: tuple[str, ...] = ()
    extra_env: dict[str, str] = field(default_factory=dict)
    wrapper: tuple[str, ...] = ()
    """Runs the daemon through this command, e.g. `ip netns exec NS` to start it in a
    network namespace, or `setpriv …` to drop privileges (it execs, so the pid is still
    karmad's)."""
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def socket(self) -> Path:
        if override := self.extra_env.get("KARMAD_SOCKET"):
            return Path(override)
        return self.home.socket

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 20.0, *, wait: bool = True) -> KarmadProcess:
        self.home.create()
        self.log_path = self.home.root / f"karmad-{int(time.time() * 1000)}.log"
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                *self.wrapper,
                *karmad_command("--backend", self.backend, "--log-format", "json", *self.args),
            ],
            env=self.home.env(self.extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        log.close()
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise DaemonFailed(
                    f"karmad exited with {self.proc.returncode} during start-up:\n{self.log()}"
                )
            if self.socket.exists():
                try:
                    self.call("daemon.hello")
                except OSError:
                    pass
                else:
                    return
            time.sleep(0.02)
        raise DaemonFailed(f"karmad did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    def call(
        self, method: str, params: Mapping[str, Any] | None = None, timeout: float = 30
    ) -> Any:
        """One blocking request on a fresh connection; raises on an error answer."""
        answer = request(self.socket, method, params, timeout=timeout)
        if "error" in answer:
            raise RpcFailure(answer["error"])
        return answer["result"]

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; SIGKILL if it will not go (and report that as a failure)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise DaemonFailed(f"karmad ignored SIGTERM for {timeout}s:\n{self.log()}") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class RpcFailure(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        self.error = error
        self.code = error.get("code")
        self.reason = (error.get("data") or {}).get("reason")
        super().__init__(f"{self.code} {self.reason}: {error.get('message')} {error.get('data')}")


def request(
    path: Path, method: str, params: Mapping[str, Any] | None = None, *, timeout: float = 30
) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        message["params"] = dict(params)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps(message).encode() + b"\n")
        return json.loads(read_line(sock))  # type: ignore[no-any-return]


def read_line(sock: socket.socket) -> bytes:
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} bytes")
        data += chunk
    return bytes(data)


def reap(processes: Iterator[KarmadProcess] | list[KarmadProcess]) -> None:
    for p in processes:
        p.kill()
