"""Running `karmactl doctor` against real daemons, the way a user would."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.daemon import REPO, Home, karmactl_command
from tests.support.stubs import ServiceStubs

RELAXED_DISK = "[doctor]\nmin_free_mb = 0\nwarn_free_mb = 0\n"
"""The healthy case must not depend on how full this machine's disk is."""


def healthy_claude(home: Home) -> Home:
    """Claude Code data that passes its checks (a project, sessions kept forever)."""
    (home.claude / "projects" / "-work-app").mkdir(parents=True, exist_ok=True)
    (home.claude / "settings.json").write_text('{"cleanupPeriodDays": 99999}')
    return home


def healthy_home(home: Home) -> Home:
    healthy_claude(home)
    home.write_config(RELAXED_DISK)
    return home


def service_running(stubs: ServiceStubs, pid: int) -> None:
    show = (
        "LoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\n"
        f"MainPID={pid}\nStatusText=ok\n"
    )
    stubs.scenario({"systemctl": [{"match": ["show"], "stdout": show}]})


def doctor(
    home: Home, stubs: ServiceStubs, *args: str, socket_path: Path | None = None
) -> tuple[int, dict[str, Any]]:
    argv = ["doctor", "--json", "--manager", "systemd"]
    if socket_path is not None:
        argv += ["--socket", str(socket_path)]
    done = subprocess.run(
        karmactl_command(*argv, *args),
        env=stubs.env(home.env()),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    return done.returncode, json.loads(done.stdout)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in report["checks"]}


def doctor_until(
    home: Home,
    stubs: ServiceStubs,
    done: Callable[[dict[str, dict[str, str]]], bool],
    timeout: float = 30.0,
) -> tuple[int, dict[str, dict[str, str]]]:
    """Run the doctor until its findings satisfy `done` (a condition that takes a moment
    to reach karmad, such as a folder error); fail with the last findings otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        code, report = doctor(home, stubs)
        checks = by_name(report)
        if done(checks):
            return code, checks
        if time.monotonic() > deadline:
            raise AssertionError(f"doctor findings not as expected within {timeout}s: {checks}")
        time.sleep(0.2)
