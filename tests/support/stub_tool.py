"""A recording stand-in for systemctl, loginctl, journalctl and launchctl.

Installed first on PATH by `tests.support.stubs`, so karmactl runs it exactly as it
would run the real tool. It appends its argv to `$KARMAD_STUB_LOG` and answers from the
rules in `$KARMAD_STUB_SCENARIO`. With `"launchd": true` in the scenario, `launchctl`
also does what launchd would do with an agent: it starts the property list's
ProgramArguments (with its EnvironmentVariables and StandardErrorPath), stops it on
bootout and reports it in `print`, so the plist karmactl writes is really run.
"""

from __future__ import annotations

import json
import os
import plistlib
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def record(tool: str, args: list[str]) -> None:
    with open(os.environ["KARMAD_STUB_LOG"], "a", encoding="utf-8") as f:
        f.write(json.dumps([tool, *args]) + "\n")


def scenario() -> dict[str, Any]:
    path = os.environ.get("KARMAD_STUB_SCENARIO")
    if not path or not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def answer(rule: dict[str, Any]) -> int:
    sys.stdout.write(rule.get("stdout", ""))
    sys.stderr.write(rule.get("stderr", ""))
    return int(rule.get("rc", 0))


# --------------------------------------------------------------------------- launchd


def _state_file() -> Path:
    return Path(os.environ["KARMAD_STUB_LOG"]).with_name("launchd-state.json")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _load() -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(_state_file().read_text())
    except FileNotFoundError:
        return None
    return data


def _spawn(plist_path: str) -> int:
    with open(plist_path, "rb") as f:
        job = plistlib.load(f)
    env = dict(os.environ)
    env.update(job.get("EnvironmentVariables", {}))
    err_path = job.get("StandardErrorPath", os.devnull)
    with open(err_path, "ab") as err:
        proc = subprocess.Popen(
            job["ProgramArguments"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            start_new_session=True,
        )
    return proc.pid


def _stop(pid: int) -> None:
    if not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def launchd(args: list[str]) -> int:
    state = _load()
    verb = args[0] if args else ""
    if verb == "print":
        if "/" not in args[1].removeprefix("gui/"):
            return 0  # the domain exists
        if state is None:
            print("Could not find service in domain for port", file=sys.stderr)
            return 113
        pid = int(state["pid"])
        if _alive(pid):
            print(f"{args[1]} = {{\n\tstate = running\n\tpid = {pid}\n}}")
        else:
            print(f"{args[1]} = {{\n\tstate = not running\n\tlast exit code = 1\n}}")
        return 0
    if verb == "enable":
        return 0
    if verb == "bootstrap":
        if state is not None:
            print("Bootstrap failed: 5: Input/output error", file=sys.stderr)
            return 5
        _state_file().write_text(json.dumps({"pid": _spawn(args[2]), "plist": args[2]}))
        return 0
    if verb == "bootout":
        if state is None:
            print("Boot-out failed: 3: No such process", file=sys.stderr)
            return 3
        _stop(int(state["pid"]))
        _state_file().unlink()
        return 0
    if verb == "kickstart":
        if state is None:
            return 113
        if "-k" in args:
            _stop(int(state["pid"]))
        if not _alive(int(state["pid"])):
            state["pid"] = _spawn(state["plist"])
            _state_file().write_text(json.dumps(state))
        return 0
    return 0


def main() -> int:
    tool, args = sys.argv[1], sys.argv[2:]
    record(tool, args)
    rules = scenario()
    for rule in rules.get(tool, []):
        if all(word in args for word in rule.get("match", [])):
            return answer(rule)
    if tool == "launchctl" and rules.get("launchd"):
        return launchd(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
