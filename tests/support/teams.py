"""Helpers for end-to-end team tests: real karmad processes driving real Syncthing.

Everything goes through karmad's socket (as karmactl would) and is checked against
Syncthing's own REST API and the files on disk — never against karmad's idea of them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from karmad.domain import folder_id, project_key
from tests.support.daemon import Home, KarmadProcess
from tests.support.syncthing import Node, start_plain_node, wait_until

CONVERGE_S = 30.0


def init(node: Node, user: str) -> str:
    """Give the node an identity; returns its member tag."""
    info = node.call("identity.init", {"user": user, "machine": node.name})
    return str(info["member_tag"])


def device(node: Node) -> str:
    return str(node.call("identity.get")["device_id"])


def folders_dir(node: Node) -> Path:
    assert node.karmad is not None
    return node.karmad.home.state / "folders"


def own_folder(node: Node, team_id: str) -> str:
    return folder_id(team_id, device(node))


def karma_config(node: Node) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(devices by id, karma- folders by id) as Syncthing has them now."""
    config = node.rest.get("/rest/config")
    devices = {d["deviceID"]: d for d in config["devices"]}
    folders = {f["id"]: f for f in config["folders"] if f["id"].startswith("karma-")}
    return devices, folders


def folder_devices(folder: dict[str, Any]) -> set[str]:
    return {d["deviceID"] for d in folder["devices"]}


def ignores(node: Node, fid: str) -> list[str]:
    return list(node.rest.get("/rest/db/ignores", folder=fid).get("ignore") or [])


def team(node: Node, team_id: str) -> dict[str, Any]:
    result: dict[str, Any] = node.call("team.get", {"team": team_id})
    return result


def member_states(node: Node, team_id: str) -> dict[str, str]:
    return {m["member_tag"]: m["state"] for m in team(node, team_id)["members"]}


def form_team(leader: Node, *members: Node, name: str = "core", timeout: float = CONVERGE_S) -> str:
    """Leader creates a team and adds each member by pairing code; each joins by invite.

    Returns the team id once every member is active in the leader's roster and sees
    itself as a member.
    """
    created = leader.call("team.create", {"name": name})
    team_id = str(created["team_id"])
    for member in members:
        code = member.call("pair.code")["code"]
        added = leader.call("team.addMember", {"team": team_id, "code": code})
        member.call("team.join", {"invite": added["invite"]})
    tags = {m.call("identity.get")["member_tag"] for m in (leader, *members)}
    wait_until(
        lambda: all(member_states(leader, team_id).get(t) == "active" for t in tags),
        timeout,
        message="every member active on the leader",
    )
    for member in members:
        wait_until(
            lambda m=member: (
                team(m, team_id)["phase"] == "member"  # type: ignore[misc]
                and all(member_states(m, team_id).get(t) == "active" for t in tags)
            ),
            timeout,
            message=f"{member.name} sees the whole team active",
        )
    return team_id


def share_and_accept(
    leader: Node, team_id: str, remote: str, directions: list[tuple[Node, str]]
) -> str:
    """Leader shares `remote`; each given node accepts it with the given direction."""
    key = project_key(remote)
    leader.call("project.share", {"team": team_id, "project": remote})
    for node, direction in directions:
        wait_until(
            lambda n=node: any(  # type: ignore[misc]
                s["project_key"] == key
                for s in n.call("subscription.list", {"team": team_id})["subscriptions"]
            ),
            CONVERGE_S,
            message=f"{node.name} offered {remote}",
        )
        node.call("subscription.accept", {"team": team_id, "project": key, "direction": direction})
    return key


def topology_ok(nodes: list[Node], team_id: str, expected: dict[str, list[Node]]) -> bool:
    """Syncthing's config on every node equals the design: own folder sendonly shared with
    exactly the entitled devices; one receiveonly inbox per entitled peer, shared with
    that peer alone."""
    for node in nodes:
        me = device(node)
        devices, folders = karma_config(node)
        peers = expected[node.name]
        own = folders.get(own_folder(node, team_id))
        if own is None or own["type"] != "sendonly":
            return False
        if folder_devices(own) != {me} | {device(p) for p in peers}:
            return False
        # This team's folders: those whose derived id matches a device we know of.
        ours = {folder_id(team_id, d) for d in {me, *devices}}
        inboxes = {fid for fid, f in folders.items() if f["type"] == "receiveonly" and fid in ours}
        if inboxes != {own_folder(p, team_id) for p in peers}:
            return False
        for peer in peers:
            inbox = folders[own_folder(peer, team_id)]
            if folder_devices(inbox) != {me, device(peer)}:
                return False
        if any(f["type"] == "sendreceive" for f in folders.values()):
            return False
        if not {device(p) for p in peers} <= set(devices):
            return False
    return True


def external_member(root: Path, karmad_factory: Callable[..., KarmadProcess], backend: str) -> Node:
    """A plain Syncthing with a karmad attached to it: stopping that karmad leaves the
    Syncthing running, for the test to drive as a misbehaving device would."""
    node = start_plain_node(root / "st", "bob")
    home = Home(root / "k").create()
    home.write_config(
        f'[syncthing]\nmode = "external"\naddress = "{node.endpoint}"\n'
        f'api_key = "{node.api_key}"\nhome = "{node.syncthing_home}"\n'
    )
    node.karmad = karmad_factory(backend, home=home)

    def live() -> bool:
        status: dict[str, Any] = node.call("syncthing.status")
        return status["state"] == "running" and bool(status["stream"]["live"])

    wait_until(live, 30, message="bob's karmad attached")
    return node
