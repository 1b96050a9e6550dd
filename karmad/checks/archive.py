"""The archive of own sessions: does it hold every transcript Claude Code wrote here?"""

from __future__ import annotations

from karmad import protocol
from karmad.doctor import Doctor, listed, ok, warn
from karmad.protocol import DoctorCheck
from karmad.services import Services

NAME = "archive.coverage"


def coverage_findings(status: protocol.ArchiveStatus) -> list[DoctorCheck]:
    if not status.enabled:
        return [
            ok(
                NAME,
                "the archive is turned off (archive.enabled = false): sessions Claude Code "
                "deletes are lost unless a team received them",
            )
        ]
    kept = f"{status.sessions} sessions archived"
    if status.gone_total:
        kept += f", {status.gone_total} of them gone from Claude Code's folder"
    if status.uncovered_total:
        return [
            warn(
                NAME,
                f"{status.uncovered_total} transcript(s) are not archived: "
                + listed(status.uncovered),
                "karmad's log says why (`archive_file_failed`); `karmactl archive status` "
                "tries again",
            )
        ]
    excluded = f"; {status.excluded_files} file(s) of excluded projects" if status.excluded else ""
    pending = f" ({status.pending} new file(s) on the way)" if status.pending else ""
    return [ok(NAME, f"{kept}; every own transcript is covered{pending}{excluded}")]


def register(doctor: Doctor, svc: Services) -> None:
    def coverage() -> list[DoctorCheck]:
        if not svc.config.archive.enabled:
            return coverage_findings(svc.archiver.status)
        return coverage_findings(svc.archiver.survey())

    doctor.register_blocking(NAME, coverage)
