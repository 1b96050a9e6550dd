"""Teams, members, shared projects, subscriptions and sync events, with their rules.

Dependency-free on purpose (standard library only): these are the rules of who may see
what, and they must be readable and testable without a daemon, a store or Syncthing.
Every value is immutable; every change is a function returning a new value, and a change
the rules do not allow raises `DomainError` with a stable reason instead of being
silently ignored.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeVar

# --------------------------------------------------------------------------- errors


class DomainError(Exception):
    """A rule was broken. `reason` matches a `protocol.ERRORS` reason string."""

    def __init__(self, reason: str, detail: str, *, field: str = "") -> None:
        self.reason = reason
        self.detail = detail
        self.field = field
        super().__init__(detail)


def _invalid(detail: str, field: str = "") -> DomainError:
    return DomainError("invalid_argument", detail, field=field)


# --------------------------------------------------------------------------- names

USER_ID = re.compile(r"[a-z0-9][a-z0-9_-]{1,31}")
MACHINE_TAG = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
MEMBER_TAG = re.compile(r"([a-z0-9][a-z0-9_-]{1,31})\.([a-z0-9][a-z0-9_-]{0,31})")
FOLDER_PREFIX = "karma-"
"""Every folder karmad manages, and only those, has an id with this prefix."""
FOLDER_ID = re.compile(re.escape(FOLDER_PREFIX) + r"[a-z2-7]{26}")
PROJECT_KEY = re.compile(r"p-[a-z2-7]{16}")
TEAM_ID = re.compile(r"[a-z2-7]{26}")
TEAM_NAME_MAX = 64


def validate_user_id(value: str) -> str:
    if not USER_ID.fullmatch(value):
        raise _invalid(
            "a user name has 2-32 characters: lowercase letters, digits, '_' and '-', "
            "starting with a letter or digit",
            "user",
        )
    return value


def machine_tag_from_hostname(hostname: str) -> str:
    """A stable, safe tag from whatever the hostname is (`Pete's MacBook.local` too)."""
    ascii_name = unicodedata.normalize("NFKD", hostname).encode("ascii", "ignore").decode()
    first = ascii_name.split(".", 1)[0].lower()
    tag = re.sub(r"[^a-z0-9_-]+", "-", first).strip("-_")
    tag = re.sub(r"-{2,}", "-", tag)[:32].strip("-_")
    return tag or "machine"


def validate_machine_tag(value: str) -> str:
    if not MACHINE_TAG.fullmatch(value):
        raise _invalid(
            "a machine tag has 1-32 characters: lowercase letters, digits, '_' and '-'",
            "machine",
        )
    return value


def member_tag(user_id: str, machine: str) -> str:
    return f"{validate_user_id(user_id)}.{validate_machine_tag(machine)}"


def split_member_tag(tag: str) -> tuple[str, str]:
    match = MEMBER_TAG.fullmatch(tag)
    if not match:
        raise _invalid(f"{tag!r} is not a member tag (user.machine)", "member")
    return match.group(1), match.group(2)


def validate_team_name(value: str) -> str:
    name = " ".join(value.split())
    if not name or len(name) > TEAM_NAME_MAX:
        raise _invalid(f"a team name has 1-{TEAM_NAME_MAX} characters", "name")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise _invalid("a team name cannot contain control characters", "name")
    return name


# --------------------------------------------------------------------------- derived ids


def _b32_digest(*parts: str, length: int) -> str:
    """A lowercase base32 hash of the parts; NUL-separated so no two inputs collide."""
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return base64.b32encode(digest).decode().lower()[:length]


def folder_id(team_id: str, owner_device: str) -> str:
    """The team folder of one member, computed identically on every machine.

    Derived rather than parsed: an offered folder is expected only when its id equals
    what the replicated state says should exist, and no delimiter can be abused.
    """
    return FOLDER_PREFIX + _b32_digest("team-folder", team_id, owner_device, length=26)


def project_key(identity: str) -> str:
    return "p-" + _b32_digest("project", identity, length=16)


def is_folder_id(value: str) -> bool:
    return FOLDER_ID.fullmatch(value) is not None


def is_project_key(value: str) -> bool:
    return PROJECT_KEY.fullmatch(value) is not None


def is_team_id(value: str) -> bool:
    return TEAM_ID.fullmatch(value) is not None


# --------------------------------------------------------------------------- states


class MemberState(enum.StrEnum):
    ADDED = "added"
    ACTIVE = "active"
    REMOVED = "removed"


class TeamState(enum.StrEnum):
    ACTIVE = "active"
    DISSOLVED = "dissolved"


class SubscriptionState(enum.StrEnum):
    OFFERED = "offered"
    ACCEPTED = "accepted"
    PAUSED = "paused"
    DECLINED = "declined"


class Direction(enum.StrEnum):
    SEND = "send"
    RECEIVE = "receive"
    BOTH = "both"

    @property
    def sends(self) -> bool:
        return self in (Direction.SEND, Direction.BOTH)

    @property
    def receives(self) -> bool:
        return self in (Direction.RECEIVE, Direction.BOTH)


class ProjectState(enum.StrEnum):
    SHARED = "shared"
    UNSHARED = "unshared"


class Phase(enum.StrEnum):
    """Where this machine stands in a team, from its own point of view."""

    JOINING = "joining"
    """Consented (invite code or accepted leader); waiting for the leader's roster."""
    MEMBER = "member"
    LEAVING = "leaving"
    """Asked to leave; waiting for the leader to see it (or the grace period)."""
    REMOVED = "removed"
    """The leader removed us; acknowledging before tearing down."""
    DISSOLVED = "dissolved"
    GONE = "gone"
    """Torn down; kept only for history."""


MEMBER_TRANSITIONS: frozenset[tuple[MemberState, MemberState]] = frozenset(
    {
        (MemberState.ADDED, MemberState.ACTIVE),
        (MemberState.ACTIVE, MemberState.REMOVED),
        (MemberState.ADDED, MemberState.REMOVED),
    }
)

SUBSCRIPTION_TRANSITIONS: frozenset[tuple[SubscriptionState, SubscriptionState]] = frozenset(
    {
        (SubscriptionState.OFFERED, SubscriptionState.ACCEPTED),
        (SubscriptionState.ACCEPTED, SubscriptionState.PAUSED),
        (SubscriptionState.PAUSED, SubscriptionState.ACCEPTED),
        (SubscriptionState.OFFERED, SubscriptionState.DECLINED),
        (SubscriptionState.ACCEPTED, SubscriptionState.DECLINED),
        (SubscriptionState.PAUSED, SubscriptionState.DECLINED),
        (SubscriptionState.DECLINED, SubscriptionState.OFFERED),
    }
)

TEAM_TRANSITIONS: frozenset[tuple[TeamState, TeamState]] = frozenset(
    {(TeamState.ACTIVE, TeamState.DISSOLVED)}
)

PROJECT_TRANSITIONS: frozenset[tuple[ProjectState, ProjectState]] = frozenset(
    {(ProjectState.SHARED, ProjectState.UNSHARED), (ProjectState.UNSHARED, ProjectState.SHARED)}
)

PHASE_TRANSITIONS: frozenset[tuple[Phase, Phase]] = frozenset(
    {
        # the leader's roster lists us; we asked to leave
        (Phase.JOINING, Phase.MEMBER),
        (Phase.MEMBER, Phase.LEAVING),
        # the leader removed us, or recorded that we left
        (Phase.JOINING, Phase.REMOVED),
        (Phase.MEMBER, Phase.REMOVED),
        (Phase.LEAVING, Phase.REMOVED),
        # the leader dissolved the team (also after removing us: we acknowledge that)
        (Phase.JOINING, Phase.DISSOLVED),
        (Phase.MEMBER, Phase.DISSOLVED),
        (Phase.LEAVING, Phase.DISSOLVED),
        (Phase.REMOVED, Phase.DISSOLVED),
        # torn down: acknowledged, given up while joining, or the grace period passed
        *((phase, Phase.GONE) for phase in Phase if phase is not Phase.GONE),
    }
)

INITIAL_PHASES: frozenset[Phase] = frozenset({Phase.JOINING, Phase.MEMBER})
"""A team is recorded joining (a member that consented) or as a member (its leader)."""

DEPARTING: frozenset[Phase] = frozenset({Phase.LEAVING, Phase.REMOVED, Phase.DISSOLVED})
"""On the way out: all that is left is to tell the leader, then tear down."""

ENDED: frozenset[Phase] = frozenset({Phase.REMOVED, Phase.DISSOLVED})
"""The leader ended our membership: we acknowledge it, then tear down."""

LISTED: frozenset[Phase] = frozenset({Phase.MEMBER, Phase.LEAVING})
"""On the leader's roster and publishing our state: newly shared projects are offered."""


S = TypeVar("S", bound=enum.StrEnum)


def _check(allowed: frozenset[tuple[S, S]], what: str, current: S, target: S) -> None:
    """The one check of every state machine's transitions (their tables above)."""
    if (current, target) not in allowed:
        raise DomainError(
            "invalid_transition", f"{what} cannot go from {current.value} to {target.value}"
        )


def can_change_phase(current: Phase, target: Phase) -> bool:
    return (current, target) in PHASE_TRANSITIONS


def check_phase(current: Phase, target: Phase) -> None:
    """Raise unless `current -> target` is declared (staying in a phase always is)."""
    if current is not target:
        _check(PHASE_TRANSITIONS, "this member's phase in the team", current, target)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Member:
    member_tag: str
    device_id: str
    state: MemberState
    added_at: datetime
    changed_at: datetime
    addresses: tuple[str, ...] = ()
    """Where the member listens, when discovery cannot find it (lan-only profiles)."""

    @property
    def user_id(self) -> str:
        return self.member_tag.split(".", 1)[0]

    def to(self, state: MemberState, now: datetime) -> Member:
        _check(MEMBER_TRANSITIONS, f"member {self.member_tag}", self.state, state)
        return replace(self, state=state, changed_at=now)


@dataclass(frozen=True, slots=True)
class SharedProject:
    key: str
    identity: str
    """Normalised git remote (`host/owner/repo`), or a path for repositories without one."""
    label: str
    state: ProjectState
    shared_at: datetime
    include_todos: bool = False
    include_plans: bool = False

    def to(self, state: ProjectState, now: datetime) -> SharedProject:
        _check(PROJECT_TRANSITIONS, f"project {self.identity}", self.state, state)
        return replace(
            self, state=state, shared_at=now if state is ProjectState.SHARED else self.shared_at
        )


@dataclass(frozen=True, slots=True)
class Subscription:
    """One member's stance on one shared project in one team."""

    team_id: str
    project_key: str
    state: SubscriptionState = SubscriptionState.OFFERED
    direction: Direction = Direction.BOTH
    changed_at: datetime | None = None

    @property
    def sends(self) -> bool:
        return self.state is SubscriptionState.ACCEPTED and self.direction.sends

    @property
    def receives(self) -> bool:
        return self.state is SubscriptionState.ACCEPTED and self.direction.receives

    def to(self, state: SubscriptionState, now: datetime) -> Subscription:
        """`state`, or this subscription unchanged when it is in that state already (asking
        twice is not an error)."""
        if state is self.state:
            return self
        _check(SUBSCRIPTION_TRANSITIONS, "subscription", self.state, state)
        return replace(self, state=state, changed_at=now)

    def accept(self, direction: Direction, now: datetime) -> Subscription:
        if self.state is SubscriptionState.ACCEPTED and direction is not self.direction:
            raise DomainError(
                "invalid_transition",
                f"already accepted ({self.direction.value}); to {direction.value} instead, "
                f"change the direction: karmactl sub direction TEAM PROJECT -d {direction.value}",
            )
        if self.state is SubscriptionState.ACCEPTED:
            return self
        return replace(self.to(SubscriptionState.ACCEPTED, now), direction=direction)

    def resume(self, now: datetime) -> Subscription:
        """Accepted again after a pause; an offer is accepted, not resumed."""
        if self.state is SubscriptionState.ACCEPTED:
            return self
        if self.state is not SubscriptionState.PAUSED:
            raise DomainError(
                "invalid_transition", f"only a paused subscription resumes ({self.state.value})"
            )
        return self.to(SubscriptionState.ACCEPTED, now)

    def with_direction(self, direction: Direction, now: datetime) -> Subscription:
        if self.state is not SubscriptionState.ACCEPTED:
            raise DomainError(
                "invalid_transition",
                f"the direction can change only while accepted (this one is {self.state.value})",
            )
        if direction is self.direction:
            return self
        return replace(self, direction=direction, changed_at=now)


@dataclass(frozen=True, slots=True)
class Team:
    """The team record as its leader keeps it (and publishes it in its state file)."""

    team_id: str
    """Random incarnation id: a new team with an old name never inherits its files."""
    name: str
    leader_tag: str
    leader_device: str
    state: TeamState
    created_at: datetime
    members: tuple[Member, ...] = ()
    projects: tuple[SharedProject, ...] = ()
    dissolved_at: datetime | None = None

    def member(self, device_id: str) -> Member | None:
        return next((m for m in self.members if m.device_id == device_id), None)

    def member_by_tag(self, tag: str) -> Member | None:
        return next((m for m in self.members if m.member_tag == tag), None)

    def project(self, key: str) -> SharedProject | None:
        return next((p for p in self.projects if p.key == key), None)

    @property
    def active_members(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.state is MemberState.ACTIVE)

    @property
    def shared_projects(self) -> tuple[SharedProject, ...]:
        return tuple(p for p in self.projects if p.state is ProjectState.SHARED)

    def is_leader(self, device_id: str) -> bool:
        return device_id == self.leader_device

    # -- changes (the caller has checked that it is the leader) ----------------------

    def _require_active(self) -> None:
        if self.state is not TeamState.ACTIVE:
            raise DomainError("invalid_transition", f"team {self.name} is dissolved")

    def _with_member(self, member: Member) -> Team:
        others = tuple(m for m in self.members if m.device_id != member.device_id)
        return replace(self, members=(*others, member))

    def add_member(
        self, tag: str, device_id: str, now: datetime, addresses: tuple[str, ...] = ()
    ) -> Team:
        self._require_active()
        existing = self.member(device_id)
        if existing is not None:
            if existing.state is MemberState.REMOVED:
                raise DomainError(
                    "invalid_transition",
                    f"{existing.member_tag} left or was removed from {self.name}, and that "
                    "device cannot rejoin the same team; create a new team for it (see "
                    "docs/starting-over.md)",
                )
            if existing.member_tag != tag:
                raise DomainError(
                    "conflict", f"that device is already in the team as {existing.member_tag}"
                )
            return self  # idempotent
        clash = self.member_by_tag(tag)
        if clash is not None and clash.state is not MemberState.REMOVED:
            raise DomainError(
                "conflict", f"{tag} is already in the team with another device", field="code"
            )
        member = Member(tag, device_id, MemberState.ADDED, now, now, addresses)
        return replace(self, members=(*self.members, member))

    def activate(self, device_id: str, now: datetime) -> Team:
        member = self.member(device_id)
        if member is None:
            raise DomainError("not_found", f"no member with device {device_id}")
        if member.state is MemberState.ACTIVE:
            return self
        return self._with_member(member.to(MemberState.ACTIVE, now))

    def remove_member(self, device_id: str, now: datetime) -> Team:
        self._require_active()
        member = self.member(device_id)
        if member is None:
            raise DomainError("not_found", f"no member with device {device_id}")
        if device_id == self.leader_device:
            raise DomainError(
                "invalid_transition", "the leader cannot remove itself; dissolve the team instead"
            )
        if member.state is MemberState.REMOVED:
            return self
        return self._with_member(member.to(MemberState.REMOVED, now))

    def share(self, identity: str, label: str, now: datetime) -> Team:
        self._require_active()
        key = project_key(identity)
        existing = self.project(key)
        if existing is None:
            project = SharedProject(key, identity, label, ProjectState.SHARED, now)
            return replace(self, projects=(*self.projects, project))
        if existing.state is ProjectState.SHARED:
            return self
        changed = existing.to(ProjectState.SHARED, now)
        return replace(self, projects=tuple(changed if p.key == key else p for p in self.projects))

    def unshare(self, key: str, now: datetime) -> Team:
        self._require_active()
        existing = self.project(key)
        if existing is None:
            raise DomainError("not_found", f"project {key} is not shared with {self.name}")
        if existing.state is ProjectState.UNSHARED:
            return self
        changed = existing.to(ProjectState.UNSHARED, now)
        return replace(self, projects=tuple(changed if p.key == key else p for p in self.projects))

    def set_project_options(self, key: str, *, todos: bool, plans: bool) -> Team:
        existing = self.project(key)
        if existing is None:
            raise DomainError("not_found", f"project {key} is not shared with {self.name}")
        changed = replace(existing, include_todos=todos, include_plans=plans)
        return replace(self, projects=tuple(changed if p.key == key else p for p in self.projects))

    def dissolve(self, now: datetime) -> Team:
        if self.state is TeamState.DISSOLVED:
            return self
        _check(TEAM_TRANSITIONS, f"team {self.name}", self.state, TeamState.DISSOLVED)
        return replace(self, state=TeamState.DISSOLVED, dissolved_at=now)


def new_team(
    team_id: str,
    name: str,
    leader_tag: str,
    leader_device: str,
    now: datetime,
    addresses: tuple[str, ...] = (),
) -> Team:
    if not is_team_id(team_id):
        raise _invalid("a team id is 26 lowercase base32 characters", "team_id")
    leader = Member(leader_tag, leader_device, MemberState.ACTIVE, now, now, addresses)
    return Team(
        team_id=team_id,
        name=validate_team_name(name),
        leader_tag=leader_tag,
        leader_device=leader_device,
        state=TeamState.ACTIVE,
        created_at=now,
        members=(leader,),
    )


# --------------------------------------------------------------------------- audit


class EventKind(enum.StrEnum):
    TEAM_CREATED = "team.created"
    TEAM_JOINED = "team.joined"
    TEAM_LEFT = "team.left"
    TEAM_DISSOLVED = "team.dissolved"
    TEAM_CLEANED_UP = "team.cleaned_up"
    MEMBER_ADDED = "member.added"
    MEMBER_ACTIVATED = "member.activated"
    MEMBER_REMOVED = "member.removed"
    PROJECT_SHARED = "project.shared"
    PROJECT_UNSHARED = "project.unshared"
    SUBSCRIPTION_CHANGED = "subscription.changed"
    OFFER_ACCEPTED = "offer.accepted"
    OFFER_REJECTED = "offer.rejected"
    OFFER_DISMISSED = "offer.dismissed"
    STATE_REJECTED = "state.rejected"
    FOLDER_OVERRIDDEN = "folder.overridden"
    SESSION_PACKAGED = "session.packaged"
    SESSION_RECEIVED = "session.received"
    SESSION_REJECTED = "session.rejected"
    KEEPER_ADDED = "keeper.added"
    KEEPER_REMOVED = "keeper.removed"


@dataclass(frozen=True, slots=True)
class SyncEvent:
    """An append-only audit record; never updated, never deleted by the daemon."""

    kind: EventKind
    time: datetime
    team_id: str | None = None
    member_tag: str | None = None
    device_id: str | None = None
    project_key: str | None = None
    detail: dict[str, str] = field(default_factory=dict)
