"""The real Claude Code CLI, run offline: a network namespace of its own holding nothing
but loopback, and a fake Messages API on 127.0.0.1 inside it (`messages_api`).

`./dev test` installs the pinned npm package into `.venv/claude` (or set
`KARMAD_TEST_CLAUDE` to a Claude Code binary). The CLI gets a clean environment: a HOME
the test chose, the fake API's address, a dummy key, nonessential traffic (telemetry,
updates, feature flags) off and no retries; nothing of the caller's environment but
PATH and LANG, so a CLAUDE_* variable of whoever runs the tests changes nothing. The
namespace is checked to hold only `lo` before anything runs in it, so no packet can
leave the machine whatever the CLI tries.

Keep the working directory under the test's temporary directory: Claude Code reads
CLAUDE.md and `.claude/` in it and in every directory above it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tests.support.daemon import REPO

CLAUDE_VERSION: Final = "2.1.328"
BASE_ENV: Final = {
    "ANTHROPIC_API_KEY": "sk-ant-api03-offline-test",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "CLAUDE_CODE_MAX_RETRIES": "0",
    "TERM": "dumb",
    "NO_COLOR": "1",
}
ERROR_REPLY: Final = {"error": 500}
"""What the fake API answers once its script is used up: an error, so that a run
records the request and ends at once."""


def _platform_package() -> str | None:
    machine = platform.machine().lower()
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    system = {"linux": "linux", "darwin": "darwin"}.get(sys.platform)
    if arch is None or system is None:
        return None
    return f"claude-code-{system}-{arch}"


def claude_binary() -> Path | None:
    """The Claude Code binary `./dev test` installed, or $KARMAD_TEST_CLAUDE."""
    override = os.environ.get("KARMAD_TEST_CLAUDE")
    if override:
        return Path(override) if Path(override).exists() else None
    package = _platform_package()
    if package is None:
        return None
    modules = REPO / ".venv" / "claude" / "node_modules" / "@anthropic-ai"
    for name in (package, f"{package}-musl"):
        candidate = modules / name / "claude"
        if candidate.exists():
            return candidate
    return None


def _unshare() -> list[str] | None:
    tool = shutil.which("unshare")
    if tool is None:
        return None
    if os.geteuid() == 0:
        return [tool, "--net", "--"]
    return [tool, "--map-root-user", "--net", "--"]


def why_not() -> str | None:
    """Why the real client cannot run here, or None when it can."""
    if claude_binary() is None:
        return (
            f"Claude Code {CLAUDE_VERSION} is not installed (./dev installs it into "
            ".venv/claude when npm is available; or set KARMAD_TEST_CLAUDE)"
        )
    prefix = _unshare()
    if prefix is None:
        return "`unshare` (util-linux) is needed to run Claude Code in an empty network namespace"
    probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=30, check=False)
    if probe.returncode != 0:
        return f"cannot make a network namespace here: {probe.stderr.decode(errors='replace')}"
    return None


@dataclass
class ClaudeRun:
    exit_code: int
    stdout: str
    stderr: str
    requests: list[dict[str, Any]]
    seconds: float
    timed_out: bool = False
    log: str = field(default="", repr=False)

    def messages_requests(self) -> list[dict[str, Any]]:
        return [
            r
            for r in self.requests
            if r["method"] == "POST" and r["path"].split("?", 1)[0].endswith("/v1/messages")
        ]

    @property
    def last(self) -> dict[str, Any]:
        """The body of the last conversation request the CLI sent."""
        found = self.messages_requests()
        assert found, f"Claude Code sent no request:\n{self.stdout}\n{self.stderr}\n{self.log}"
        body: dict[str, Any] = found[-1]["body"]
        return body

    @property
    def wire(self) -> str:
        """Everything the CLI sent, as one string (for looking for paths that leak)."""
        return json.dumps(self.requests, ensure_ascii=False)


def run_claude(
    home: Path,
    cwd: Path,
    args: list[str],
    *,
    script: list[dict[str, Any]] | None = None,
    after: dict[str, Any] | None = None,
    timeout: float = 60.0,
) -> ClaudeRun:
    """`claude <args>` started in `cwd` with HOME=`home`, offline (see the module doc)."""
    binary = claude_binary()
    assert binary is not None, why_not()
    prefix = _unshare()
    assert prefix is not None
    work = Path(tempfile.mkdtemp(prefix="karmad-claude-"))
    try:
        tmp = work / "tmp"
        tmp.mkdir(mode=0o700)
        env = dict(BASE_ENV)
        env.update(
            HOME=str(home),
            PATH=os.environ.get("PATH", "/usr/bin:/bin"),
            LANG=os.environ.get("LANG", "C.UTF-8"),
            # A private temporary directory: a shared /tmp/claude-<uid> of another owner
            # (as it looks from a user namespace) makes the CLI refuse to start.
            CLAUDE_CODE_TMPDIR=str(tmp),
            TMPDIR=str(tmp),
        )
        spec = {
            "claude": str(binary.resolve()),
            "args": args,
            "cwd": str(cwd),
            "env": env,
            "timeout": timeout,
            "requests": str(work / "requests.jsonl"),
            "result": str(work / "result.json"),
            "log": str(work / "inner.log"),
            "script": script or [],
            "after": after or ERROR_REPLY,
        }
        (work / "spec.json").write_text(json.dumps(spec))
        started = time.monotonic()
        proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "tests.support.claude", str(work / "spec.json")],
            cwd=REPO,
            env={"PATH": env["PATH"], "LANG": env["LANG"], "PYTHONPATH": str(REPO)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout + 30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        log = (work / "inner.log").read_text() if (work / "inner.log").exists() else ""
        if not (work / "result.json").exists():
            raise RuntimeError(f"the namespace side failed:\n{log}\n{err.decode(errors='replace')}")
        result = json.loads((work / "result.json").read_text())
        requests = []
        if (work / "requests.jsonl").exists():
            with (work / "requests.jsonl").open(encoding="utf-8") as f:
                requests = [json.loads(line) for line in f if line.strip()]
        return ClaudeRun(
            exit_code=result["exit_code"],
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            requests=requests,
            seconds=time.monotonic() - started,
            timed_out=result["timed_out"],
            log=log,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------ inside the namespace


def _loopback_up() -> None:
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, siocgifflags, request)[:18])[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH22x", b"lo", flags | iff_up))


def _inside(spec_path: str) -> int:
    from tests.support.messages_api import MessagesApi

    spec = json.loads(Path(spec_path).read_text())
    with open(spec["log"], "a", buffering=1) as log:
        # This namespace's interfaces (sysfs would still show the host's).
        interfaces = sorted(name for _, name in socket.if_nameindex())
        log.write(f"interfaces: {interfaces}\n")
        if interfaces != ["lo"]:
            log.write("refusing: not an empty network namespace\n")
            return 3
        _loopback_up()
        api = MessagesApi(spec["requests"], spec["script"], spec["after"])
        threading.Thread(
            target=api.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        env = dict(spec["env"], ANTHROPIC_BASE_URL=f"http://127.0.0.1:{api.server_address[1]}")
        log.write(f"running {spec['args']} in {spec['cwd']}\n")
        started = time.monotonic()
        proc = subprocess.Popen(
            [spec["claude"], *spec["args"]],
            cwd=spec["cwd"],
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        timed_out = False
        try:
            code = proc.wait(timeout=spec["timeout"])
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever it left running
        api.shutdown()
        api.server_close()
        log.write(f"exit {code} after {time.monotonic() - started:.2f}s\n")
    temp = spec["result"] + ".tmp"
    with open(temp, "w") as f:
        json.dump({"exit_code": code, "timed_out": timed_out}, f)
    os.replace(temp, spec["result"])
    return 0


if __name__ == "__main__":
    sys.exit(_inside(sys.argv[1]))
