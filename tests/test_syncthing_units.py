"""The pure parts of the Syncthing engine: IDs, addresses, validation, versions, profiles,
the snapshot's event handling and config.xml editing (on real files)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from karmad import codec
from karmad.config_load import ConfigError, load
from karmad.deviceid import InvalidDeviceId
from karmad.deviceid import parse as parse_device_id
from karmad.paths import syncthing_homes
from karmad.syncthing import addresses, ids, profile, validation
from karmad.syncthing.compat import Compat, Unsupported, Version, child_env
from karmad.syncthing.configxml import ConfigXml, ConfigXmlCorrupt
from karmad.syncthing.errors import Rejected
from karmad.syncthing.events import _contiguous
from karmad.syncthing.models import (
    DeviceConfig,
    FolderConfig,
    FolderDevice,
    OptionsConfig,
    PendingDevicesChanged,
    PendingFoldersChanged,
    RawEvent,
    StateChanged,
)
from karmad.syncthing.snapshot import Snapshot

# A real device ID (from Syncthing 1.19) and its raw 52-character form.
DEVICE = "NQD7OIA-TMDREG2-N4PUATS-76QERI4-XVC2KIF-AX73U5R-MUGSJDK-KBGOFAO"
OTHER = "IPIEAN7-5CYUUEC-63LJ4E5-PQVJAN6-RUUIYWG-STZYP24-DWVZQA3-6HJVGQW"
_RAW = DEVICE.replace("-", "")
DEVICE_52 = "".join(_RAW[i : i + 13] for i in range(0, 56, 14))
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


# --------------------------------------------------------------------------- device IDs


@pytest.mark.parametrize(
    "spelling",
    [DEVICE, DEVICE.lower(), _RAW, f"  {DEVICE}\n", DEVICE.replace("-", " "), DEVICE_52],
)
def test_device_id_spellings_are_canonicalised(spelling: str) -> None:
    assert parse_device_id(spelling) == DEVICE


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (DEVICE[:-1] + "B", "check character"),
        (DEVICE[:-2], "characters"),
        ("", "characters"),
        (DEVICE.replace("N", "9", 1), "A-Z and 2-7"),
    ],
)
def test_bad_device_ids_say_why(bad: str, why: str) -> None:
    with pytest.raises(InvalidDeviceId, match=why):
        parse_device_id(bad)


@given(st.binary(min_size=32, max_size=32))
def test_any_digest_round_trips(digest: bytes) -> None:
    import base64

    raw = base64.b32encode(digest).decode().rstrip("=")
    canonical = parse_device_id(raw)
    assert parse_device_id(canonical) == canonical
    assert len(canonical) == 63
    # One changed character in a group is caught by that group's check character.
    flipped = ("B" if canonical[0] != "B" else "C") + canonical[1:]
    with pytest.raises(InvalidDeviceId):
        parse_device_id(flipped)


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("text", "url", "uds"),
    [
        ("127.0.0.1:8384", "http://127.0.0.1:8384", None),
        ("http://localhost:8384", "http://localhost:8384", None),
        ("https://127.0.0.1:8384/", "https://127.0.0.1:8384", None),
        ("0.0.0.0:8384", "http://127.0.0.1:8384", None),
        (":8384", "http://127.0.0.1:8384", None),
        ("[::]:8384", "http://[::1]:8384", None),
        ("/run/st.sock", "http://syncthing", Path("/run/st.sock")),
        ("unix:///run/st.sock", "http://syncthing", Path("/run/st.sock")),
    ],
)
def test_endpoints(text: str, url: str, uds: Path | None) -> None:
    endpoint = addresses.parse_endpoint(text)
    assert (endpoint.url, endpoint.uds) == (url, uds)


@pytest.mark.parametrize(
    "text", ["", "ftp://x:1", "127.0.0.1", "http://h:1/path", "unix://relative", "h:99999"]
)
def test_bad_endpoints(text: str) -> None:
    with pytest.raises(ValueError):
        addresses.parse_endpoint(text)


def test_managed_gui_stays_on_this_machine() -> None:
    assert addresses.parse_managed_gui("127.0.0.1:1234").gui_setting() == "127.0.0.1:1234"
    assert addresses.parse_managed_gui("/tmp/x.sock").gui_setting() == "/tmp/x.sock"
    with pytest.raises(ValueError, match="loopback"):
        addresses.parse_managed_gui("192.168.1.2:8384")
    with pytest.raises(ValueError, match="plain http"):
        addresses.parse_managed_gui("https://127.0.0.1:8384")


@pytest.mark.parametrize("ok", ["default", "dynamic", "tcp://127.0.0.1:22001", "quic://:22000"])
def test_listen_addresses(ok: str) -> None:
    assert addresses.check_listen_address(ok) == ok


@pytest.mark.parametrize("bad", ["127.0.0.1:22000", "tcp://host", "http://x:1", "tcp://h:x"])
def test_bad_listen_addresses(bad: str) -> None:
    with pytest.raises(ValueError, match="listen address"):
        addresses.check_listen_address(bad)


# --------------------------------------------------------------------------- config


def test_syncthing_config_defaults_and_validation(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    config = load(path)
    assert config.syncthing.mode == "managed"
    assert config.syncthing.profile == "internet"
    assert config.syncthing.gui_address == "auto"
    path.write_text('[syncthing]\nmode = "external"\naddress = "127.0.0.1:8384"\n')
    assert load(path).syncthing.address == "127.0.0.1:8384"
    for bad, needle in [
        ('gui_address = "10.0.0.1:8384"', "loopback"),
        ('listen_addresses = ["22000"]', "listen address"),
        ('profile = "everywhere"', "profile"),
        ("request_timeout_s = 0", "request_timeout_s"),
        ('address = "ftp://x:1"', "http"),
        ('api_key = "has space"', "API key"),
        ("event_poll_s = 0", "event_poll_s"),
        ("restart_delay_s = 10\nrestart_delay_max_s = 1", "restart_delay_max_s"),
        (
            'profile = "loopback"\nlisten_addresses = ["tcp://0.0.0.0:22000"]',
            "loopback only",
        ),
    ]:
        path.write_text(f"[syncthing]\n{bad}\n")
        with pytest.raises(ConfigError, match=needle):
            load(path)


def test_default_homes_cover_every_syncthing_layout(tmp_path: Path) -> None:
    homes = syncthing_homes({"HOME": str(tmp_path), "STHOMEDIR": "/custom"})
    assert homes[0] == Path("/custom")
    assert tmp_path / ".local/state/syncthing" in homes
    assert tmp_path / ".config/syncthing" in homes
    assert tmp_path / "Library/Application Support/Syncthing" in homes
    xdg = syncthing_homes({"HOME": str(tmp_path), "XDG_STATE_HOME": "/xdg/state"})
    assert xdg[0] == Path("/xdg/state/syncthing")
    assert len(xdg) == len(set(xdg))


# --------------------------------------------------------------------------- validation


def _folder(**kw: object) -> FolderConfig:
    values: dict[str, object] = {
        "id": "karma-abc",
        "path": "/data/karma-abc",
        "type": "sendonly",
        "devices": [FolderDevice(device_id=DEVICE.lower())],
    }
    values.update(kw)
    return FolderConfig(**values)  # type: ignore[arg-type]


def test_a_valid_folder_is_canonicalised() -> None:
    folder = validation.folder(_folder())
    assert folder.devices[0].device_id == DEVICE


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"path": ""}, "absolute"),
        ({"path": "~"}, "absolute"),
        ({"path": "relative/dir"}, "absolute"),
        ({"path": "/data/../etc"}, "normalised"),
        ({"path": "/"}, "root"),
        ({"type": "readwrite"}, "folder type"),
        ({"id": "has space"}, "folder ID"),
        ({"id": ""}, "folder ID"),
        ({"label": "line\nbreak"}, "label"),
        ({"devices": [FolderDevice(device_id="nope")]}, "device ID"),
        (
            {"devices": [FolderDevice(device_id=DEVICE), FolderDevice(device_id=DEVICE.lower())]},
            "twice",
        ),
        ({"fs_watcher_delay_s": 0}, "watcher"),
        ({"filesystem_type": "fake"}, "basic"),
    ],
)
def test_garbage_folders_are_refused_before_sending(change: dict[str, object], needle: str) -> None:
    with pytest.raises(Rejected, match=needle) as info:
        validation.folder(_folder(**change))
    assert info.value.status is None


def test_devices_never_become_introducers() -> None:
    assert validation.device(DeviceConfig(device_id=DEVICE.lower())).device_id == DEVICE
    with pytest.raises(Rejected, match="introducer"):
        validation.device(DeviceConfig(device_id=DEVICE, introducer=True))
    with pytest.raises(Rejected, match="introducer"):
        validation.device(DeviceConfig(device_id=DEVICE, auto_accept_folders=True))
    with pytest.raises(Rejected, match="address"):
        validation.device(DeviceConfig(device_id=DEVICE, addresses=[]))
    with pytest.raises(Rejected, match="listen address"):
        validation.device(DeviceConfig(device_id=DEVICE, addresses=["10.0.0.1"]))


@pytest.mark.parametrize(
    ("path", "expected"),
    [("a.jsonl", "a.jsonl"), ("projects/k/s.jsonl", "projects/k/s.jsonl"), ("a//b", "a/b")],
)
def test_scan_paths(path: str, expected: str) -> None:
    assert validation.sub_path(path) == expected


@pytest.mark.parametrize("path", ["", "/abs", "../up", "a/../b", "./a", "a\\b", "nul\0"])
def test_bad_scan_paths(path: str) -> None:
    with pytest.raises(Rejected):
        validation.sub_path(path)


def test_managed_folder_ids() -> None:
    assert ids.is_managed("karma-3f2a")
    assert not ids.is_managed("karma-")
    assert not ids.is_managed("default")
    assert not ids.is_managed("karmaX")


# --------------------------------------------------------------------------- versions


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ('syncthing v1.19.2-ds1 "Fermium Flea" (go1.19.8 linux-amd64) debian', (1, 19, 2)),
        ("v2.0.10", (2, 0, 10)),
        ('syncthing v1.27.4 "Gold Grasshopper"', (1, 27, 4)),
    ],
)
def test_version_parsing(text: str, version: tuple[int, int, int]) -> None:
    assert Version.parse(text) == Version(*version)


def test_command_lines_per_major_version(tmp_path: Path) -> None:
    old = Compat.for_version(Version(1, 19, 2))
    new = Compat.for_version(Version(2, 0, 3))
    log = tmp_path / "st.log"
    assert old.device_id_args(tmp_path) == ["serve", f"--home={tmp_path}", "--device-id"]
    assert new.device_id_args(tmp_path) == ["device-id", f"--home={tmp_path}"]
    assert "--no-default-folder" in old.generate_args(tmp_path)
    assert "--no-default-folder" not in new.generate_args(tmp_path)
    assert "--no-port-probing" in new.serve_args(tmp_path, log)
    assert f"--logfile={log}" in old.serve_args(tmp_path, log)
    assert f"--log-file={log}" in new.serve_args(tmp_path, log)
    for compat in (old, new):
        args = compat.serve_args(tmp_path, log)
        assert args[0] == "serve"
        assert {"--no-browser", "--no-restart", "--no-upgrade"} <= set(args)
        assert not any(a.startswith("-") and not a.startswith("--") for a in args)
    assert old.health_path == "/rest/system/ping"
    assert Compat.for_version(Version(1, 22, 1)).health_path == "/rest/noauth/health"
    with pytest.raises(Unsupported, match="too old"):
        Compat.for_version(Version(1, 18, 0))


def test_child_env_drops_the_users_syncthing_variables() -> None:
    env = child_env(
        {"PATH": "/bin", "STHOMEDIR": "/x", "STGUIADDRESS": "0.0.0.0:1", "STTRACE": "all"},
        "key",
    )
    assert env == {
        "PATH": "/bin",
        "STNODEFAULTFOLDER": "1",
        "STNOUPGRADE": "1",
        "STGUIAPIKEY": "key",
    }


# --------------------------------------------------------------------------- profiles


def test_internet_profile_is_syncthings_defaults() -> None:
    net = profile.network_settings("internet", [], ["tcp://127.0.0.1:1"])
    assert net.listen_addresses == ["default"]
    assert set(net.options().values()) == {"true"}


def test_loopback_profile_keeps_a_free_port_and_turns_everything_off() -> None:
    first = profile.network_settings("loopback", [], [])
    (address,) = first.listen_addresses
    assert address.startswith("tcp://127.0.0.1:")
    assert set(first.options().values()) == {"false"}
    again = profile.network_settings("loopback", [], first.listen_addresses)
    assert again.listen_addresses == first.listen_addresses
    explicit = profile.network_settings("lan-only", ["tcp://0.0.0.0:23000"], [address])
    assert explicit.listen_addresses == ["tcp://0.0.0.0:23000"]


def test_a_taken_port_is_replaced() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        net = profile.network_settings("loopback", [], [f"tcp://127.0.0.1:{port}"])
    assert net.listen_addresses != [f"tcp://127.0.0.1:{port}"]


# --------------------------------------------------------------------------- snapshot


def _snapshot() -> Snapshot:
    snap = Snapshot(my_id=DEVICE)
    snap.apply_config(
        [
            FolderConfig(
                id="karma-a",
                path="/a",
                type="sendonly",
                devices=[FolderDevice(device_id=DEVICE), FolderDevice(device_id=OTHER)],
            ),
            FolderConfig(id="users-own", path="/b", type="sendreceive"),
        ],
        [DeviceConfig(device_id=DEVICE), DeviceConfig(device_id=OTHER, name="other")],
        OptionsConfig(),
    )
    return snap


def test_snapshot_lists_others_and_managed_folders() -> None:
    snap = _snapshot()
    assert list(snap.devices) == [OTHER]
    assert [f.config.id for f in snap.managed_folders()] == ["karma-a"]


def test_pending_events_add_and_remove() -> None:
    snap = _snapshot()
    snap.pending_devices_changed(
        codec.decode_json(
            b'{"added":[{"deviceID":"%s","name":"n","address":"127.0.0.1:1"}]}' % OTHER.encode(),
            PendingDevicesChanged,
        ),
        T0,
    )
    assert snap.pending_devices[OTHER].name == "n"
    assert snap.pending_devices[OTHER].time == T0
    added = b'{"added":[{"folderID":"karma-x","deviceID":"%s","folderLabel":"L"}]}'
    snap.pending_folders_changed(
        codec.decode_json(added % OTHER.encode(), PendingFoldersChanged), T0
    )
    assert snap.pending_folders["karma-x"][OTHER].label == "L"
    snap.pending_folders_changed(
        codec.decode_json(b'{"removed":[{"folderID":"karma-x"}]}', PendingFoldersChanged), T0
    )
    assert snap.pending_folders == {}
    removed = b'{"removed":[{"deviceID":"%s"}]}' % OTHER.encode()
    snap.pending_devices_changed(codec.decode_json(removed, PendingDevicesChanged), T0)
    assert snap.pending_devices == {}


def test_state_changes_and_errors() -> None:
    snap = _snapshot()
    snap.folder_state_changed(
        StateChanged(folder="karma-a", from_="idle", to="error", error="folder path missing"), T0
    )
    folder = snap.folders["karma-a"]
    assert (folder.state, folder.error, folder.state_since) == (
        "error",
        "folder path missing",
        T0,
    )
    snap.folder_state_changed(StateChanged(folder="karma-a", from_="error", to="idle"), T0)
    assert (folder.state, folder.error) == ("idle", "")


def test_config_updates_keep_what_is_known() -> None:
    snap = _snapshot()
    snap.devices[OTHER].connected = True
    added, removed = snap.apply_config(
        [FolderConfig(id="karma-b", path="/b", type="receiveonly")],
        [DeviceConfig(device_id=OTHER, name="renamed")],
        OptionsConfig(),
    )
    assert (added, removed) == ({"karma-b"}, {"karma-a", "users-own"})
    assert snap.devices[OTHER].connected
    assert snap.devices[OTHER].config.name == "renamed"


def test_event_id_continuity() -> None:
    def events(*ids_: int) -> list[RawEvent]:
        return [RawEvent(id=i) for i in ids_]

    assert _contiguous(10, events(11, 12, 13))
    assert not _contiguous(10, events(12, 13))
    assert not _contiguous(10, events(1, 2))
    assert not _contiguous(10, events(11, 13))
    assert _contiguous(0, events(5, 6))


def test_raw_event_keeps_its_payload_undecoded() -> None:
    raw = b'[{"id":4,"globalID":9,"time":"2026-01-02T03:04:05.123456789Z","type":"ConfigSaved",'
    raw += b'"data":{"gui":{"apiKey":"secret"}}}]'
    (event,) = codec.decode_json(raw, list[RawEvent])
    assert (event.id, event.global_id, event.type) == (4, 9, "ConfigSaved")
    assert b"secret" in bytes(event.data)
    assert "secret" not in repr(msgspec.structs.replace(event, data=msgspec.Raw(b"null")))


# --------------------------------------------------------------------------- config.xml

CONFIG_XML = """<configuration version="36">
    <gui enabled="true" tls="false" debugging="false">
        <address>127.0.0.1:8384</address>
        <apikey>original</apikey>
        <theme>default</theme>
    </gui>
    <options>
        <listenAddress>default</listenAddress>
        <globalAnnounceEnabled>true</globalAnnounceEnabled>
        <urAccepted>0</urAccepted>
        <keepTemporariesH>24</keepTemporariesH>
    </options>
    <folder id="users-own" path="/x"></folder>
</configuration>
"""


def test_configxml_edits_only_what_it_is_told(tmp_path: Path) -> None:
    path = tmp_path / "config.xml"
    path.write_text(CONFIG_XML)
    config = ConfigXml.load(path)
    assert config.gui().address == "127.0.0.1:8384"
    assert config.gui().api_key == "original"
    config.set_gui("/run/st.sock", "newkey")
    config.set_listen_addresses(["tcp://127.0.0.1:5", "tcp://127.0.0.1:6"])
    config.set_option("globalAnnounceEnabled", "false")
    config.set_option("crashReportingEnabled", "false")
    assert config.save()
    again = ConfigXml.load(path)
    assert again.gui().address == "/run/st.sock"
    assert again.gui().api_key == "newkey"
    assert again.listen_addresses() == ["tcp://127.0.0.1:5", "tcp://127.0.0.1:6"]
    assert again.option("globalAnnounceEnabled") == "false"
    assert again.option("crashReportingEnabled") == "false"
    assert again.option("keepTemporariesH") == "24"
    assert 'id="users-own"' in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    # Nothing to change: the file is not rewritten.
    again.set_gui("/run/st.sock", "newkey")
    assert not again.save()


@pytest.mark.parametrize("text", ["<configuration><gui>", "not xml at all", "<other/>"])
def test_corrupt_configxml_is_recognised(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.xml"
    path.write_text(text)
    with pytest.raises(ConfigXmlCorrupt):
        ConfigXml.load(path)
