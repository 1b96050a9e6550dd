"""Reading and editing Syncthing's config.xml while Syncthing is not running.

Managed mode edits the few settings karmad owns before every start (GUI address and key,
network profile, upgrades and reporting off), because some of them must hold from the
first second (a Syncthing started with default settings announces itself to the global
discovery servers at once). External mode only reads the GUI settings to find the REST
API. Everything else in the file is left exactly as Syncthing wrote it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from karmad.atomic_file import write_atomic


class ConfigXmlError(Exception):
    """config.xml is missing, unreadable or not Syncthing's format."""


class ConfigXmlCorrupt(ConfigXmlError):
    """config.xml exists but is not a Syncthing configuration."""


@dataclass(frozen=True, slots=True)
class GuiSettings:
    enabled: bool
    tls: bool
    address: str
    api_key: str


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


class ConfigXml:
    def __init__(self, path: Path, tree: ET.ElementTree[ET.Element]) -> None:
        self.path = path
        self._tree = tree
        self._root = tree.getroot()
        self.changed: list[str] = []
        """Names of the settings this edit changed (for the log; values never)."""

    @classmethod
    def load(cls, path: Path) -> ConfigXml:
        try:
            # A local file written by Syncthing (or by us); Python's expat refuses
            # entity expansion attacks, and no network entities are resolved.
            tree = ET.parse(path)  # noqa: S314
        except FileNotFoundError:
            raise ConfigXmlError(f"{path} does not exist") from None
        except ET.ParseError as exc:
            raise ConfigXmlCorrupt(f"{path} is not valid XML ({exc})") from None
        except OSError as exc:
            raise ConfigXmlError(f"cannot read {path}: {exc.strerror or exc}") from None
        if tree.getroot().tag != "configuration":
            raise ConfigXmlCorrupt(f"{path} is not a Syncthing configuration")
        return cls(path, tree)

    # ------------------------------------------------------------------ reading

    def gui(self) -> GuiSettings:
        gui = self._root.find("gui")
        if gui is None:
            return GuiSettings(enabled=False, tls=False, address="", api_key="")
        return GuiSettings(
            enabled=_true(gui.get("enabled", "true")),
            tls=_true(gui.get("tls")),
            address=(gui.findtext("address") or "").strip(),
            api_key=(gui.findtext("apikey") or "").strip(),
        )

    def option(self, name: str) -> str | None:
        value = self._root.findtext(f"options/{name}")
        return value.strip() if value is not None else None

    def listen_addresses(self) -> list[str]:
        options = self._root.find("options")
        if options is None:
            return []
        return [(e.text or "").strip() for e in options.findall("listenAddress")]

    # ------------------------------------------------------------------ editing

    def _child(self, parent: ET.Element, tag: str) -> ET.Element:
        element = parent.find(tag)
        if element is None:
            element = ET.SubElement(parent, tag)
        return element

    def _set_text(self, parent: ET.Element, tag: str, value: str, name: str) -> None:
        element = self._child(parent, tag)
        if (element.text or "").strip() != value:
            element.text = value
            self.changed.append(name)

    def _set_attr(self, element: ET.Element, attr: str, value: str, name: str) -> None:
        if element.get(attr) != value:
            element.set(attr, value)
            self.changed.append(name)

    def set_gui(self, address: str, api_key: str) -> None:
        gui = self._child(self._root, "gui")
        self._set_attr(gui, "enabled", "true", "gui.enabled")
        self._set_attr(gui, "tls", "false", "gui.tls")
        self._set_text(gui, "address", address, "gui.address")
        self._set_text(gui, "apikey", api_key, "gui.apikey")

    def set_option(self, name: str, value: str) -> None:
        self._set_text(self._child(self._root, "options"), name, value, f"options.{name}")

    def device_name(self, device_id: str) -> str | None:
        for element in self._root.findall("device"):
            if element.get("id") == device_id:
                return element.get("name", "")
        return None

    def set_device_name(self, device_id: str, name: str) -> None:
        """Name a configured device (our own, in managed mode); absent: nothing to do."""
        for element in self._root.findall("device"):
            if element.get("id") == device_id:
                self._set_attr(element, "name", name, "device.name")

    def set_listen_addresses(self, values: list[str]) -> None:
        if self.listen_addresses() == values:
            return
        options = self._child(self._root, "options")
        existing = options.findall("listenAddress")
        position = list(options).index(existing[0]) if existing else 0
        for element in existing:
            options.remove(element)
        for offset, value in enumerate(values):
            element = ET.Element("listenAddress")
            element.text = value
            options.insert(position + offset, element)
        self.changed.append("options.listenAddress")

    def save(self) -> bool:
        """Write the file (0600, atomically) if anything changed; True if it was written."""
        if not self.changed:
            return False
        ET.indent(self._tree, space="    ")
        data = ET.tostring(self._root, encoding="unicode").encode() + b"\n"
        try:
            write_atomic(self.path, data, 0o600)
        except OSError as exc:
            raise ConfigXmlError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        return True
