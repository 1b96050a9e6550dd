"""Golden files: expected output kept beside the tests, rewritten on purpose only.

`KARMAD_UPDATE_GOLDEN=1` rewrites them after a deliberate change of output; review the
diff as you would code.
"""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("KARMAD_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with KARMAD_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from {path} (KARMAD_UPDATE_GOLDEN=1)"
