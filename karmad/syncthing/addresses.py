"""Syncthing addresses: where its REST API is reached and where it listens for peers.

Parsed once and validated strictly, because Syncthing itself accepts nearly anything and
a typo here either leaves karmad unable to connect or opens a port to the network.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

UNIX_PREFIX = "unix://"
_UDS_BASE_URL = "http://syncthing"
"""httpx needs a URL even over a Unix socket; the host part is never resolved."""

LISTEN_SCHEMES = frozenset({"tcp", "tcp4", "tcp6", "quic", "quic4", "quic6", "relay"})
_API_KEY = re.compile(r"[\x21-\x7e]{1,256}")
"""Visible ASCII only: the key travels in an HTTP header and in config.xml."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """How to reach one Syncthing's REST API: a base URL, or a Unix socket."""

    url: str
    uds: Path | None = None

    @property
    def tls(self) -> bool:
        return self.url.startswith("https://")

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    def __str__(self) -> str:
        return str(self.uds) if self.uds is not None else self.url

    def gui_setting(self) -> str:
        """The value Syncthing's `<gui><address>` takes for this endpoint."""
        if self.uds is not None:
            return str(self.uds)
        parts = urlsplit(self.url)
        return parts.netloc


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _socket_path(text: str) -> Path | None:
    raw = text[len(UNIX_PREFIX) :] if text.startswith(UNIX_PREFIX) else text
    if not raw.startswith("/"):
        if text.startswith(UNIX_PREFIX):
            raise ValueError(f"{text!r}: a Unix socket path must be absolute")
        return None
    if "\0" in raw:
        raise ValueError("a socket path must not contain NUL")
    return Path(raw)


def parse_endpoint(text: str) -> Endpoint:
    """`host:port`, `http(s)://host:port`, an absolute socket path or `unix:///path`.

    A wildcard listen address (`0.0.0.0:8384`, `:8384`, as found in a GUI setting) is
    reached through loopback.
    """
    text = text.strip()
    if not text:
        raise ValueError("empty Syncthing address")
    if (path := _socket_path(text)) is not None:
        return Endpoint(_UDS_BASE_URL, path)
    url = text if "://" in text else f"http://{text}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{text!r}: Syncthing's API is reached over http, https or a socket")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{text!r}: give only scheme, host and port")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r}: invalid port") from None
    if port is None or port == 0:
        raise ValueError(f"{text!r}: a port is required")
    host = parts.hostname or ""
    if host in ("", "0.0.0.0"):  # noqa: S104 - mapping a wildcard to loopback
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    shown = f"[{host}]" if ":" in host else host
    return Endpoint(f"{parts.scheme}://{shown}:{port}")


def parse_managed_gui(text: str) -> Endpoint:
    """The GUI address of a managed Syncthing: loopback or a socket, never the network.

    The managed GUI has no password (the API key protects the REST API), so exposing it
    beyond this machine is refused rather than configured.
    """
    endpoint = parse_endpoint(text)
    if endpoint.uds is None:
        if endpoint.tls:
            raise ValueError(f"{text!r}: the managed GUI speaks plain http on loopback")
        if not is_loopback_host(endpoint.host):
            raise ValueError(f"{text!r}: the managed GUI must listen on loopback or a Unix socket")
    return endpoint


def check_listen_address(text: str) -> str:
    """A sync listen address as Syncthing understands it (`tcp://127.0.0.1:22001`)."""
    if text in ("default", "dynamic"):
        return text
    parts = urlsplit(text)
    if parts.scheme not in LISTEN_SCHEMES:
        raise ValueError(
            f"listen address {text!r}: use one of {', '.join(sorted(LISTEN_SCHEMES))}://"
        )
    if parts.scheme != "relay":
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"listen address {text!r}: invalid port") from None
        if port is None:
            raise ValueError(f"listen address {text!r}: a port is required")
    return text


def check_api_key(text: str) -> str:
    if not _API_KEY.fullmatch(text):
        raise ValueError("the API key must be 1-256 visible ASCII characters")
    return text
