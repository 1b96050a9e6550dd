"""Faults of real networks, on karmad nodes each in its own network namespace.

Short variants of tests/support/faults.py's scenarios, for every run: each asserts that
nothing written is lost, duplicated, half-written or attributed wrongly on any member
entitled to it, that nothing shows where it is not entitled, and that Syncthing's
configuration converges to exactly what the design says. bench/faults.py runs the long
variants and reports the convergence times.
"""

from __future__ import annotations

import pytest

from tests.support import faults
from tests.support.netns import Net

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", list(faults.SCENARIOS))
def test_a_team_survives(netns_rig: Net, name: str) -> None:
    outcome = faults.SCENARIOS[name](netns_rig, faults.SHORT)
    netns_rig.assert_isolated()
    print(
        f"{outcome.scenario}: converged {outcome.converge_s:.1f} s after the fault ended "
        f"({outcome.sessions} sessions, {outcome.lines} lines) {outcome.figures}"
    )
