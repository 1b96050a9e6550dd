"""The managed home, prepared with the real Syncthing binary on real files."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from xml.etree import ElementTree

import pytest

from karmad.deviceid import parse as parse_device_id
from karmad.syncthing import binary as binary_mod
from karmad.syncthing import home
from karmad.syncthing.compat import MINIMUM
from karmad.syncthing.configxml import ConfigXml

pytestmark = pytest.mark.syncthing


@pytest.fixture(scope="module")
def binary() -> binary_mod.Binary:
    path = binary_mod.locate("")
    assert path is not None, "the test suite needs Syncthing (./dev test installs it)"
    return binary_mod.probe(path)


def settings(tmp_path: Path, **kw: object) -> home.HomeSettings:
    values: dict[str, object] = {
        "home": tmp_path / "st",
        "api_key_file": tmp_path / "st" / "karmad-api-key",
        "gui_socket": tmp_path / "st.sock",
        "profile": "loopback",
    }
    values.update(kw)
    return home.HomeSettings(**values)  # type: ignore[arg-type]


def test_probe_reports_the_installed_version(binary: binary_mod.Binary) -> None:
    assert binary.version >= MINIMUM
    assert binary.long_version.startswith(f"syncthing v{binary.version}")
    assert binary.compat.version == binary.version


def test_probe_refuses_what_is_not_syncthing(tmp_path: Path) -> None:
    fake = tmp_path / "syncthing"
    fake.write_text("#!/bin/sh\necho 'hello world'\n")
    fake.chmod(0o755)
    with pytest.raises(binary_mod.BinaryError, match="does not look like Syncthing"):
        binary_mod.probe(fake)
    old = tmp_path / "old"
    old.write_text("#!/bin/sh\necho 'syncthing v1.12.0 \"Fermium\"'\n")
    old.chmod(0o755)
    with pytest.raises(binary_mod.BinaryError, match="too old"):
        binary_mod.probe(old)


def test_locate_honours_config_and_path(tmp_path: Path) -> None:
    assert binary_mod.locate(str(tmp_path / "missing")) is None
    assert binary_mod.locate("", {"PATH": str(tmp_path)}) is None
    fake = tmp_path / "syncthing"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert binary_mod.locate("", {"PATH": str(tmp_path)}) == fake
    assert binary_mod.locate(str(fake)) == fake
    assert "apt-get install syncthing" in binary_mod.not_found_detail("")


def test_fresh_home(tmp_path: Path, binary: binary_mod.Binary) -> None:
    s = settings(tmp_path)
    prepared = home.prepare(binary, s)
    assert prepared.created
    assert parse_device_id(prepared.device_id) == prepared.device_id
    for name in ("cert.pem", "key.pem", "config.xml"):
        assert (s.home / name).is_file()
    assert not (s.home / home.GENERATE_DIR).exists()
    assert stat.S_IMODE(s.home.stat().st_mode) == 0o700
    key_mode = stat.S_IMODE(s.api_key_file.stat().st_mode)
    assert key_mode == 0o600
    assert s.api_key_file.read_text().strip() == prepared.api_key
    assert len(prepared.api_key) >= 32
    config = ConfigXml.load(s.home / "config.xml")
    gui = config.gui()
    assert (gui.enabled, gui.tls, gui.address, gui.api_key) == (
        True,
        False,
        str(tmp_path / "st.sock"),
        prepared.api_key,
    )
    assert prepared.endpoint.uds == tmp_path / "st.sock"
    (listen,) = config.listen_addresses()
    assert listen.startswith("tcp://127.0.0.1:")
    assert listen == prepared.listen_addresses[0]
    expected = {
        "globalAnnounceEnabled": "false",
        "localAnnounceEnabled": "false",
        "relaysEnabled": "false",
        "natEnabled": "false",
        "startBrowser": "false",
        "autoUpgradeIntervalH": "0",
        "urAccepted": "-1",
        "crashReportingEnabled": "false",
        "reconnectionIntervalS": "10",
    }
    assert {k: config.option(k) for k in expected} == expected
    # Our own name goes to every peer: karmad's, not the host name Syncthing picks.
    assert config.device_name(prepared.device_id) == "karmad"
    # No default folder: the only <folder> is the template under <defaults>.
    root = ElementTree.parse(s.home / "config.xml").getroot()
    assert root.findall("folder") == []


def test_second_prepare_keeps_identity_key_and_port(
    tmp_path: Path, binary: binary_mod.Binary
) -> None:
    s = settings(tmp_path)
    first = home.prepare(binary, s)
    config_before = (s.home / "config.xml").read_bytes()
    second = home.prepare(binary, s)
    assert not second.created
    assert (second.device_id, second.api_key) == (first.device_id, first.api_key)
    assert second.listen_addresses == first.listen_addresses
    assert second.changed == []
    assert (s.home / "config.xml").read_bytes() == config_before


def test_hand_edits_of_owned_settings_are_corrected(
    tmp_path: Path, binary: binary_mod.Binary
) -> None:
    s = settings(tmp_path)
    first = home.prepare(binary, s)
    path = s.home / "config.xml"
    text = path.read_text()
    text = text.replace(first.api_key, "someone-elses-key")
    text = text.replace(
        "<globalAnnounceEnabled>false</globalAnnounceEnabled>",
        "<globalAnnounceEnabled>true</globalAnnounceEnabled>",
    )
    text = text.replace(
        "<keepTemporariesH>24</keepTemporariesH>", "<keepTemporariesH>7</keepTemporariesH>"
    )
    text = text.replace('name="karmad"', 'name="my-laptop.example.com"', 1)
    path.write_text(text)
    again = home.prepare(binary, s)
    assert set(again.changed) == {"gui.apikey", "options.globalAnnounceEnabled", "device.name"}
    assert ConfigXml.load(path).device_name(first.device_id) == "karmad"
    config = ConfigXml.load(path)
    assert config.gui().api_key == first.api_key
    assert config.option("globalAnnounceEnabled") == "false"
    # Not karmad's setting: the user's edit stays.
    assert config.option("keepTemporariesH") == "7"


def test_profile_switch_to_internet_restores_syncthing_defaults(
    tmp_path: Path, binary: binary_mod.Binary
) -> None:
    home.prepare(binary, settings(tmp_path))
    home.prepare(binary, settings(tmp_path, profile="internet"))
    config = ConfigXml.load(tmp_path / "st" / "config.xml")
    assert config.listen_addresses() == ["default"]
    assert config.option("globalAnnounceEnabled") == "true"
    assert config.option("relaysEnabled") == "true"
    assert config.option("urAccepted") == "-1"
    assert config.option("autoUpgradeIntervalH") == "0"


def test_corrupt_config_is_moved_aside_and_the_identity_kept(
    tmp_path: Path, binary: binary_mod.Binary
) -> None:
    s = settings(tmp_path)
    first = home.prepare(binary, s)
    (s.home / "config.xml").write_text("<configuration><gui>truncated")
    second = home.prepare(binary, s)
    assert second.device_id == first.device_id
    assert not second.created
    aside = list(s.home.glob("config.xml.aside-*"))
    assert len(aside) == 1
    assert aside[0].read_text() == "<configuration><gui>truncated"
    assert any("not valid XML" in note for note in second.notes)
    assert ConfigXml.load(s.home / "config.xml").gui().api_key == first.api_key


def test_missing_config_is_regenerated_with_the_same_identity(
    tmp_path: Path, binary: binary_mod.Binary
) -> None:
    s = settings(tmp_path)
    first = home.prepare(binary, s)
    (s.home / "config.xml").unlink()
    second = home.prepare(binary, s)
    assert second.device_id == first.device_id
    assert first.device_id in (s.home / "config.xml").read_text()


def test_incomplete_identity(tmp_path: Path, binary: binary_mod.Binary) -> None:
    s = settings(tmp_path)
    first = home.prepare(binary, s)
    (s.home / "key.pem").unlink()
    # The certificate without its key cannot be used, and is never silently replaced.
    with pytest.raises(home.HomeError, match="incomplete"):
        home.prepare(binary, s)
    # Before any first start (no config.xml), a lone file is moved aside instead.
    (s.home / "config.xml").unlink()
    fresh = home.prepare(binary, s)
    assert fresh.created
    assert fresh.device_id != first.device_id
    assert list(s.home.glob("cert.pem.aside-*"))


def test_api_key_file_repairs(tmp_path: Path, binary: binary_mod.Binary) -> None:
    s = settings(tmp_path)
    first = home.prepare(binary, s)
    s.api_key_file.chmod(0o644)
    assert home.prepare(binary, s).api_key == first.api_key
    assert stat.S_IMODE(s.api_key_file.stat().st_mode) == 0o600
    s.api_key_file.write_bytes(b"\xff\xfe not a key")
    repaired = home.prepare(binary, s)
    assert repaired.api_key != first.api_key
    assert ConfigXml.load(s.home / "config.xml").gui().api_key == repaired.api_key


def test_long_socket_path_falls_back_to_loopback_tcp(
    tmp_path: Path, binary: binary_mod.Binary
) -> None:
    long_dir = tmp_path / ("d" * 120)
    s = settings(tmp_path, gui_socket=long_dir / "syncthing.sock")
    prepared = home.prepare(binary, s)
    assert prepared.endpoint.uds is None
    assert prepared.endpoint.url.startswith("http://127.0.0.1:")
    # The port is kept while it stays free.
    assert home.prepare(binary, s).endpoint == prepared.endpoint


def test_explicit_gui_address(tmp_path: Path, binary: binary_mod.Binary) -> None:
    s = settings(tmp_path, gui_address="127.0.0.1:45999")
    assert home.prepare(binary, s).endpoint.url == "http://127.0.0.1:45999"
    with pytest.raises(home.HomeError, match="loopback"):
        home.prepare(binary, settings(tmp_path, gui_address="10.1.2.3:8384"))


def test_an_unwritable_home_is_a_clear_error(tmp_path: Path, binary: binary_mod.Binary) -> None:
    if os.geteuid() == 0:
        # root ignores permissions; a file where the directory should be works for both.
        (tmp_path / "st").write_text("a file, not a directory")
    else:
        (tmp_path / "st").mkdir(mode=0o500)
    with pytest.raises(home.HomeError):
        home.prepare(binary, settings(tmp_path))
