"""What the views say about sharing: redaction counts of packaged and received sessions."""

from __future__ import annotations

import json
from pathlib import Path

from karmad import codec
from karmad.flow import manifest as mf
from karmad.store import Store


def packaged(store: Store, session_id: str) -> tuple[dict[str, int], list[str]]:
    """(redactions per kind, team folders) of a local session's packaged copies.

    Every outbox gets the same redaction, so the counts of the most complete copy are
    the session's counts (summing copies would count each secret once per team).
    """
    rows = store.query(
        "SELECT folder_id, SUM(dest_size) AS size, json_group_array(redactions) AS r "
        "FROM packaged_files WHERE session_id = ? GROUP BY folder_id ORDER BY size DESC",
        (session_id,),
    )
    if not rows:
        return {}, []
    counts: dict[str, int] = {}
    for text in json.loads(rows[0]["r"]):
        for kind, n in json.loads(text).items():
            counts[kind] = counts.get(kind, 0) + int(n)
    return dict(sorted(counts.items())), [r["folder_id"] for r in rows]


def received_redactions(main_file: Path, session_id: str) -> dict[str, int]:
    """The sender's counts, from the manifest beside the received session."""
    path = main_file.parent.parent / mf.MANIFESTS / f"{session_id}.json"
    try:
        data = path.read_bytes()[: 1 << 20]
        manifest = mf.decode(data)
    except (OSError, codec.InvalidData):
        return {}
    return dict(sorted(manifest.redaction.counts.items()))
