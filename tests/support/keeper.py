"""A team's keeper on loopback: a keeper-mode karmad beside the members' (docs/keeper.md).

    k = syncthing_cluster(1, karmad=True, config=KEEPER_CONFIG).nodes[0]
    add_keeper(leader, k, team_id)                   # keeper.code, keeper.add, keeper.serve
    wait_until(lambda: keeper_listed([a, b], team_id), CONVERGE_S)
    wait_until(lambda: holds(k, a, team_folder(a, team_id)), CONVERGE_S)

Members and K are checked through Syncthing's own REST API (what K holds, what each side
lists), never through karmad's idea of it; `keeper.status` is used only where the design
says a member reads it (its epoch).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from karmad import codes
from karmad.domain import folder_id as team_folder_id
from karmad.domain import project_key
from karmad.flow.manifest import MANIFESTS
from karmad.redact import Redactor
from tests.support.sessions import SessionWriter
from tests.support.syncthing import Node, wait_started
from tests.support.teams import folders_dir

KEEPER_CONFIG = "[keeper]\nenabled = true\n"

Session = tuple[SessionWriter, bytes]
"""A session as its writer wrote it, and the bytes its redacted transcript must be."""


def expected(lines: list[bytes]) -> bytes:
    return Redactor().redact_chunk(b"".join(lines)).data


def keeper_code(k: Node) -> str:
    """A `KK` code for node `k` (a plain Syncthing or a keeper), as `keeper.code` makes."""
    device = k.rest.get("/rest/system/status")["myID"]
    addresses = k.rest.get("/rest/config/options")["listenAddresses"]
    return codes.encode_keeper(codes.KeeperCode(device, tuple(addresses)))


def team_folder(node: Node, team_id: str) -> str:
    """The node's own team folder, known without asking its karmad (it may be off)."""
    return team_folder_id(team_id, node.device_id)


def add_keeper(leader: Node, k: Node, team_id: str) -> dict[str, Any]:
    """Both sides consent, as an operator and a leader would: K's code to the leader, the
    leader's code back to K."""
    code = k.call("keeper.code")["code"]
    added: dict[str, Any] = leader.call("keeper.add", {"team": team_id, "code": code})
    k.call("keeper.serve", {"code": added["serve_code"]})
    return added


def keeper_view(node: Node, team_id: str) -> dict[str, Any] | None:
    status = node.call("keeper.status")
    return next((t for t in status["teams"] if t["team_id"] == team_id), None)


def keeper_listed(members: list[Node], team_id: str, epoch: int | None = None) -> bool:
    """Every member holds the team's current epoch (`epoch`, when given) and lists K with
    its passwords."""
    for member in members:
        view = keeper_view(member, team_id)
        if view is None or not view["listed"] or view["epoch"] is None:
            return False
        if view["epoch"] != view["current_epoch"]:
            return False
        if epoch is not None and view["epoch"] != epoch:
            return False
    return True


def k_folder(k: Node, folder_id: str) -> dict[str, Any] | None:
    folders = k.rest.get("/rest/config/folders")
    return next((f for f in folders if f["id"] == folder_id), None)


def k_shares(k: Node, folder_id: str, members: list[Node]) -> bool:
    """K holds the folder as ciphertext and shares it with exactly these members."""
    folder = k_folder(k, folder_id)
    if folder is None or folder["type"] != "receiveencrypted":
        return False
    return {d["deviceID"] for d in folder["devices"]} == {k.device_id} | {
        m.device_id for m in members
    }


def k_devices(k: Node) -> set[str]:
    return {d["deviceID"] for d in k.rest.get("/rest/config/devices")} - {k.device_id}


def holds(k: Node, owner: Node, folder_id: str) -> bool:
    """K holds everything the owner's Syncthing has of its folder: the owner sees K at
    100 % with nothing needed, and K itself is idle with every global file local."""
    seen = owner.rest.get("/rest/db/completion", folder=folder_id, device=k.device_id)
    if seen["completion"] < 100 or seen["needItems"] or seen["needDeletes"]:
        return False
    mine = k.rest.get("/rest/db/status", folder=folder_id)
    return bool(
        mine["state"] == "idle"
        and mine["needFiles"] == 0
        and mine["globalFiles"] > 0
        and mine["localFiles"] == mine["globalFiles"]
    )  # (bytes differ: K counts its ciphertext locally, the owner's plaintext globally)


def outbox_path(owner: Node, identity: str, writer: SessionWriter) -> str:
    """The path of `writer`'s transcript inside the owner's team folder."""
    assert owner.karmad is not None
    rel = writer.path.relative_to(owner.karmad.home.claude / "projects")
    return f"projects/{project_key(identity)}/{rel.as_posix()}"


def manifest_path(identity: str, writer: SessionWriter) -> str:
    return f"projects/{project_key(identity)}/{MANIFESTS}/{writer.session_id}.json"


def outbox_settled(owner: Node, team_id: str, identity: str, sessions: list[Session]) -> bool:
    """The owner's outbox holds each session's transcript as exactly these bytes, its
    manifest claims that size, every file the manifest lists is on disk at the size
    claimed, and the owner's Syncthing has scanned them all as they are: what K holds of
    them from then on is final."""
    root = folders_dir(owner) / team_folder(owner, team_id)
    fid = team_folder(owner, team_id)
    for writer, want in sessions:
        transcript = outbox_path(owner, identity, writer)
        project_dir = f"projects/{project_key(identity)}"
        manifest = manifest_path(identity, writer)
        try:
            if (root / transcript).read_bytes() != want:
                return False
            claimed = json.loads((root / manifest).read_bytes())["files"]
            sizes = {manifest: (root / manifest).stat().st_size}
            for rel, entry in claimed.items():
                sizes[f"{project_dir}/{rel}"] = entry["size"]
                if (root / project_dir / rel).stat().st_size != entry["size"]:
                    return False
        except (FileNotFoundError, ValueError, KeyError):
            return False
        if sizes.get(transcript) != len(want):
            return False
        for rel, size in sizes.items():
            local = owner.rest.get("/rest/db/file", folder=fid, file=rel)["local"]
            if local["size"] != size or local.get("invalid"):
                return False
    return True


def inbox_file(
    member: Node, owner: Node, team_id: str, identity: str, writer: SessionWriter
) -> Path:
    """Where `writer`'s transcript arrives in the member's inbox of the owner's folder."""
    return folders_dir(member) / team_folder(owner, team_id) / outbox_path(owner, identity, writer)


def lines_on(node: Node, session_id: str) -> int:
    """Lines of the session's main transcript the node's index counts (-1: unknown)."""
    try:
        detail = node.call("session.get", {"id": session_id})
    except Exception:
        return -1
    if detail["origin"] == "local":
        return -1
    return int(sum(f["lines"] for f in detail["files"] if f["kind"] == "main"))


def arrived(
    member: Node, owner: Node, team_id: str, identity: str, sessions: list[Session]
) -> bool:
    """Every session's transcript is in the member's inbox, byte for byte as expected."""
    for writer, want in sessions:
        path = inbox_file(member, owner, team_id, identity, writer)
        try:
            if path.stat().st_size != len(want) or path.read_bytes() != want:
                return False
        except FileNotFoundError:
            return False
    return True


def indexed(member: Node, sessions: list[Session]) -> bool:
    return all(lines_on(member, w.session_id) == want.count(b"\n") for w, want in sessions)


def received(
    member: Node, owner: Node, team_id: str, identity: str, sessions: list[Session]
) -> bool:
    """Every session arrived as the owner's outbox holds it, and the member's index
    counts every line."""
    return arrived(member, owner, team_id, identity, sessions) and indexed(member, sessions)


def go_offline(node: Node) -> None:
    """The machine is off: karmad stops, and its Syncthing with it."""
    assert node.karmad is not None
    assert node.karmad.stop() == 0, node.karmad.log()
    assert node.syncthing_pids() == []


def come_back(node: Node) -> None:
    assert node.karmad is not None
    node.karmad.start(wait=False)
    wait_started(node)


def found_in(root: Path, needles: list[str]) -> list[str]:
    """Files under `root` holding any of `needles` as bytes, whatever the file is (a
    database, a log, a config), case-insensitively."""
    args = [arg for needle in needles for arg in ("-e", needle)]
    found = subprocess.run(
        ["grep", "-rlaiF", *args, str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode not in (0, 1):
        raise AssertionError(f"grep failed: {found.stderr}")
    return found.stdout.split()
