"""Replacing a file so that readers see the old content or the new, never a mixture.

Write a temporary file beside the target, flush it to disk, then rename it over the
target: a crash (or a full disk) at any point leaves the old file intact, and the
temporary file is removed when the write fails.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(
    path: Path,
    data: bytes,
    mode: int = 0o600,
    *,
    temp_prefix: str | None = None,
    durable: bool = True,
) -> None:
    """`temp_prefix` names the temporary file, for directories where something else
    (Syncthing) must recognise and ignore half-written files by name.

    `durable=False` skips the fsyncs: the replacement is still atomic for every other
    process (and a crash of ours), only a power cut may lose it — for files whose
    loss is detected and repaired anyway (the packager's copies)."""
    prefix = f".{path.name}." if temp_prefix is None else f"{temp_prefix}{path.name}-"
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if not durable:
        return
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
