"""Finding the Syncthing executable and learning its version.

Without a binary karmad keeps running (indexing needs no Syncthing), so "not found"
is a normal answer carrying instructions, not an exception that stops the daemon.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from karmad.syncthing.compat import VERSION_ARGS, Compat, Unsupported, Version

VERSION_TIMEOUT_S: Final = 15.0

INSTALL_HINT: Final = (
    "install Syncthing 1.19 or newer (Debian/Ubuntu: `sudo apt-get install syncthing`; "
    "Fedora: `sudo dnf install syncthing`; macOS: `brew install syncthing`; "
    "others: https://syncthing.net/downloads/), then restart karmad or wait a minute; "
    "or set syncthing.binary in karmad's config to its path"
)


class BinaryError(Exception):
    """The binary exists but cannot be used (not executable, crashes, too old)."""


@dataclass(frozen=True, slots=True)
class Binary:
    path: Path
    version: Version
    long_version: str
    compat: Compat


def locate(configured: str, environ: dict[str, str] | None = None) -> Path | None:
    """The configured binary, or `syncthing` on PATH; None when there is none."""
    env = os.environ if environ is None else environ
    if configured:
        path = Path(configured).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path.absolute()
        found = shutil.which(configured, path=env.get("PATH"))
        return Path(found).absolute() if found else None
    found = shutil.which("syncthing", path=env.get("PATH"))
    return Path(found).absolute() if found else None


def not_found_detail(configured: str) -> str:
    where = (
        f"syncthing.binary = {configured!r} was not found"
        if configured
        else ("no `syncthing` on PATH")
    )
    return f"{where}; {INSTALL_HINT}"


def probe(path: Path) -> Binary:
    """Run `syncthing --version` (blocking; call from a worker thread)."""
    try:
        done = subprocess.run(
            [str(path), *VERSION_ARGS],
            capture_output=True,
            timeout=VERSION_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise BinaryError(
            f"{path} --version did not answer within {VERSION_TIMEOUT_S:.0f}s"
        ) from None
    except OSError as exc:
        raise BinaryError(f"cannot run {path}: {exc.strerror or exc}") from None
    text = done.stdout.decode(errors="replace").strip()
    if done.returncode != 0 or not text:
        err = done.stderr.decode(errors="replace").strip().splitlines()
        why = err[-1] if err else f"exit status {done.returncode}"
        raise BinaryError(f"{path} --version failed: {why}")
    line = text.splitlines()[0]
    try:
        version = Version.parse(line)
    except ValueError as exc:
        raise BinaryError(f"{path} does not look like Syncthing: {exc}") from None
    try:
        compat = Compat.for_version(version)
    except Unsupported as exc:
        raise BinaryError(f"{path}: {exc}") from None
    return Binary(path=path, version=version, long_version=line, compat=compat)
