"""What `daemon.overview` says waits for the member, and how it counts peers and teams."""

from __future__ import annotations

from datetime import UTC, datetime

from karmad import overview, protocol

ME = protocol.IdentityInfo(initialised=True, user_id="bob", machine_tag="vm", member_tag="bob.vm")
KEY = "p" * 26


def member(tag: str, *, leader: bool = False, me: bool = False) -> protocol.MemberInfo:
    return protocol.MemberInfo(
        member_tag=tag,
        user_id=tag.split(".", 1)[0],
        device_id=f"DEV-{tag}",
        state="active",
        is_leader=leader,
        is_me=me,
        connected=None if me else True,
    )


def team(
    mine: protocol.SubscriptionStateName | None,
    leader_stance: str | None,
    *,
    i_lead: bool = False,
    phase: protocol.PhaseName = "member",
) -> protocol.TeamInfo:
    leader = member("alice.desk", leader=True, me=i_lead)
    if leader_stance:
        leader.subscriptions = {KEY: leader_stance}
    members = [leader] if i_lead else [leader, member("bob.vm", me=True)]
    return protocol.TeamInfo(
        team_id="t" * 26,
        name="core",
        role="leader" if i_lead else "member",
        phase=phase,
        state="active",
        leader_tag="alice.desk",
        leader_device="DEV-alice.desk",
        members=members,
        projects=[
            protocol.ProjectInfo(
                key=KEY,
                identity="github.com/acme/app",
                label="acme/app",
                state="shared",
                subscription=mine,
                direction="both" if mine else None,
            )
        ],
    )


def kinds(items: list[protocol.Attention]) -> list[str]:
    return [item.kind for item in items]


def test_nothing_waits_when_everyone_accepted() -> None:
    infos = [team("accepted", "accepted/both")]
    assert overview.attention(ME, infos, protocol.PendingList(devices=[], folders=[]), {}) == []


def test_an_offer_and_a_sharer_who_has_not_accepted() -> None:
    said = overview.attention(ME, [team("offered", "offered/both")], None, {})
    assert kinds(said) == ["offer", "sharer_not_accepted"]
    assert said[0].fix == "karmactl sub accept core github.com/acme/app  (or: sub decline)"
    assert "alice.desk shared github.com/acme/app with core but has not accepted it" in (
        said[1].message
    )
    # The leader's stance not known yet (their state file has not arrived): nothing said.
    assert kinds(overview.attention(ME, [team("accepted", None)], None, {})) == []


def test_the_leader_is_told_about_their_own_project() -> None:
    said = overview.attention(ME, [team("offered", None, i_lead=True)], None, {})
    assert kinds(said) == ["sharer_not_accepted"]
    assert said[0].message.startswith("you shared github.com/acme/app with core")
    assert said[0].fix == "karmactl sub accept core github.com/acme/app"


def test_identity_joining_pending_offers_and_failing_subsystems() -> None:
    nobody = protocol.IdentityInfo(initialised=False)
    pending = protocol.PendingList(
        devices=[protocol.PendingDeviceInfo(device_id="X")],
        folders=[
            protocol.PendingFolderInfo(folder_id="karma-x", managed=True, offered_by=[]),
            protocol.PendingFolderInfo(folder_id="photos", managed=False, offered_by=[]),
        ],
    )
    failing = {
        "syncthing": protocol.SubsystemState(state="failed", detail="exited 1"),
        "index": protocol.SubsystemState(state="idle"),
    }
    said = overview.attention(nobody, [team(None, None, phase="joining")], pending, failing)
    assert kinds(said) == ["not_initialised", "subsystem", "joining", "pending"]
    assert said[1].message == "syncthing is failed: exited 1"
    assert "1 device and 1 folder" in said[3].message


def test_peers_once_connected_first() -> None:
    seen = datetime(2026, 1, 1, tzinfo=UTC)
    one = team("accepted", None)
    other = team("accepted", None)
    other.name = "ops"
    carol = member("carol.lab")
    carol.connected = False
    other.members.append(carol)
    peers = overview.peers([one, other], {"DEV-carol.lab": seen})
    assert [(p.member_tag, p.teams) for p in peers] == [
        ("alice.desk", ["core", "ops"]),
        ("carol.lab", ["ops"]),
    ]
    assert peers[1].last_seen == seen
    assert [t.state for t in overview.teams([one, team(None, None, phase="joining")])] == [
        "active",
        "joining",
    ]
