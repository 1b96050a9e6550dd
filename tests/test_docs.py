"""Generated documentation must match the code it documents."""

from __future__ import annotations

from pathlib import Path

from karmad import protocol_doc

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
