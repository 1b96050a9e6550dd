"""Integrity and schema version of the state store (the session index adds its own)."""

from __future__ import annotations

from pathlib import Path

from karmad.doctor import Doctor, fail, ok
from karmad.protocol import DoctorCheck
from karmad.services import Core
from karmad.store import StoreCorrupt, StoreError, inspect


def store_findings(name: str, path: Path, latest: int, *, precious: bool) -> list[DoctorCheck]:
    """`<name>.integrity` and `<name>.schema` for the SQLite file at `path`.

    `precious` says whether the file can be rebuilt (the index) or holds what exists
    nowhere else (identity, teams, subscriptions); the fix differs.
    """
    if precious:
        recover = (
            "stop karmad (`karmactl stop`), copy the file aside, then run "
            f"`sqlite3 {path} .recover | sqlite3 {path}.recovered` and move the recovered "
            "file into place; keep the damaged copy"
        )
    else:
        recover = f"stop karmad (`karmactl stop`) and delete {path}; it is rebuilt at start"
    try:
        found = inspect(path)
    except StoreCorrupt as exc:
        return [fail(f"{name}.integrity", f"{path} is damaged: {exc}", recover)]
    except StoreError as exc:
        return [
            fail(
                f"{name}.integrity",
                f"cannot read {path}: {exc}",
                "check the file's permissions and the disk it lives on",
            )
        ]
    findings: list[DoctorCheck] = []
    if found.problems:
        shown = "; ".join(found.problems[:3])
        more = f" (and {len(found.problems) - 3} more)" if len(found.problems) > 3 else ""
        findings.append(
            fail(f"{name}.integrity", f"PRAGMA quick_check on {path}: {shown}{more}", recover)
        )
    else:
        findings.append(ok(f"{name}.integrity", f"{path}: quick_check found no problems"))
    if found.schema_version > latest:
        findings.append(
            fail(
                f"{name}.schema",
                f"{path} has schema version {found.schema_version}, newer than this "
                f"karmad knows ({latest}): it was written by a newer karmad",
                "upgrade karmad to the version that wrote it, then restart the service",
            )
        )
    elif found.schema_version < latest:
        findings.append(
            fail(
                f"{name}.schema",
                f"{path} has schema version {found.schema_version}, older than this "
                f"karmad's ({latest}), although karmad migrates it when it starts",
                "restart karmad (`karmactl service restart`) and look at its log",
            )
        )
    else:
        findings.append(ok(f"{name}.schema", f"schema version {latest} (current)"))
    return findings


def register(doctor: Doctor, svc: Core) -> None:
    path = svc.store.path
    latest = svc.store.schema.latest

    def state_store() -> list[DoctorCheck]:
        return store_findings("store", path, latest, precious=True)

    doctor.register_blocking("store", state_store)
