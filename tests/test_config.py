from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from msgspec import inspect as mi

from karmad.config import MAX_PARSE_PROCESSES, Config
from karmad.config_load import ConfigError, load


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    assert load(tmp_path / "absent.toml") == Config()


def test_values_override_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[daemon]\nlog_level = "debug"\n[rpc]\nclient_buffer = 5\n')
    config = load(path)
    assert config.daemon.log_level == "debug"
    assert config.rpc.client_buffer == 5
    assert config.rpc.max_message_bytes == Config().rpc.max_message_bytes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[rpc]\nclient_bufer = 5\n", "client_bufer"),
        ("[nope]\n", "nope"),
        ('[daemon]\nlog_level = "loud"\n', "log_level"),
        ("[rpc]\nmax_message_bytes = 10\n", "at least 4096"),
        ("[rpc\n", "malformed"),
        ('[rpc]\nclient_buffer = "many"\n', "client_buffer"),
        ("[doctor]\npeer_unseen_days = 0\n", "doctor.peer_unseen_days must be positive"),
        ("[doctor]\nteam_phase_warn_hours = -1\n", "doctor.team_phase_warn_hours must be"),
    ],
)
def test_bad_config_says_what_and_where(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load(path)
    assert str(path) in str(info.value)


def test_unreadable_config(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.mkdir()
    with pytest.raises(ConfigError, match="cannot read"):
        load(path)


def _numeric_keys(
    struct: type[msgspec.Struct], table: tuple[str, ...] = (), named: str = ""
) -> Iterator[tuple[tuple[str, ...], str, mi.Type]]:
    """(TOML table, the key as errors name it, type) of every number in the config,
    nested tables included. A table keyed by name (`prices.models`) gets a made-up
    name, which errors show as `[...]`."""
    info = mi.type_info(struct)
    assert isinstance(info, mi.StructType)
    for field in info.fields:
        t = field.type
        if isinstance(t, mi.UnionType):
            t = next(u for u in t.types if not isinstance(u, mi.NoneType))
        name = f"{named}.{field.encode_name}" if named else field.encode_name
        if isinstance(t, mi.DictType) and isinstance(t.value_type, mi.StructType):
            yield from _numeric_keys(
                t.value_type.cls, (*table, field.encode_name, "m"), f"{name}[...]"
            )
        elif isinstance(t, mi.StructType):
            yield from _numeric_keys(t.cls, (*table, field.encode_name), name)
        elif isinstance(t, mi.IntType | mi.FloatType):
            yield table, name, t


NUMERIC_KEYS = list(_numeric_keys(Config))


def test_the_walk_finds_every_section() -> None:
    tables = {key.split(".")[0] for _, key, _ in NUMERIC_KEYS}
    assert tables == {
        "daemon",
        "rpc",
        "syncthing",
        "teams",
        "index",
        "prices",
        "doctor",
        "archive",
        "keeper",
    }
    assert len(NUMERIC_KEYS) > 40


@pytest.mark.parametrize(
    ("table", "key", "kind"),
    NUMERIC_KEYS,
    ids=[k for _, k, _ in NUMERIC_KEYS],
)
def test_every_number_is_range_checked(
    tmp_path: Path, table: tuple[str, ...], key: str, kind: mi.Type
) -> None:
    """A negative and an absurd value of every numeric key are refused, naming the key;
    the default is inside the range (so the range does not refuse a config that only
    restates it)."""
    path = tmp_path / "c.toml"
    header = "[" + ".".join(table) + "]\n"
    name = key.rsplit(".", 1)[-1]
    bad = ["-2", "1000000000000000000"]
    if isinstance(kind, mi.FloatType):
        bad += ["-0.5", "1e300", "inf", "nan"]
    for value in bad:
        path.write_text(f"{header}{name} = {value}\n")
        with pytest.raises(ConfigError) as info:
            load(path)
        assert f"{path}: {key} must be " in str(info.value), value


def test_max_received_file_bytes_must_be_positive_and_sane(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[index]\nmax_received_file_bytes = -1\n")
    with pytest.raises(ConfigError, match=r"index\.max_received_file_bytes must be at least 65536"):
        load(path)
    path.write_text("[index]\nmax_received_file_bytes = 2000000\n")
    assert load(path).index.max_received_file_bytes == 2_000_000


def test_parse_processes_has_an_upper_bound(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    for value in (-1, 0, MAX_PARSE_PROCESSES):
        path.write_text(f"[index]\nparse_processes = {value}\n")
        assert load(path).index.parse_processes == value
    path.write_text(f"[index]\nparse_processes = {MAX_PARSE_PROCESSES + 1}\n")
    too_many = rf"index\.parse_processes must be at most {MAX_PARSE_PROCESSES}"
    with pytest.raises(ConfigError, match=too_many):
        load(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f'[syncthing]\nhome = "{"x" * 5000}"\n', "syncthing.home must be at most 4096"),
        (
            "[redaction]\ndisable = [" + ", ".join(['"x"'] * 101) + "]\n",
            "redaction.disable must be at most 100",
        ),
    ],
)
def test_strings_and_lists_are_bounded(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load(path)


def test_every_default_is_inside_its_range(tmp_path: Path) -> None:
    lines = []
    for section, values in msgspec.to_builtins(Config()).items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, dict) and not value:
                continue
            # JSON spells these scalars and lists of strings as TOML does.
            lines.append(f"{key} = {json.dumps(value)}")
    path = tmp_path / "c.toml"
    path.write_text("\n".join(lines) + "\n")
    assert load(path) == Config()
