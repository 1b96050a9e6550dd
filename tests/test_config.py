from __future__ import annotations

from pathlib import Path

import pytest

from karmad.config import Config, ConfigError, load


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
