"""Who is on the other end of a Unix socket, as the kernel says.

File permissions already keep other users away from the socket; checking the peer's uid
on every connection is the second lock, which still holds if a directory's mode is ever
loosened by hand.
"""

from __future__ import annotations

import socket
import struct
import sys
from dataclasses import dataclass

# <sys/un.h> on macOS and the BSDs: SOL_LOCAL, LOCAL_PEERCRED, LOCAL_PEERPID.
_SOL_LOCAL = 0
_LOCAL_PEERCRED = 0x001
_LOCAL_PEERPID = 0x002
# struct xucred { u_int cr_version; uid_t cr_uid; short cr_ngroups; gid_t cr_groups[16]; }
_XUCRED = struct.Struct("=IIh16I")


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    uid: int
    pid: int | None


class PeerCredentialsUnavailable(OSError):
    pass


def peer_credentials(sock: socket.socket) -> PeerCredentials:
    """Kernel-reported uid (and pid where the platform gives it) of the connected peer."""
    if hasattr(socket, "SO_PEERCRED"):
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _gid = struct.unpack("3i", raw)
        return PeerCredentials(uid=uid, pid=pid or None)
    if sys.platform == "darwin" or sys.platform.startswith(("freebsd", "openbsd", "netbsd")):
        raw = sock.getsockopt(_SOL_LOCAL, _LOCAL_PEERCRED, _XUCRED.size)
        fields = _XUCRED.unpack(raw[: _XUCRED.size].ljust(_XUCRED.size, b"\0"))
        peer_pid: int | None = None
        if sys.platform == "darwin":
            try:
                peer_pid = struct.unpack("i", sock.getsockopt(_SOL_LOCAL, _LOCAL_PEERPID, 4))[0]
            except OSError:
                peer_pid = None
        return PeerCredentials(uid=fields[1], pid=peer_pid)
    raise PeerCredentialsUnavailable(f"no peer-credential mechanism on {sys.platform}")
