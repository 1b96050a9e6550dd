"""Finding the user's own Syncthing for external mode.

Either `syncthing.address` and `syncthing.api_key` are configured, or they are read from
the GUI section of config.xml in `syncthing.home` or in each default home in turn (see
`paths.syncthing_homes`). Configured values override what the file says, so a key can be
given while the address is discovered. Nothing is ever written to that Syncthing's files.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from karmad import paths as paths_mod
from karmad.config import SyncthingConfig
from karmad.syncthing import addresses
from karmad.syncthing.addresses import Endpoint
from karmad.syncthing.configxml import ConfigXml, ConfigXmlError

HTTPS_CERT = "https-cert.pem"


@dataclass(frozen=True, slots=True)
class Target:
    endpoint: Endpoint
    api_key: str
    source: str
    """Where the address and key came from (for status and error messages)."""
    home: Path | None = None

    def tls_context(self) -> ssl.SSLContext | None:
        """For an https GUI: trust exactly the certificate in its home, when known.

        Syncthing's GUI certificate is self-signed for the name "syncthing", so the host
        name cannot match; pinning the certificate itself is the stronger check.
        """
        if not self.endpoint.tls or self.home is None:
            return None
        cert = self.home / HTTPS_CERT
        if not cert.is_file():
            return None
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        return context


def targets(
    config: SyncthingConfig, environ: Mapping[str, str] | None = None
) -> tuple[list[Target], list[str]]:
    """Candidates to try in order, and why other homes were skipped. Blocking (file reads)."""
    explicit_home = Path(config.home).expanduser() if config.home else None
    if config.address and config.api_key:
        endpoint = addresses.parse_endpoint(config.address)
        return [Target(endpoint, config.api_key, "syncthing.address", explicit_home)], []
    homes = [explicit_home] if explicit_home else paths_mod.syncthing_homes(environ)
    found: list[Target] = []
    problems: list[str] = []
    for home in homes:
        config_file = home / "config.xml"
        if explicit_home is None and not config_file.exists():
            continue
        try:
            xml = ConfigXml.load(config_file)
        except ConfigXmlError as exc:
            problems.append(str(exc))
            continue
        gui = xml.gui()
        if not gui.enabled and not config.address:
            problems.append(f"{config_file}: the GUI and REST API are disabled")
            continue
        key = config.api_key or gui.api_key
        if not key:
            problems.append(
                f"{config_file} has no API key: create one in Syncthing's GUI "
                "(Actions > Settings > GUI) or set syncthing.api_key"
            )
            continue
        address = config.address or gui.address
        if not config.address and gui.tls and "://" not in address:
            address = f"https://{address}"
        try:
            endpoint = addresses.parse_endpoint(address)
        except ValueError as exc:
            problems.append(f"{config_file}: {exc}")
            continue
        found.append(Target(endpoint, key, str(config_file), home))
    if not found and not problems:
        searched = ", ".join(str(h) for h in homes)
        problems.append(
            f"no Syncthing config.xml in {searched}; set syncthing.address and "
            "syncthing.api_key (or syncthing.home) in karmad's config"
        )
    return found, problems
