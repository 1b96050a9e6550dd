"""What the views say about sharing: redaction counts of packaged and received sessions."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from karmad import codec, protocol
from karmad.domain import folder_id
from karmad.flow import manifest as mf
from karmad.index import discovery
from karmad.store import Store
from karmad.sync.model import LocalTeam


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


def received_redactions(files: list[protocol.SessionFile], session_id: str) -> dict[str, int]:
    """The sender's counts, from the manifest in the inbox the received session is in.

    Any of the session's files locates it: a subagent transcript can arrive and be
    indexed before the main one.
    """
    if not files:
        return {}
    root = discovery.root_of(Path(files[0].path), files[0].kind)
    path = root / mf.MANIFESTS / f"{session_id}.json"
    try:
        data = path.read_bytes()[: 1 << 20]
        manifest = mf.decode(data)
    except (OSError, codec.InvalidData):
        return {}
    return dict(sorted(manifest.redaction.counts.items()))


def project_flows(
    teams: list[LocalTeam],
    me: str | None,
    state: Store,
    index: Store,
    completion: Callable[[str, str], float | None],
) -> list[protocol.ProjectFlow]:
    """Per team and shared project: sessions here, packaged, sent, received."""
    local = {
        r["project"]: int(r["n"])
        for r in index.query(
            "SELECT s.project, COUNT(DISTINCT s.session_id) AS n FROM sessions s "
            "JOIN roots r ON r.id = s.root_id WHERE r.origin = 'local' GROUP BY s.project"
        )
    }
    received: dict[str, dict[str, int]] = {}
    for r in index.query(
        "SELECT r.project, r.member_tag, COUNT(DISTINCT s.session_id) AS n FROM sessions s "
        "JOIN roots r ON r.id = s.root_id WHERE r.origin = 'remote' "
        "GROUP BY r.project, r.member_tag"
    ):
        received.setdefault(r["project"], {})[r["member_tag"]] = int(r["n"])
    packaged = {
        (r["folder_id"], r["project_key"]): int(r["n"])
        for r in state.query(
            "SELECT folder_id, project_key, COUNT(DISTINCT session_id) AS n "
            "FROM packaged_files GROUP BY folder_id, project_key"
        )
    }
    flows: list[protocol.ProjectFlow] = []
    for team in teams:
        record = team.record
        if record is None or me is None:
            continue
        own = folder_id(team.team_id, me)
        members = {m.device_id: m for m in record.active_members if m.device_id != me}
        for project in record.shared_projects:
            sub = team.subscription(project.key)
            flows.append(
                protocol.ProjectFlow(
                    team_id=team.team_id,
                    team_name=team.name,
                    key=project.key,
                    identity=project.identity,
                    subscription=f"{sub.state.value}/{sub.direction.value}" if sub else "",
                    sessions_local=local.get(project.identity, 0),
                    sessions_packaged=packaged.get((own, project.key), 0),
                    sent=[
                        protocol.DeviceCompletion(
                            member=m.member_tag, device=d, completion=completion(own, d)
                        )
                        for d, m in sorted(members.items(), key=lambda x: x[1].member_tag)
                    ],
                    received=[
                        protocol.ReceivedFrom(member=tag, sessions=n)
                        for tag, n in sorted(received.get(project.identity, {}).items())
                        if tag in {m.member_tag for m in members.values()}
                    ],
                )
            )
    return flows
