"""Where karmad's control socket is: the one rule the daemon and every client follow.

Standard library only and free of side effects: `karmactl` imports it on every run,
before anything else of karmad, and `karmad.paths` resolves the daemon's socket with it,
so the daemon listens exactly where its clients look (docs/protocol.md).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

ENV_SOCKET = "KARMAD_SOCKET"
ENV_RUNTIME_DIR = "KARMAD_RUNTIME_DIR"
SOCKET_NAME = "karmad.sock"


def platform_runtime_dir(environ: Mapping[str, str]) -> str:
    """The per-user directory holding the socket when nothing overrides it.

    `$XDG_RUNTIME_DIR` is per-user and 0700 by specification; without it, a uid-named
    directory in /tmp whose ownership karmad verifies.
    """
    if sys.platform == "darwin":
        home = environ.get("HOME") or os.path.expanduser("~")
        return os.path.join(home, "Library", "Application Support", "karmad", "run")
    xdg = environ.get("XDG_RUNTIME_DIR")
    # The XDG spec says relative values are invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "karmad")
    return os.path.join("/tmp", f"karmad-{os.getuid()}")  # noqa: S108 - ownership is verified


def default_socket(environ: Mapping[str, str] | None = None) -> str:
    """Where karmad listens unless told otherwise: `$KARMAD_SOCKET`, else `karmad.sock`
    in `$KARMAD_RUNTIME_DIR`, else in the platform's runtime directory."""
    env = os.environ if environ is None else environ
    if path := env.get(ENV_SOCKET):
        return os.path.abspath(os.path.expanduser(path))
    if runtime := env.get(ENV_RUNTIME_DIR):
        return os.path.join(os.path.abspath(os.path.expanduser(runtime)), SOCKET_NAME)
    return os.path.join(platform_runtime_dir(env), SOCKET_NAME)
