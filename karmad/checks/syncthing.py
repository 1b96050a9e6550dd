"""Is there a Syncthing karmad can run, and which version?

Only what can be known without the Syncthing subsystem: whether the binary is on
karmad's own PATH (a service's PATH is often not the login shell's) and what it says its
version is. The Syncthing subsystem registers the checks that need a running instance
(reachable, API key accepted, listen addresses, discovery and relay profile, folder
states and errors, pending offers, peers last seen) with the same `Doctor` when it is
wired in `karmad.app`; once it resolves the binary itself (a configured path, external
mode), it should replace `binary_findings`'s lookup with its own.
"""

from __future__ import annotations

import os
import re
import shutil

import anyio

from karmad.doctor import Doctor, fail, ok, warn
from karmad.protocol import DoctorCheck
from karmad.services import Services

OLDEST_SUPPORTED = (1, 19, 0)
"""Debian stable's Syncthing; older releases lack REST behaviour karmad relies on."""

_VERSION = re.compile(r"\bv(\d+)\.(\d+)\.(\d+)")

INSTALL_FIX = (
    "install Syncthing (Debian/Ubuntu: `apt install syncthing`; macOS: `brew install "
    "syncthing`); when karmad runs as a service, run `karmactl service install` again "
    "afterwards so that the service's PATH includes it"
)


async def binary_findings(path_env: str | None = None) -> list[DoctorCheck]:
    name = "syncthing.binary"
    search = os.environ.get("PATH", os.defpath) if path_env is None else path_env
    binary = shutil.which("syncthing", path=search)
    if binary is None:
        return [fail(name, f"no `syncthing` on karmad's PATH ({search})", INSTALL_FIX)]
    try:
        with anyio.fail_after(10):
            done = await anyio.run_process([binary, "--version"], check=False)
    except TimeoutError:
        return [fail(name, f"`{binary} --version` did not answer within 10s", INSTALL_FIX)]
    except OSError as exc:
        return [fail(name, f"cannot run {binary}: {exc.strerror}", INSTALL_FIX)]
    output = done.stdout.decode(errors="replace").strip()
    if done.returncode != 0:
        return [fail(name, f"`{binary} --version` exited with {done.returncode}", INSTALL_FIX)]
    match = _VERSION.search(output)
    if match is None:
        return [warn(name, f"{binary} printed no version karmad recognises: {output[:80]!r}")]
    version = tuple(int(x) for x in match.groups())
    text = ".".join(map(str, version))
    if version < OLDEST_SUPPORTED:
        oldest = ".".join(map(str, OLDEST_SUPPORTED))
        return [
            fail(
                name,
                f"{binary} is Syncthing {text}, older than the oldest karmad supports ({oldest})",
                "upgrade Syncthing",
            )
        ]
    return [ok(name, f"{binary} is Syncthing {text}")]


def register(doctor: Doctor, svc: Services) -> None:
    doctor.register("syncthing.binary", binary_findings)
