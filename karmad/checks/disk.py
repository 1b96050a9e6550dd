"""Free space where karmad keeps its store, outboxes and inboxes."""

from __future__ import annotations

import os

from karmad.doctor import Doctor, fail, ok, warn
from karmad.protocol import DoctorCheck
from karmad.services import Core

_MIB = 1 << 20


def _size(n_bytes: int) -> str:
    value = n_bytes / _MIB
    for unit in ("MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def register(doctor: Doctor, svc: Core) -> None:
    state_dir = svc.paths.state_dir
    config = svc.config.doctor

    def free_space() -> list[DoctorCheck]:
        name = "disk.state_dir"
        try:
            st = os.statvfs(state_dir)
        except OSError as exc:
            return [fail(name, f"cannot examine {state_dir}: {exc.strerror}")]
        free = st.f_bavail * st.f_frsize
        total = st.f_blocks * st.f_frsize
        text = f"{_size(free)} free of {_size(total)} on the disk holding {state_dir}"
        fix = (
            "free some space on that disk, or move the state directory "
            "(`--state-dir` / $KARMAD_STATE_DIR) to a larger one"
        )
        if free < config.min_free_mb * _MIB:
            return [fail(name, f"only {text} (below {config.min_free_mb} MiB)", fix)]
        if free < config.warn_free_mb * _MIB:
            return [warn(name, f"only {text} (below {config.warn_free_mb} MiB)", fix)]
        return [ok(name, text)]

    doctor.register_blocking("disk", free_space)
