"""Putting a team in any phase of a real store the way karmad would: by declared steps."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from karmad.domain import Phase
from karmad.store import Store
from karmad.sync import teamstore
from karmad.sync.model import LocalTeam

STEPS: dict[Phase, tuple[Phase, ...]] = {
    Phase.JOINING: (Phase.JOINING,),
    Phase.MEMBER: (Phase.MEMBER,),
    Phase.LEAVING: (Phase.MEMBER, Phase.LEAVING),
    Phase.REMOVED: (Phase.JOINING, Phase.REMOVED),
    Phase.DISSOLVED: (Phase.MEMBER, Phase.DISSOLVED),
    Phase.GONE: (Phase.JOINING, Phase.GONE),
}
"""From the phase a team is recorded in to each phase."""


def record_team(store: Store, team: LocalTeam, now: datetime) -> None:
    """Insert `team` and bring it to its phase (`phase_since` kept)."""
    first, *rest = STEPS[team.phase]
    teamstore.insert_team(store, replace(team, phase=first), now)
    for phase in rest:
        teamstore.set_phase(store, team.team_id, phase, team.phase_since)
