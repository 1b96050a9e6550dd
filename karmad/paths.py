"""Every filesystem location karmad uses, resolved in one place.

Order of precedence for each path: command-line flag, environment variable, platform
default (XDG on Linux, ~/Library on macOS). Tests and packagers override any of them, so no
other module may build a path from `$HOME` or an XDG variable by itself.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from karmad.domain import is_folder_id, is_project_key
from karmad.socket_rule import ENV_RUNTIME_DIR, ENV_SOCKET, SOCKET_NAME, platform_runtime_dir

ENV_CONFIG = "KARMAD_CONFIG"
ENV_STATE_DIR = "KARMAD_STATE_DIR"
ENV_LOG_DIR = "KARMAD_LOG_DIR"
ENV_CLAUDE_DIR = "CLAUDE_CONFIG_DIR"


@dataclass(frozen=True, slots=True)
class Overrides:
    """Paths given on the command line; `None` means "use the environment or default"."""

    config_file: Path | None = None
    state_dir: Path | None = None
    runtime_dir: Path | None = None
    socket: Path | None = None
    claude_dir: Path | None = None
    log_dir: Path | None = None


@dataclass(frozen=True, slots=True)
class Paths:
    config_file: Path
    state_dir: Path
    runtime_dir: Path
    socket: Path
    claude_dir: Path
    log_dir: Path
    home: Path
    """The user's home directory (`$HOME`): where resumed sessions' paths point."""

    @property
    def store(self) -> Path:
        """The precious store: identity, teams, subscriptions, audit events."""
        return self.state_dir / "karmad.db"

    @property
    def index(self) -> Path:
        """The derived session index; can always be rebuilt from transcripts."""
        return self.state_dir / "index.db"

    @property
    def sealing_key(self) -> Path:
        """This device's X25519 key: a team leader seals the keeper secret to its public
        half (docs/keeper.md 2.5). Private to the user, like the store."""
        return self.state_dir / "sealing.key"

    @property
    def state_lock(self) -> Path:
        return self.state_dir / "karmad.lock"

    @property
    def socket_lock(self) -> Path:
        return self.socket.with_name(self.socket.name + ".lock")

    @property
    def syncthing_home(self) -> Path:
        return self.state_dir / "syncthing"

    @property
    def syncthing_api_key(self) -> Path:
        return self.state_dir / "syncthing" / "karmad-api-key"

    @property
    def syncthing_gui_socket(self) -> Path:
        """The managed Syncthing's REST socket, beside karmad's own in a private directory."""
        return self.socket.parent / "syncthing.sock"

    @property
    def folders_dir(self) -> Path:
        """Parent of every Syncthing folder karmad manages (outboxes and inboxes)."""
        return self.state_dir / "folders"

    def folder(self, folder_id: str) -> Path:
        return managed_folder(self.folders_dir, folder_id)

    @property
    def archive_dir(self) -> Path:
        """karmad's archive of the member's own sessions (docs/operations.md)."""
        return self.state_dir / "archive"

    @property
    def archive_projects(self) -> Path:
        """The archived transcripts, laid out like `claude_projects` (hard links where
        the filesystem allows, copies elsewhere)."""
        return self.archive_dir / "projects"

    @property
    def archive_replaced(self) -> Path:
        """Earlier generations of archived files whose source was replaced by another
        file: kept, never read as sessions."""
        return self.archive_dir / "replaced"

    @property
    def claude_projects(self) -> Path:
        return self.claude_dir / "projects"

    @property
    def claude_settings(self) -> Path:
        return self.claude_dir / "settings.json"


class UnsafeFolderId(ValueError):
    """A folder id that is not one karmad derives: it never becomes a path."""


PROJECTS_DIR = "projects"
"""Inside a team folder, where each shared project's sessions go (`projects/<key>`)."""


def managed_folder(folders_dir: Path, folder_id: str) -> Path:
    """A managed folder's directory: the only way a folder id becomes a path.

    Ids come from peers too (offers, state files); only a derived team-folder id
    (`karma-` and 26 base32 characters) is ever joined to a path, so no id can name a
    place outside `folders_dir`.
    """
    if not is_folder_id(folder_id):
        raise UnsafeFolderId(f"refusing to make a path from folder id {folder_id[:80]!r}")
    return folders_dir / folder_id


def project_dir(folders_dir: Path, folder_id: str, project_key: str) -> Path:
    """Where one project's sessions are in a managed folder (an outbox or an inbox)."""
    if not is_project_key(project_key):
        raise UnsafeFolderId(f"refusing to make a path from project key {project_key[:80]!r}")
    return managed_folder(folders_dir, folder_id) / PROJECTS_DIR / project_key


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or os.path.expanduser("~"))


def _xdg(env: Mapping[str, str], var: str, fallback: str) -> Path:
    value = env.get(var)
    # The XDG spec says relative values are invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    return _home(env) / fallback


def default_runtime_dir(env: Mapping[str, str]) -> Path:
    """The per-user directory holding the socket: the rule is the clients' own
    (`karmad.socket_rule`), so that karmad listens where they look."""
    return Path(platform_runtime_dir(env))


def resolve(overrides: Overrides | None = None, environ: Mapping[str, str] | None = None) -> Paths:
    env = os.environ if environ is None else environ
    o = overrides or Overrides()
    home = _home(env)
    if sys.platform == "darwin":
        app = home / "Library" / "Application Support" / "karmad"
        config_default = app / "config.toml"
        state_default = app
        log_default = home / "Library" / "Logs" / "karmad"
    else:
        config_default = _xdg(env, "XDG_CONFIG_HOME", ".config") / "karmad" / "config.toml"
        state_default = _xdg(env, "XDG_STATE_HOME", ".local/state") / "karmad"
        log_default = state_default / "log"

    def pick(flag: Path | None, var: str, default: Path) -> Path:
        if flag is not None:
            return flag.expanduser().absolute()
        if value := env.get(var):
            return Path(value).expanduser().absolute()
        return default

    state_dir = pick(o.state_dir, ENV_STATE_DIR, state_default)
    runtime = pick(o.runtime_dir, ENV_RUNTIME_DIR, default_runtime_dir(env))
    sock = pick(o.socket, ENV_SOCKET, runtime / SOCKET_NAME)
    return Paths(
        config_file=pick(o.config_file, ENV_CONFIG, config_default),
        state_dir=state_dir,
        runtime_dir=runtime,
        socket=sock,
        claude_dir=pick(o.claude_dir, ENV_CLAUDE_DIR, home / ".claude"),
        log_dir=pick(o.log_dir, ENV_LOG_DIR, log_default),
        home=home,
    )


def syncthing_homes(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where a user's own Syncthing keeps config.xml, most specific first.

    `$STHOMEDIR` / `$STCONFDIR` when set; then the default of Syncthing 1.27+ and 2.x
    (`$XDG_STATE_HOME/syncthing`), the older one (`$XDG_CONFIG_HOME/syncthing`), and the
    macOS one. Used by external mode to find the REST address and API key.
    """
    env = os.environ if environ is None else environ
    home = _home(env)
    candidates: list[Path] = []
    for var in ("STHOMEDIR", "STCONFDIR"):
        if value := env.get(var):
            candidates.append(Path(value).expanduser())
    candidates += [
        _xdg(env, "XDG_STATE_HOME", ".local/state") / "syncthing",
        home / ".local" / "state" / "syncthing",
        _xdg(env, "XDG_CONFIG_HOME", ".config") / "syncthing",
        home / ".config" / "syncthing",
        home / "Library" / "Application Support" / "Syncthing",
    ]
    unique: list[Path] = []
    for path in candidates:
        if path not in unique:
            unique.append(path)
    return unique


class UnsafeDirectory(Exception):
    """A directory that other users could use to intercept or tamper with karmad."""


def ensure_private_dir(path: Path) -> None:
    """Create `path` as 0700 or verify that an existing one is ours and not shared.

    The socket and store rely on directory permissions for their secrecy, so an existing
    directory owned by someone else (a classic /tmp squatting attack) is refused rather
    than used.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise UnsafeDirectory(f"{path} is not a directory")
    if st.st_uid != os.getuid():
        raise UnsafeDirectory(f"{path} is owned by uid {st.st_uid}, not by us ({os.getuid()})")
    if st.st_mode & 0o077:
        path.chmod(0o700)
