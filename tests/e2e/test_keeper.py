"""A team's keeper on loopback: real member karmads and a keeper-mode karmad (docs/keeper.md).

Members receive what a teammate wrote while they were away from the keeper K alone (the
writer is off by then), redacted and complete; a member joins through K while the leader
is off; a removed member gets nothing new through K; K restarted mid-way catches up. K's
whole disk holds none of the names or contents it carried.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from typing import Any

import pytest

from karmad.domain import project_key
from karmad.keeper.plan import keeper_folder_id
from karmad.sync.keeper_side import FALLBACK_AFTER
from tests.support.keeper import (
    KEEPER_CONFIG,
    Session,
    add_keeper,
    come_back,
    expected,
    found_in,
    go_offline,
    holds,
    inbox_file,
    k_devices,
    k_folder,
    k_shares,
    keeper_listed,
    keeper_view,
    outbox_settled,
    received,
    team_folder,
)
from tests.support.secrets import FakeSecret, SecretFactory, find_leaks_in_tree, plant_records
from tests.support.sessions import SessionWriter, corpus_records, make_checkout
from tests.support.syncthing import Cluster, Node, wait_until
from tests.support.teams import (
    CONVERGE_S,
    device,
    folders_dir,
    form_team,
    init,
    karma_config,
    member_states,
    share_and_accept,
    team,
)

# Everything below is planted so that K's disk can be searched for it: the team's name,
# the members' names, the project's name, and a marker inside session content.
TEAM = "zqplantedteam"
USERS = ("zqalice", "zqbob", "zqcarol")
REMOTE = "git@github.com:zqplantedorg/zqplantedrepo.git"
IDENTITY = "github.com/zqplantedorg/zqplantedrepo"
MARKER = "ZQPLANTEDCONTENTLINE"
LATER_MARKER = "ZQPLANTEDLATERLINE"

FAST_TEAMS = "[teams]\nack_linger_s = 8\n"

REJOIN_S = CONVERGE_S * 2
"""A node coming back: its karmad and Syncthing start, then connections are dialled."""

FAST_SWEEP = "sweep_interval_s = 2\n"
"""A keeper checks what it holds every minute; a test need not wait that long."""

FALLBACK_S = REJOIN_S + FALLBACK_AFTER.total_seconds()
"""A member back with an old epoch first waits this long before it lists K on the keeper
folder alone (docs/keeper.md 2.6, step 4)."""


def start_keeper(syncthing_cluster: Callable[..., Cluster], config: str = KEEPER_CONFIG) -> Node:
    k = syncthing_cluster(1, karmad=True, config=config).nodes[0]
    k.name = "keeper"
    return k


def marked(records: list[dict[str, Any]], marker: str) -> dict[str, Any]:
    """A prompt that carries `marker` in its text (nothing a redactor would touch)."""
    prompt = next(r for r in records if r.get("type") == "user")
    message = dict(prompt.get("message") or {"role": "user"})
    message["content"] = f"Please look at {marker} before the release"
    return dict(prompt, message=message)


class Alice:
    """The leader writing sessions of the shared project, and what they become once
    redacted."""

    def __init__(self, node: Node, seed: int = 7) -> None:
        assert node.karmad is not None
        self.node = node
        self.checkout = make_checkout(node.karmad.home.root / "src", REMOTE)
        self.records = list(corpus_records(80))
        self.rng = random.Random(seed)
        self.written: dict[str, list[bytes]] = {}
        self.writers: dict[str, SessionWriter] = {}

    def session(self) -> SessionWriter:
        assert self.node.karmad is not None
        writer = SessionWriter(self.node.karmad.home.claude, self.checkout)
        self.writers[writer.session_id] = writer
        self.written[writer.session_id] = []
        return writer

    def append(self, writer: SessionWriter, *records: dict[str, Any]) -> None:
        self.written[writer.session_id] += writer.append(*records)

    def plant(self, writer: SessionWriter, secrets: list[FakeSecret]) -> None:
        for secret in secrets:
            self.append(writer, *plant_records(self.records, secret, self.rng))

    def sessions(self) -> list[Session]:
        return [(w, expected(self.written[sid])) for sid, w in self.writers.items()]


def team_with_keeper(
    syncthing_cluster: Callable[..., Cluster], count: int, keeper_config: str = KEEPER_CONFIG
) -> tuple[list[Node], Node, str]:
    """`count` members (the first leads) in a team sharing the project both ways, and a
    keeper every member lists with the current epoch."""
    nodes = syncthing_cluster(count, karmad=True, config=FAST_TEAMS).nodes
    for node, user in zip(nodes, USERS, strict=False):
        init(node, user)
    team_id = form_team(*nodes, name=TEAM)
    share_and_accept(nodes[0], team_id, IDENTITY, [(n, "both") for n in nodes])
    k = start_keeper(syncthing_cluster, keeper_config)
    add_keeper(nodes[0], k, team_id)
    wait_until(
        lambda: keeper_listed(nodes, team_id) and k_shares_all(k, nodes, team_id),
        CONVERGE_S,
        message="every member lists the keeper, and K holds every team folder",
    )
    return nodes, k, team_id


def k_shares_all(k: Node, readers: list[Node], team_id: str) -> bool:
    """K holds every reader's team folder, each shared with exactly the readers (its
    owner, who sends it, and everyone who receives it)."""
    return all(k_shares(k, team_folder(n, team_id), readers) for n in readers)


def k_holds_sessions(k: Node, alice: Alice, team_id: str) -> bool:
    a = alice.node
    return outbox_settled(a, team_id, IDENTITY, alice.sessions()) and holds(
        k, a, team_folder(a, team_id)
    )


def planted_names() -> list[str]:
    return [TEAM, *USERS, "zqplantedorg", "zqplantedrepo", project_key(IDENTITY), MARKER]


def assert_k_knows_nothing(k: Node, control: Node) -> None:
    """K's whole root (home, karmad's state and log, Syncthing's database, configuration,
    log and ciphertext) holds none of the planted names; the same search finds them on a
    member, so it sees what it looks for."""
    go_offline(k)  # everything K had in memory is on its disk now
    assert found_in(k.root, planted_names()) == []
    assert found_in(folders_dir(control), [MARKER]) != []


def test_bob_receives_everything_through_the_keeper_alone(
    syncthing_cluster: Callable[..., Cluster],
) -> None:
    (a, b), k, team_id = team_with_keeper(syncthing_cluster, 2)
    alice = Alice(a)
    secrets = SecretFactory(7).all()

    # A session Bob receives directly, which then grows while he is away.
    first = alice.session()
    alice.append(first, *alice.records[:10])
    wait_until(
        lambda: received(b, a, team_id, IDENTITY, alice.sessions()),
        CONVERGE_S,
        message="bob receives the first lines directly",
    )

    go_offline(b)
    alice.append(first, *alice.records[10:30])
    second = alice.session()
    second.subagent("a1b2c3", *alice.records[60:70])
    alice.append(second, *alice.records[30:40], marked(alice.records, MARKER))
    alice.plant(second, secrets)
    alice.append(second, *alice.records[40:60])
    wait_until(
        lambda: k_holds_sessions(k, alice, team_id),
        CONVERGE_S,
        message="K holds all of alice's sessions",
    )
    go_offline(a)

    come_back(b)
    wait_until(
        lambda: received(b, a, team_id, IDENTITY, alice.sessions()),
        REJOIN_S,
        message="bob receives every line through K",
    )
    # Only alice (off) and K could have sent it: nobody else is on bob's inbox.
    inbox = karma_config(b)[1][team_folder(a, team_id)]
    assert {d["deviceID"] for d in inbox["devices"]} == {b.device_id, a.device_id, k.device_id}
    assert not b.connected_to(a)
    assert b.connected_to(k)
    main = inbox_file(b, a, team_id, IDENTITY, second).read_bytes()
    assert b"[REDACTED:" in main and MARKER.encode() in main
    agent = inbox_file(b, a, team_id, IDENTITY, second).parent / second.session_id / "subagents"
    assert (agent / "agent-a1b2c3.jsonl").exists()
    leaks = find_leaks_in_tree(folders_dir(b), secrets)
    assert not leaks, [str(x) for x in leaks[:5]]
    assert {s["member"] for s in b.call("session.list", {"origin": "remote"})["sessions"]} == {
        f"{USERS[0]}.n1"
    }
    # Bob's view of the keeper: connected, seen, holding alice's folder at his key.
    (view,) = b.call("keeper.status")["teams"]
    assert view["connected"] is True and view["last_seen"] is not None
    assert view["listed"] is True and view["epoch"] == 1
    held = {f["folder_id"]: f for f in view["folders"]}
    assert held[team_folder(a, team_id)]["kind"] == "content"

    assert_k_knows_nothing(k, b)
    assert find_leaks_in_tree(k.root, secrets) == []


def test_keeper_restarted_mid_way_catches_up_and_serves(
    syncthing_cluster: Callable[..., Cluster],
) -> None:
    (a, b), k, team_id = team_with_keeper(syncthing_cluster, 2)
    alice = Alice(a)
    go_offline(b)

    writer = alice.session()
    alice.append(writer, *alice.records[:20])
    wait_until(lambda: k_holds_sessions(k, alice, team_id), CONVERGE_S, message="K holds part 1")

    # K goes down while alice goes on writing, and comes back while she is still there.
    go_offline(k)
    alice.append(writer, *alice.records[20:40])
    later = alice.session()
    alice.append(later, *alice.records[40:50])
    come_back(k)
    wait_until(
        lambda: k_holds_sessions(k, alice, team_id),
        REJOIN_S,
        message="K, restarted, catches up with alice",
    )
    go_offline(a)

    come_back(b)
    wait_until(
        lambda: received(b, a, team_id, IDENTITY, alice.sessions()),
        REJOIN_S,
        message="bob receives everything through the restarted K",
    )
    assert b.connected_to(k) and not b.connected_to(a)


def test_carol_joins_through_the_keeper_and_removed_bob_gets_nothing_new(
    syncthing_cluster: Callable[..., Cluster],
) -> None:
    (a, b), k, team_id = team_with_keeper(syncthing_cluster, 2)
    c = syncthing_cluster(1, karmad=True, config=FAST_TEAMS).nodes[0]
    c.name = "n3"
    carol_tag = init(c, USERS[2])
    bob_tag = f"{USERS[1]}.n2"
    alice = Alice(a)
    before = alice.session()
    alice.append(before, *alice.records[:20], marked(alice.records, MARKER))
    wait_until(lambda: received(b, a, team_id, IDENTITY, alice.sessions()), CONVERGE_S)

    # b. Alice adds carol, hands her the invite (it names K), and goes away.
    code = c.call("pair.code")["code"]
    invite = a.call("team.addMember", {"team": team_id, "code": code})["invite"]
    bob = device(b)
    kfid = keeper_folder_id(team_id)
    wait_until(
        lambda: (
            k_shares(k, team_folder(a, team_id), [a, b, c])
            and holds(k, a, team_folder(a, team_id))
            and holds_plain(k, a, kfid)
        ),
        CONVERGE_S,
        message="K serves alice's folder to carol, with the key sealed for her",
    )
    go_offline(a)

    c.call("team.join", {"invite": invite})
    wait_until(
        lambda: team(c, team_id)["phase"] == "member",
        REJOIN_S,
        message="carol learns the team through K",
    )
    key = project_key(IDENTITY)
    wait_until(
        lambda: any(
            s["project_key"] == key
            for s in c.call("subscription.list", {"team": team_id})["subscriptions"]
        ),
        CONVERGE_S,
        message="carol is offered the shared project",
    )
    c.call("subscription.accept", {"team": team_id, "project": key, "direction": "both"})
    wait_until(
        lambda: received(c, a, team_id, IDENTITY, alice.sessions()),
        REJOIN_S,
        message="carol receives alice's sessions through K, alice away",
    )
    # Only alice (off) and K could have sent it: nobody else is on carol's inbox.
    inbox = karma_config(c)[1][team_folder(a, team_id)]
    assert {d["deviceID"] for d in inbox["devices"]} == {c.device_id, a.device_id, k.device_id}
    assert not c.connected_to(a)
    assert keeper_listed([c], team_id)

    # c. Alice comes back, sees carol active, removes bob: a new epoch.
    come_back(a)
    wait_until(
        lambda: member_states(a, team_id).get(carol_tag) == "active",
        REJOIN_S,
        message="alice marks carol active",
    )
    first_epoch = keeper_view(a, team_id)["epoch"]  # type: ignore[index]
    a.call("team.removeMember", {"team": team_id, "member": bob_tag})
    wait_until(
        lambda: (
            keeper_listed([a, c], team_id, first_epoch + 1)
            and bob not in k_devices(k)
            and k_shares_all(k, [a, c], team_id)
        ),
        CONVERGE_S,
        message="a new epoch on alice and carol; K drops bob from everything",
    )
    wait_until(lambda: not k.connected_to(b), CONVERGE_S, message="bob's link to K closes")
    wait_until(
        lambda: bob not in karma_config(a)[0], CONVERGE_S, message="alice drops bob's device"
    )

    # New sessions while carol is away reach her through K; bob gets none of them.
    go_offline(c)
    after = alice.session()
    alice.append(after, *alice.records[30:50], marked(alice.records, LATER_MARKER))
    wait_until(
        lambda: k_holds_sessions(k, alice, team_id),
        REJOIN_S,
        message="K, re-created for the new epoch, holds alice's sessions again",
    )
    go_offline(a)
    come_back(c)
    wait_until(
        lambda: received(c, a, team_id, IDENTITY, alice.sessions()),
        REJOIN_S,
        message="carol receives the new session through K",
    )
    assert after.session_id not in {
        s["id"] for s in b.call("session.list", {"origin": "remote"})["sessions"]
    }
    assert found_in(b.root, [LATER_MARKER]) == []
    assert found_in(folders_dir(c), [LATER_MARKER]) != []
    assert_k_knows_nothing(k, c)


def holds_plain(k: Node, owner: Node, folder_id: str) -> bool:
    """K holds the owner's plaintext folder (the keeper folder) as the owner has it."""
    seen = owner.rest.get("/rest/db/completion", folder=folder_id, device=k.device_id)
    return bool(seen["completion"] >= 100 and not seen["needItems"] and seen["globalItems"] > 0)


def test_member_away_during_a_rotation_reads_the_new_key_through_the_fallback(
    syncthing_cluster: Callable[..., Cluster],
) -> None:
    (a, _, c), k, team_id = team_with_keeper(syncthing_cluster, 3)
    first_epoch = keeper_view(c, team_id)["epoch"]  # type: ignore[index]
    go_offline(c)

    # Bob is removed while carol is away: K now wants the next epoch's passwords.
    a.call("team.removeMember", {"team": team_id, "member": f"{USERS[1]}.n2"})
    wait_until(
        lambda: keeper_listed([a], team_id, first_epoch + 1) and k_shares_all(k, [a, c], team_id),
        CONVERGE_S,
        message="alice at the new epoch, K re-created for alice and carol",
    )
    alice = Alice(a)
    writer = alice.session()
    alice.append(writer, *alice.records[:20], marked(alice.records, MARKER))
    wait_until(
        lambda: k_holds_sessions(k, alice, team_id),
        REJOIN_S,
        message="K holds alice's session under the new passwords",
    )
    go_offline(a)

    # Carol meets K with the old passwords: K drops the link; she falls back to the
    # keeper folder alone, opens the new key, lists K again and catches up.
    come_back(c)
    wait_until(
        lambda: received(c, a, team_id, IDENTITY, alice.sessions()),
        FALLBACK_S,
        message="carol receives alice's session through K after the fallback",
    )
    assert keeper_listed([c], team_id, first_epoch + 1)
    events = [e["event"] for e in c.karmad.log_events()]  # type: ignore[union-attr]
    assert "keeper_fallback" in events and "keeper_relisted" in events


def _wipe_folder(k: Node, fid: str) -> None:
    folder = k_folder(k, fid)
    assert folder is not None
    shutil.rmtree(folder["path"])


def _lose_database(k: Node, fid: str) -> None:
    go_offline(k)
    shutil.rmtree(k.syncthing_home / "index-v0.14.0.db")
    come_back(k)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_wipe_folder, id="folder-wiped"),
        pytest.param(_lose_database, id="database-lost"),
    ],
)
def test_keeper_that_lost_its_data_refills_and_serves(
    syncthing_cluster: Callable[..., Cluster], damage: Callable[[Node, str], None]
) -> None:
    (a, b), k, team_id = team_with_keeper(syncthing_cluster, 2, KEEPER_CONFIG + FAST_SWEEP)
    alice = Alice(a)
    go_offline(b)
    writer = alice.session()
    alice.append(writer, *alice.records[:30], marked(alice.records, MARKER))
    wait_until(lambda: k_holds_sessions(k, alice, team_id), CONVERGE_S, message="K holds it")

    damage(k, team_folder(a, team_id))
    wait_until(
        lambda: k.call("events.recent", {"topics": ["keeper.repaired"]})["events"],
        REJOIN_S,
        message="K notices what it lost and re-creates the folder",
    )
    wait_until(
        lambda: k_holds_sessions(k, alice, team_id),
        REJOIN_S,
        message="K refills the folder from alice",
    )
    go_offline(a)
    come_back(b)
    wait_until(
        lambda: received(b, a, team_id, IDENTITY, alice.sessions()),
        REJOIN_S,
        message="bob receives everything through the repaired K",
    )
