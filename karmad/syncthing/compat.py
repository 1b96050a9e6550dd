"""Every difference between the Syncthing versions karmad supports, in one place.

Supported: 1.19 (Debian stable) through the current 2.x. What differs, and how:

- Command line. 1.x still parses the old single-dash options and prints the device ID
  with `--device-id`; 2.x accepts only `--long` options, has a `device-id` subcommand,
  renamed `--skip-port-probing` to `--no-port-probing`, `--logfile` to `--log-file`,
  and no longer creates a default folder (so `--no-default-folder` is gone).
- Liveness. `/rest/noauth/health` exists from 1.22.1; older versions only have the
  authenticated `/rest/system/ping`.
- Authentication. `Authorization: Bearer` works from 1.24, but `X-API-Key` works in every
  version, and the version is only known after the first authenticated request, so the
  client always sends `X-API-Key`.
- `STHOMEDIR` and friends are read from 1.23.7 (2.x: every serve option has an env var);
  karmad passes `--home` and strips inherited `ST*` variables so a user's own settings
  can never redirect the managed instance.
- Default homes moved to `~/.local/state/syncthing` in 1.27 (see `paths`).
- Event payloads: `FolderCompletion.remoteState` exists from 1.20; `FolderSummary` and
  `FolderCompletion` are emitted unconditionally only from 1.27.4, so karmad queries
  `/rest/db/status` and `/rest/db/completion` itself.
- 2.x keeps one database per folder and waits `pullerDelayS` (1 s by default) before
  pulling; neither changes the REST calls karmad makes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

LOG_MAX_BYTES: Final = 10 << 20
LOG_OLD_FILES: Final = 3

_VERSION = re.compile(r"\bv?(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True, slots=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version:
        """From `syncthing --version` output or a REST `version` (`v1.19.2-ds1`)."""
        match = _VERSION.search(text)
        if match is None:
            raise ValueError(f"no Syncthing version in {text[:200]!r}")
        major, minor, patch = (int(g) for g in match.groups())
        return cls(major, minor, patch)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


MINIMUM: Final = Version(1, 19, 0)
"""The oldest version karmad drives (Debian bookworm ships 1.19.2)."""

_HEALTH_ENDPOINT: Final = Version(1, 22, 1)
_V2: Final = Version(2, 0, 0)


class Unsupported(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Compat:
    """What karmad must do differently for one Syncthing version."""

    version: Version

    @classmethod
    def for_version(cls, version: Version) -> Compat:
        if version < MINIMUM:
            raise Unsupported(
                f"Syncthing {version} is too old: karmad needs {MINIMUM} or newer "
                "(https://syncthing.net/downloads/ or your distribution's backports)"
            )
        return cls(version)

    @property
    def v2(self) -> bool:
        return self.version >= _V2

    def generate_args(self, home: Path) -> list[str]:
        """Create keys and config.xml in `home` without touching the network or ports."""
        if self.v2:
            return ["generate", f"--home={home}", "--no-port-probing"]
        return ["generate", f"--home={home}", "--no-default-folder", "--skip-port-probing"]

    def device_id_args(self, home: Path) -> list[str]:
        if self.v2:
            return ["device-id", f"--home={home}"]
        return ["serve", f"--home={home}", "--device-id"]

    def serve_args(self, home: Path, log_file: Path) -> list[str]:
        """A foreground Syncthing that never restarts, upgrades or opens a browser itself.

        `--no-restart` turns a restart request into exit status 3, so the supervisor
        stays the only thing that starts Syncthing.
        """
        args = ["serve", f"--home={home}", "--no-browser", "--no-restart", "--no-upgrade"]
        if self.v2:
            args += ["--no-port-probing", f"--log-file={log_file}"]
        else:
            args += ["--no-default-folder", "--skip-port-probing", f"--logfile={log_file}"]
        args += [f"--log-max-size={LOG_MAX_BYTES}", f"--log-max-old-files={LOG_OLD_FILES}"]
        return args

    @property
    def health_path(self) -> str:
        """An endpoint that answers once the REST API is up."""
        if self.version >= _HEALTH_ENDPOINT:
            return "/rest/noauth/health"
        return "/rest/system/ping"


VERSION_ARGS: Final = ("--version",)
"""Understood by every version: a flag of the default command in 1.x, global in 2.x."""

EXIT_RESTART: Final = 3
"""Exit status of a Syncthing run with `--no-restart` that was asked to restart."""
EXIT_UPGRADE: Final = 4

SYNCTHING_ENV_PREFIX: Final = "ST"
"""Syncthing reads many `ST*` variables (`STHOMEDIR`, `STGUIADDRESS`, `STTRACE`...)."""

# Defaults for every managed start: throw-away-safe, whatever the user's environment holds.
MANAGED_ENV: Final = {"STNODEFAULTFOLDER": "1", "STNOUPGRADE": "1"}


def child_env(base: dict[str, str], api_key: str = "") -> dict[str, str]:
    """The environment of a managed Syncthing (or of `generate` / `device-id`).

    Inherited `ST*` variables are dropped: `STHOMEDIR`, `STGUIADDRESS`, `STTRACE` or a
    stray `STMONITORED` from the user's shell would redirect or change the managed
    instance. Only karmad's own settings are passed.
    """
    env = {
        k: v for k, v in base.items() if not (k.startswith(SYNCTHING_ENV_PREFIX) and k.isupper())
    }
    env.update(MANAGED_ENV)
    if api_key:
        env["STGUIAPIKEY"] = api_key
    return env
