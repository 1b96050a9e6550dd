"""Recording stand-ins for the service managers' tools, put first on PATH."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

STUB_TOOL = Path(__file__).with_name("stub_tool.py")
TOOLS = ("systemctl", "loginctl", "journalctl", "launchctl")


class ServiceStubs:
    def __init__(self, root: Path, tools: tuple[str, ...] = TOOLS) -> None:
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.log = root / "calls.jsonl"
        self.scenario_file = root / "scenario.json"
        for tool in tools:
            wrapper = self.bin / tool
            wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STUB_TOOL}" {tool} "$@"\n')
            wrapper.chmod(0o755)

    def scenario(self, rules: dict[str, Any]) -> None:
        self.scenario_file.write_text(json.dumps(rules))

    def env(self, base: dict[str, str], *, only_stubs: bool = False) -> dict[str, str]:
        env = dict(base)
        path = str(self.bin) if only_stubs else f"{self.bin}:{base.get('PATH', os.defpath)}"
        env.update(
            PATH=path,
            KARMAD_STUB_LOG=str(self.log),
            KARMAD_STUB_SCENARIO=str(self.scenario_file),
        )
        return env

    def calls(self, tool: str | None = None) -> list[list[str]]:
        if not self.log.exists():
            return []
        rows = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [r for r in rows if tool is None or r[0] == tool]

    def clear(self) -> None:
        self.log.unlink(missing_ok=True)

    def launchd_pid(self) -> int | None:
        state = self.root / "launchd-state.json"
        if not state.exists():
            return None
        return int(json.loads(state.read_text())["pid"])

    def cleanup(self) -> None:
        """Kill whatever the launchd stand-in started and left running."""
        pid = self.launchd_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
