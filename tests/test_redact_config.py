"""The `[redaction]` config section: defaults, user rules, and clear errors at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from karmad import config_load
from karmad.redact import redactor_from_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_redact_everything_built_in(tmp_path: Path) -> None:
    loaded = config_load.load(tmp_path / "missing.toml")
    assert loaded.redaction.disable == []
    assert loaded.redaction.literals == []
    assert loaded.redaction.patterns == []
    redactor = redactor_from_config(loaded.redaction)
    assert "anthropic-key" in redactor.kinds


def test_user_rules_from_the_file_are_applied(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[redaction]
disable = ["twilio-key"]
literals = ["Project Falcon"]
patterns = [
  { name = "acme-token", regex = "acme_[a-z0-9]{8}" },
  { name = "ticket", regex = "(?i)\\\\bTCK-\\\\d{4}", anchors = ["tck-"] },
]
""",
    )
    redactor = redactor_from_config(config_load.load(path).redaction)
    out, counts = redactor.redact_string("Project Falcon acme_0123abcd tck-1234 SK" + "a" * 32)
    assert out == "[REDACTED:literal] [REDACTED:acme-token] [REDACTED:ticket] SK" + "a" * 32
    assert counts == {"literal": 1, "acme-token": 1, "ticket": 1}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ('patterns = [{ name = "acme", regex = "acme_[a-z" }]', "pattern 'acme': invalid regex"),
        ('patterns = [{ name = "acme", regex = "\\\\d+" }]', "cannot tell which lines"),
        ('patterns = [{ name = "acme", regex = "acme_(x)?|" }]', "empty string"),
        ('patterns = [{ name = "acme" }]', "regex"),
        ('disable = ["jwt", "no-such-kind"]', "no-such-kind"),
        ('literals = ["x"]', "shorter than 3"),
        ("colour = 1", "colour"),
    ],
)
def test_bad_redaction_config_stops_start_up(tmp_path: Path, section: str, message: str) -> None:
    path = write(tmp_path, f"[redaction]\n{section}\n")
    with pytest.raises(config_load.ConfigError, match=message) as caught:
        config_load.load(path)
    assert str(path) in str(caught.value)
