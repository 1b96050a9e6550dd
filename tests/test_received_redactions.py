"""The redaction counts shown for a teammate's session come from the sender's manifest,
found from whichever of the session's files has arrived."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from karmad import protocol
from karmad.flow import manifest as mf
from karmad.flow.shared import received_redactions
from karmad.index import discovery

SESSION = "0b5c3c1e-6a4e-4f7e-9c53-4a3f1f0b2d11"


def _layout(root: Path) -> dict[str, Path]:
    project = root / "-home-alice-src-app"
    return {
        "main": project / f"{SESSION}.jsonl",
        "subagent": project / SESSION / "subagents" / "agent-a1b2c3.jsonl",
        "agent": project / "agent-d4e5f6.jsonl",
    }


@pytest.mark.parametrize("kind", ["main", "subagent", "agent"])
def test_root_of_inverts_classify(tmp_path: Path, kind: str) -> None:
    path = _layout(tmp_path)[kind]
    ref = discovery.classify(tmp_path, path)
    assert ref is not None and ref.kind == kind
    assert discovery.root_of(path, ref.kind) == tmp_path


def _write_manifest(root: Path, counts: dict[str, int]) -> None:
    manifest = mf.Manifest(
        session_id=SESSION,
        project_key="k",
        project="github.com/acme/app",
        member_tag="alice",
        updated_at=datetime(2026, 11, 24, tzinfo=UTC),
        redaction=mf.Redaction(rules_version=1, replacements=sum(counts.values()), counts=counts),
    )
    (root / mf.MANIFESTS).mkdir(parents=True)
    (root / mf.MANIFESTS / f"{SESSION}.json").write_bytes(mf.encode(manifest))


@pytest.mark.parametrize("kind", ["main", "subagent", "agent"])
def test_counts_are_found_from_any_file(tmp_path: Path, kind: str) -> None:
    _write_manifest(tmp_path, {"github_token": 2, "aws_access_key": 1})
    files = [protocol.SessionFile(path=str(_layout(tmp_path)[kind]), kind=kind)]
    assert received_redactions(files, SESSION) == {"aws_access_key": 1, "github_token": 2}


def test_no_files_or_no_manifest_means_no_counts(tmp_path: Path) -> None:
    assert received_redactions([], SESSION) == {}
    files = [protocol.SessionFile(path=str(_layout(tmp_path)["main"]), kind="main")]
    assert received_redactions(files, SESSION) == {}
    (tmp_path / mf.MANIFESTS).mkdir()
    (tmp_path / mf.MANIFESTS / f"{SESSION}.json").write_bytes(b"{not json")
    assert received_redactions(files, SESSION) == {}
