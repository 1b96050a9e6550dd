"""Long output for people: through `$PAGER` (or `less`) when stdout is a terminal."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import TextIO


@contextlib.contextmanager
def paged(enabled: bool = True) -> Iterator[TextIO]:
    """A stream to write to; a pager's input when useful, else stdout.

    `less -R -F -X` keeps colours, exits at once when everything fits on one screen and
    leaves the text on the terminal afterwards. Quitting the pager early ends the
    writing quietly (the caller sees BrokenPipeError only if it keeps writing).
    """
    command = os.environ.get("PAGER") or ("less -R -F -X" if shutil.which("less") else "")
    if not enabled or not sys.stdout.isatty() or not command or command.strip() == "cat":
        yield sys.stdout
        return
    env = dict(os.environ)
    env.setdefault("LESS", "-R -F -X")
    process = subprocess.Popen(
        shlex.split(command), stdin=subprocess.PIPE, text=True, encoding="utf-8", env=env
    )
    stream = process.stdin
    assert stream is not None
    try:
        yield stream  # type: ignore[misc]  # a text pipe is a TextIO
    except BrokenPipeError:
        pass
    finally:
        with contextlib.suppress(BrokenPipeError):
            stream.close()
        process.wait()
