"""`share.preview`: what would be sent, and what redaction would replace, before it is."""

from __future__ import annotations

from pathlib import Path

from karmad import protocol
from karmad.domain import DomainError
from karmad.errors import not_found
from karmad.rpc.call import Call
from karmad.rpc.router import Router
from karmad.services import Services
from karmad.store import Row

MAX_SESSIONS = 500


def register(router: Router, svc: Services) -> None:
    def local_root() -> tuple[int, Path]:
        row = svc.index.store.query_one("SELECT id, path FROM roots WHERE origin = 'local'")
        if row is None:
            raise not_found("local session root", "(nothing indexed yet)")
        return int(row["id"]), Path(row["path"])

    def files_of(session_pk: int) -> list[Row]:
        return svc.index.store.query(
            "SELECT path, kind FROM files WHERE session_pk = ? AND missing = 0 ORDER BY path",
            (session_pk,),
        )

    @router.method("share.preview")
    def preview(params: protocol.SharePreviewParams, call: Call) -> protocol.PreviewStarted:
        if (params.session is None) == (params.project is None):
            raise DomainError("invalid_argument", "give exactly one of session or project")
        if not 0 <= params.max_lines <= 10_000:
            raise DomainError("invalid_argument", "max_lines must be 0-10000", field="max_lines")
        root_id, root = local_root()
        if params.session is not None:
            row = svc.index.resolve(params.session, "local")
            sessions = [(row, files_of(int(row["id"])))]
        else:
            assert params.project is not None
            rows = svc.index.store.query(
                "SELECT * FROM sessions WHERE root_id = ? AND project != '' ORDER BY last_ts DESC",
                (root_id,),
            )
            identity = svc.teams.name_project(params.project).identity
            wanted = [r for r in rows if r["project"] == identity]
            if not wanted:
                raise not_found("local session of project", params.project)
            sessions = [(r, files_of(int(r["id"]))) for r in wanted[:MAX_SESSIONS]]
        job = svc.previewer.start(sessions, root, params.max_lines)
        return protocol.PreviewStarted(job=job)

    @router.method("share.previewResult")
    def result(params: protocol.PreviewResultParams, call: Call) -> protocol.SharePreview:
        found = svc.previewer.result(params.job)
        if found is None:
            raise not_found("preview job", params.job)
        return found
