"""Secrets of every kind, planted in real transcripts, never leave.

Copies of the shared corpus get every fake secret planted where sessions really carry
them (prompts, Bash commands, command output, files written and read back, private keys
with escaped newlines, URLs with passwords); the whole tree is redacted with the
streaming API, and then the output bytes are grepped for every secret in every spelling
JSON allows. Nothing else in the real transcripts may change.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from karmad.redact import LineReport, Redactor
from tests.support.secrets import PlantedCorpus, find_leaks_in_tree, needs_corpus, plant_corpus

pytestmark = needs_corpus


def redact_tree(
    planted: PlantedCorpus, out: Path
) -> tuple[Counter[str], dict[Path, list[LineReport]]]:
    redactor = Redactor()
    counts: Counter[str] = Counter()
    reports: dict[Path, list[LineReport]] = {}
    for path in planted.files:
        target = out / path.relative_to(planted.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        mine: list[LineReport] = []
        with path.open("rb") as src, target.open("wb") as dst:
            tally = redactor.redact_stream(src, dst, chunk_size=4096, on_report=mine.append)
        counts.update(tally.counts)
        reports[path] = mine
    return counts, reports


def test_no_planted_secret_survives_redaction(tmp_path: Path) -> None:
    planted = plant_corpus(tmp_path / "in", seed=1)
    before = find_leaks_in_tree(planted.root, planted.secrets)
    assert {leak.secret for leak in before} == set(planted.secrets), "planting failed"

    counts, reports = redact_tree(planted, tmp_path / "out")

    leaks = find_leaks_in_tree(tmp_path / "out", planted.secrets)
    assert not leaks, "\n".join(map(str, leaks))
    assert {s.kind for s in planted.secrets} <= set(counts)
    for path, mine in reports.items():
        changed = {r.line for r in mine}
        # every line carrying a secret changed, and no real line did
        assert changed == planted.planted_lines[path], path


def test_redacted_transcripts_keep_their_shape(tmp_path: Path) -> None:
    planted = plant_corpus(tmp_path / "in", seed=2)
    redact_tree(planted, tmp_path / "out")
    for path in planted.files:
        before = path.read_bytes().split(b"\n")
        after = (tmp_path / "out" / path.relative_to(planted.root)).read_bytes().split(b"\n")
        assert len(after) == len(before)
        for old, new in zip(before, after, strict=True):
            try:
                old_value = json.loads(old)
            except ValueError:
                continue
            new_value = json.loads(new)
            assert type(new_value) is type(old_value)
            if isinstance(old_value, dict):
                assert list(new_value) == list(old_value)
                assert new_value.get("uuid") == old_value.get("uuid")
                assert new_value.get("type") == old_value.get("type")
