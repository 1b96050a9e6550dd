"""Choosing TCP ports for a managed Syncthing.

A port is kept across restarts while it stays free (peers were told the address), and
only replaced when something else took it. There is an unavoidable window between
checking and Syncthing binding; the supervisor's restart covers the rare loser.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit


def is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Go's listeners set SO_REUSEADDR, so a port with connections in TIME_WAIT is
        # still usable by Syncthing; test it the same way.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def keep_or_pick(host: str, current: int | None, preferred: int | None = None) -> int:
    """`current` if still free, else `preferred` if free, else any free port."""
    for candidate in (current, preferred):
        if candidate and is_free(host, candidate):
            return candidate
    return free_port(host)


def port_of(address: str) -> int | None:
    """The port of `tcp://host:port` or `host:port`, or None."""
    text = address if "://" in address else f"tcp://{address}"
    try:
        return urlsplit(text).port
    except ValueError:
        return None


def host_of(address: str) -> str | None:
    text = address if "://" in address else f"tcp://{address}"
    try:
        return urlsplit(text).hostname
    except ValueError:
        return None
