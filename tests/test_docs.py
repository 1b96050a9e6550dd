"""Generated documentation must match the code it documents."""

from __future__ import annotations

from pathlib import Path

from karmad import config_doc, protocol_doc

REPO = Path(__file__).resolve().parents[1]


def test_protocol_reference_is_current() -> None:
    current = (REPO / "docs" / "protocol.md").read_text()
    assert current == protocol_doc.render(), (
        "docs/protocol.md is stale: run `python -m karmad.protocol_doc > docs/protocol.md`"
    )


def test_cli_reference_is_current() -> None:
    from karmactl import reference

    current = (REPO / "docs" / "cli.md").read_text()
    assert current == reference.render(), (
        "docs/cli.md is stale: run `python -m karmactl.reference > docs/cli.md`"
    )


def test_configuration_reference_is_current() -> None:
    current = (REPO / "docs" / "configuration.md").read_text()
    assert current == config_doc.render(), (
        "docs/configuration.md is stale: run `python -m karmad.config_doc > docs/configuration.md`"
    )


def test_every_config_key_says_what_it_does() -> None:
    assert config_doc.undocumented() == []
