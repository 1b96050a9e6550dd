"""Where Claude Code looks for a session's transcript.

`claude --resume <id>` looks first in the project directory of the directory it was
started from: `<config>/projects/<name>/<id>.jsonl`, `<name>` being the real path of that
directory with every UTF-16 code unit other than `[A-Za-z0-9]` turned into `-`; a name
longer than 200 characters is cut to 200 and followed by `-` and the base-36 absolute
value of the path's 32-bit Java-style string hash (Claude Code 2.1.x). A transcript
elsewhere is found only by a scan of every project directory that gives up when the id
is in two of them, so karmad writes where the first lookup finds it.
"""

from __future__ import annotations

import shlex
from typing import Final

MAX_NAME: Final = 200
_DIGITS: Final = "0123456789abcdefghijklmnopqrstuvwxyz"


def _units(path: str) -> list[int]:
    data = path.encode("utf-16-le", "surrogatepass")
    return [int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)]


def _hash36(units: list[int]) -> str:
    value = 0
    for unit in units:
        value = (value * 31 + unit) & 0xFFFFFFFF
    if value & 0x80000000:
        value -= 1 << 32
    value = abs(value)
    digits = ""
    while True:
        value, rest = divmod(value, 36)
        digits = _DIGITS[rest] + digits
        if value == 0:
            return digits


def project_dir_name(path: str) -> str:
    """Claude Code's directory name for a working directory (already a real path)."""
    units = _units(path)
    name = "".join(chr(u) if u < 128 and chr(u).isalnum() else "-" for u in units)
    if len(name) <= MAX_NAME:
        return name
    return f"{name[:MAX_NAME]}-{_hash36(units)}"


def encoded(path: str) -> str:
    """The plain encoding (no length rule): what Claude Code's temporary and project
    directory names start with, and what appears inside them."""
    return "".join(chr(u) if u < 128 and chr(u).isalnum() else "-" for u in _units(path))


def command(directory: str, session_id: str) -> str:
    """The command a person runs to continue the session."""
    return f"cd {shlex.quote(directory)} && claude --resume {session_id}"
