"""What the keeper design relies on in Syncthing itself, checked on the installed version.

docs/keeper.md (sections 1 and 2.6-2.7): a member shares the team's keeper folder with
K in plaintext and its team folders under a password, on one connection, without
Syncthing's `untrusted` flag, and K still stores only ciphertext of the latter; after
a password change K closes the link; dropping K from the stale folder brings the link
back with the plaintext folder flowing. If a Syncthing release changes any of this, the
keeper's design must change with it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.support.syncthing import Cluster, Node, wait_until

CONTROL = "karma-aaaaaaaaaaaaaaaaaaaaaaaaaa"
CONTENT = "karma-bbbbbbbbbbbbbbbbbbbbbbbbbb"
SECRET_NAME = "PLANTEDSESSIONNAME"
SECRET_LINE = "PLANTEDCONTENTLINE"


def _content_folder(node: Node, folder_type: str, devices: list[dict[str, str]]) -> None:
    path = node.folder_dir(CONTENT)
    path.mkdir(parents=True, exist_ok=True)
    node.rest.put(
        f"/rest/config/folders/{CONTENT}",
        {
            "id": CONTENT,
            "label": "karma bbbbbbbb",
            "path": str(path),
            "type": folder_type,
            "devices": [{"deviceID": node.device_id}, *devices],
        },
    )


def _holds(k: Node) -> bool:
    status = k.rest.get("/rest/db/status", folder=CONTENT)
    return bool(status["localFiles"] >= 1 and status["needFiles"] == 0)


def _planted(root: Path) -> list[str]:
    found = subprocess.run(
        ["grep", "-rlaE", f"{SECRET_NAME}|{SECRET_LINE}", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.split()


def test_one_link_carries_a_plaintext_and_an_encrypted_folder_and_survives_rotation(
    syncthing_cluster: Callable[..., Cluster],
) -> None:
    cluster = syncthing_cluster(2)
    a, k = cluster.nodes
    cluster.pair(a, k)
    # The leader's keeper folder, plaintext for K; a team folder, encrypted for K. K is
    # not flagged `untrusted` (the flag would forbid the plaintext folder).
    control_dir = cluster.add_folder(a, CONTROL, "sendonly", [k])
    _content_folder(a, "sendonly", [{"deviceID": k.device_id, "encryptionPassword": "one"}])
    (control_dir / "control").write_text("ids only\n")
    (a.folder_dir(CONTENT) / f"{SECRET_NAME}.jsonl").write_text(f"{SECRET_LINE}\n" * 50)
    for folder in (CONTROL, CONTENT):
        a.rest.post("/rest/db/scan", folder=folder)
    wait_until(lambda: CONTENT in k.rest.get("/rest/cluster/pending/folders"), 30)
    cluster.add_folder(k, CONTROL, "receiveonly", [a])
    _content_folder(k, "receiveencrypted", [{"deviceID": a.device_id}])
    # Accepted on a live connection, an encrypted folder gets no data until the link is
    # reset (upstream #8278); a keeper pauses and resumes the peers of what it adds.
    k.rest.post("/rest/system/pause", device=a.device_id)
    k.rest.post("/rest/system/resume", device=a.device_id)
    wait_until(lambda: _holds(k), 60, message="K holds the encrypted folder")
    wait_until((k.folder_dir(CONTROL) / "control").exists, 30)

    assert _planted(k.root) == []
    assert _planted(a.folder_dir(CONTENT)) != []  # the search does find them in plaintext
    stored = [p for p in k.folder_dir(CONTENT).rglob("*") if p.is_file()]
    assert any(".syncthing-enc" in str(p) for p in stored)

    # A rotation the keeper has not followed: K closes the whole link, and the member
    # is not told why.
    _content_folder(a, "sendonly", [{"deviceID": k.device_id, "encryptionPassword": "two"}])
    wait_until(lambda: not a.connected_to(k), 30, message="the link drops")
    # The member's fallback: K only on folders whose password is not in doubt.
    _content_folder(a, "sendonly", [])
    wait_until(lambda: a.connected_to(k) and k.connected_to(a), 90, message="link back")
    (control_dir / "keys").write_text("next epoch\n")
    a.rest.post("/rest/db/scan", folder=CONTROL)
    wait_until((k.folder_dir(CONTROL) / "keys").exists, 30, message="keys flow")
