"""Is there a Syncthing karmad can run, and is the one it drives healthy?

`syncthing.binary` needs nothing but karmad's own PATH (a service's PATH is often not
the login shell's). The others look at the Syncthing the subsystem is attached to:

- `syncthing.reachable`, `syncthing.api_key`, `syncthing.listen`: one fresh REST call
  (the system status), because a stale answer is exactly what a user debugging "why
  does nothing connect" must not get;
- `syncthing.profile`, `syncthing.folders`, `syncthing.pending`, `syncthing.peers`:
  read from the live snapshot the event stream keeps, which is as fresh as Syncthing's
  own events.

When Syncthing cannot be reached only `syncthing.reachable` (or `syncthing.api_key`)
says so: one cause, one finding, rather than a failure per dependent check.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

import anyio

from karmad import deviceid
from karmad.config import DoctorConfig, SyncthingConfig
from karmad.doctor import Doctor, duration, fail, listed, ok, warn
from karmad.protocol import DoctorCheck
from karmad.services import Services
from karmad.store import Store
from karmad.sync import teamstore
from karmad.sync.model import Desired
from karmad.sync.reconciler import ReconcilerState
from karmad.syncthing.errors import AuthFailed, SyncthingError
from karmad.syncthing.models import ListenerStatus
from karmad.syncthing.service import SyncthingService
from karmad.syncthing.snapshot import FolderState, Snapshot

OLDEST_SUPPORTED = (1, 19, 0)
"""Debian stable's Syncthing; older releases lack REST behaviour karmad relies on."""

_VERSION = re.compile(r"\bv(\d+)\.(\d+)\.(\d+)")

INSTALL_FIX = (
    "install Syncthing (Debian/Ubuntu: `apt install syncthing`; macOS: `brew install "
    "syncthing`); when karmad runs as a service, run `karmactl service install` again "
    "afterwards so that the service's PATH includes it"
)

_RELAY_SCHEMES = ("relay://", "dynamic+")
"""Listeners that reach the network through relays, not sockets of this machine."""

ANSWER_S = 5.0
"""How long the fresh status request may take: a Syncthing slower than this is hung."""


def _ago(delta: timedelta) -> str:
    return duration(delta.total_seconds())


# --------------------------------------------------------------------------- binary


async def binary_findings(path_env: str | None = None) -> list[DoctorCheck]:
    name = "syncthing.binary"
    search = os.environ.get("PATH", os.defpath) if path_env is None else path_env
    binary = shutil.which("syncthing", path=search)
    if binary is None:
        return [fail(name, f"no `syncthing` on karmad's PATH ({search})", INSTALL_FIX)]
    try:
        with anyio.fail_after(10):
            done = await anyio.run_process([binary, "--version"], check=False)
    except TimeoutError:
        return [fail(name, f"`{binary} --version` did not answer within 10s", INSTALL_FIX)]
    except OSError as exc:
        return [fail(name, f"cannot run {binary}: {exc.strerror}", INSTALL_FIX)]
    output = done.stdout.decode(errors="replace").strip()
    if done.returncode != 0:
        return [fail(name, f"`{binary} --version` exited with {done.returncode}", INSTALL_FIX)]
    match = _VERSION.search(output)
    if match is None:
        return [warn(name, f"{binary} printed no version karmad recognises: {output[:80]!r}")]
    version = tuple(int(x) for x in match.groups())
    text = ".".join(map(str, version))
    if version < OLDEST_SUPPORTED:
        oldest = ".".join(map(str, OLDEST_SUPPORTED))
        return [
            fail(
                name,
                f"{binary} is Syncthing {text}, older than the oldest karmad supports ({oldest})",
                "upgrade Syncthing",
            )
        ]
    return [ok(name, f"{binary} is Syncthing {text}")]


# --------------------------------------------------------------------------- connection


def _unreachable_fix(service: SyncthingService) -> str:
    if service.mode == "managed":
        return (
            "`karmactl syncthing status` shows what karmad's Syncthing is doing; its own log "
            f"is {service.paths.syncthing_home / 'syncthing.log'}; `karmactl service "
            "restart` starts it afresh"
        )
    return (
        "start your Syncthing, or tell karmad where it is: `address` (and `api_key`, or "
        "`home` holding its config.xml) in the [syncthing] section of karmad's config"
    )


def _api_key_fix(service: SyncthingService) -> str:
    if service.mode == "managed":
        return (
            "karmad writes its API key into Syncthing's config.xml at every start: restart "
            "karmad (`karmactl service restart`); if this comes back, something else "
            f"rewrites {service.paths.syncthing_home / 'config.xml'}"
        )
    return (
        "set `api_key` in the [syncthing] section of karmad's config to the key in "
        "Syncthing's settings (Actions > Settings > GUI), or leave it empty so karmad "
        "reads it from config.xml"
    )


async def connection_findings(service: SyncthingService) -> list[DoctorCheck]:
    """Reachable, API key accepted, listeners working: from one fresh status call."""
    reachable = "syncthing.reachable"
    if service.mode == "off":
        return [
            ok(
                reachable,
                'Syncthing is off (syncthing.mode = "off"): sessions are indexed, not shared',
            )
        ]
    if service.state == "not-installed":
        return [fail(reachable, service.detail or "Syncthing is not installed", INSTALL_FIX)]
    if service.auth_error:
        return [fail("syncthing.api_key", service.auth_error, _api_key_fix(service))]
    client = service.client
    snap = service.stream.snapshot
    if client is None or snap is None or not service.live:
        why = service.detail or service.stream.down_reason
        return [
            fail(
                reachable,
                f"Syncthing is {service.state}: {why} (karmad answers syncthing_unavailable "
                "to everything that needs it)",
                _unreachable_fix(service),
            )
        ]
    try:
        status = await client.status(read_timeout=ANSWER_S)
    except AuthFailed as exc:
        return [fail("syncthing.api_key", str(exc), _api_key_fix(service))]
    except SyncthingError as exc:
        return [fail(reachable, str(exc), _unreachable_fix(service))]
    attachment = service.attachment
    where = f" at {attachment.endpoint}" if attachment is not None else ""
    version = snap.version or (str(attachment.version) if attachment else "")
    return [
        ok(reachable, f"Syncthing {version}{where} ({service.mode}), events followed live"),
        ok("syncthing.api_key", "Syncthing accepts karmad's API key"),
        *listen_findings(status.connection_service_status, service.mode),
    ]


def listen_findings(listeners: Mapping[str, ListenerStatus], mode: str) -> list[DoctorCheck]:
    name = "syncthing.listen"
    where = (
        "`listen_addresses` in the [syncthing] section of karmad's config"
        if mode == "managed"
        else "Syncthing's settings (Connections > Sync Protocol Listen Addresses)"
    )
    if not listeners:
        return [
            warn(
                name,
                "Syncthing listens on no address: teammates cannot connect to this machine "
                "(only it can dial them)",
                f"give it a listen address in {where}",
            )
        ]
    broken = {a: s.error for a, s in sorted(listeners.items()) if s.error}
    working = sorted(a for a in listeners if a not in broken)
    if not broken:
        return [ok(name, f"listening on {', '.join(working)}")]
    direct = [a for a in working if not a.startswith(_RELAY_SCHEMES)]
    described = [f"{address}: {error}" for address, error in broken.items()]
    if all(a.startswith(_RELAY_SCHEMES) for a in broken):
        fix = (
            "no relay can be reached from this network (a firewall, no internet): direct "
            "connections still work; the `lan-only` profile does without relays"
        )
    else:
        fix = (
            "another program holds the port (`ss -ltnp` shows which): stop it, or pick "
            f"another address in {where}"
        )
    if not direct:
        return [
            fail(
                name,
                f"no listener works, so teammates cannot connect to this machine: "
                f"{listed(described)}",
                fix,
            )
        ]
    return [
        warn(
            name,
            f"listening on {', '.join(direct)}, but {listed(described)}",
            fix,
        )
    ]


# --------------------------------------------------------------------------- profile


def profile_findings(snap: Snapshot, config: SyncthingConfig, mode: str) -> list[DoctorCheck]:
    """Discovery and relays as `syncthing.profile` says they should be."""
    name = "syncthing.profile"
    profile = config.profile
    expected = profile == "internet"
    options = snap.options
    settings = {
        "global discovery": options.global_announce_enabled,
        "local discovery": options.local_announce_enabled,
        "relays": options.relays_enabled,
    }
    wrong = [what for what, value in settings.items() if value != expected]
    if not wrong:
        state = "on" if expected else "off"
        return [ok(name, f"profile {profile}: discovery and relays {state}, as it expects")]
    want = "on" if expected else "off"
    have = "off" if expected else "on"
    message = (
        f"profile {profile} expects discovery and relays {want}, but Syncthing has "
        f"{', '.join(wrong)} {have}"
    )
    if expected:
        message += ": teammates beyond this network cannot find this machine"
    else:
        message += ": this machine announces itself beyond what the profile allows"
    if mode == "managed":
        fix = (
            "karmad writes the profile's settings into Syncthing's config.xml at every "
            "start: restart karmad (`karmactl service restart`), or set `profile` in the "
            "[syncthing] section of karmad's config to what you want"
        )
    else:
        other = '"lan-only"' if expected else '"internet"'
        fix = (
            f"change them in Syncthing's settings (Connections), or set profile = {other} in "
            "the [syncthing] section of karmad's config if that is how this Syncthing is "
            "meant to run"
        )
    return [warn(name, message, fix)]


# --------------------------------------------------------------------------- folders


def _folder_text(folder: FolderState) -> str:
    label = folder.config.label
    if label and label != folder.config.id:
        return f"{folder.config.id} ({label})"
    return folder.config.id


def folder_findings(snap: Snapshot) -> list[DoctorCheck]:
    name = "syncthing.folders"
    folders = sorted(snap.managed_folders(), key=lambda f: f.config.id)
    if not folders:
        return [ok(name, "karmad manages no Syncthing folder yet")]
    failed = [f for f in folders if f.state == "error"]
    pulling = [f for f in folders if f.state != "error" and _pull_errors(f)]
    if failed:
        described = [f"{_folder_text(f)}: {f.error or 'error'}" for f in failed]
        fix = (
            "`karmactl folders` shows each folder's state; `folder path missing`: the "
            "directory was moved or deleted: put it back (karmad recreates the team folders "
            "it writes into at its next cycle), then `karmactl syncthing rescan FOLDER`"
        )
        if pulling:
            described += [f"{_folder_text(f)}: {_pull_text(f)}" for f in pulling]
        return [
            fail(
                name, f"{len(failed)} of {len(folders)} folders in error: {listed(described)}", fix
            )
        ]
    if pulling:
        described = [f"{_folder_text(f)}: {_pull_text(f)}" for f in pulling]
        return [
            warn(
                name,
                f"{len(pulling)} of {len(folders)} folders cannot write some files: "
                f"{listed(described)}",
                "the errors name each file; something on this machine is in the way (a "
                "directory or file where a received one belongs, a full disk, permissions): "
                "remove it and Syncthing retries by itself",
            )
        ]
    states: dict[str, int] = {}
    for f in folders:
        state = "paused" if f.config.paused else f.state
        states[state] = states.get(state, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    return [ok(name, f"{len(folders)} folders without errors ({summary})")]


def _pull_errors(folder: FolderState) -> int:
    count = folder.status.pull_errors if folder.status is not None else 0
    return max(count, len(folder.file_errors))


def _pull_text(folder: FolderState) -> str:
    count = _pull_errors(folder)
    first = folder.file_errors[0] if folder.file_errors else None
    sample = f", e.g. {first.path}: {first.error.strip()}" if first is not None else ""
    return f"{count} file(s) failing{sample}"


# --------------------------------------------------------------------------- pending


def pending_findings(
    snap: Snapshot, reconciler: ReconcilerState, member_tags: Mapping[str, str]
) -> list[DoctorCheck]:
    """Offers karmad leaves for the user: those no team expects.

    Expected offers are accepted at the next reconcile cycle; so is anything that arrived
    after the last cycle began (it has not been looked at yet), which therefore does not
    count as waiting.
    """
    name = "syncthing.pending"
    desired: Desired | None = reconciler.desired
    expected_devices = set(desired.devices) if desired is not None else set()
    expected_folders = set(desired.folders) if desired is not None else set()
    looked = reconciler.last.started_at if reconciler.last is not None else None
    cycling = reconciler.state in ("idle", "degraded")

    def seen(time: datetime | None) -> bool:
        return not cycling or looked is None or time is None or time <= looked

    waiting: list[str] = []
    for device_id, device in sorted(snap.pending_devices.items()):
        if device_id in expected_devices or not seen(device.time):
            continue
        who = f' "{device.name}"' if device.name else ""
        frm = f" from {device.address}" if device.address else ""
        waiting.append(f"device {deviceid.short(device_id)}{who}{frm}")
    for folder_id, offers in sorted(snap.pending_folders.items()):
        if folder_id in expected_folders:
            continue
        for device_id, offer in sorted(offers.items()):
            if not seen(offer.time):
                continue
            by = member_tags.get(device_id) or deviceid.short(device_id)
            label = f' "{offer.label}"' if offer.label and offer.label != folder_id else ""
            waiting.append(f"folder {folder_id[:64]}{label} offered by {by}")
    if not waiting:
        return [ok(name, "no offer waits for you")]
    return [
        warn(
            name,
            f"{len(waiting)} offer(s) no team expects wait for you: {listed(waiting)}",
            "`karmactl pending` shows them; accept what you know "
            "(`karmactl pending accept`), dismiss the rest (`karmactl pending dismiss`)",
        )
    ]


# --------------------------------------------------------------------------- peers


def peer_findings(
    snap: Snapshot,
    now: datetime,
    unseen_after: timedelta,
    member_tags: Mapping[str, str],
    added_at: Mapping[str, datetime],
) -> list[DoctorCheck]:
    """Configured devices that have not been around for `unseen_after`.

    A device that never connected counts from when karmad added it; one added by hand
    (karmad does not know when) is only listed.
    """
    name = "syncthing.peers"
    devices = sorted(snap.devices.values(), key=lambda d: d.config.device_id)
    if not devices:
        return [ok(name, "no peers configured")]
    stale: list[str] = []
    never: list[str] = []
    connected = 0
    paused = 0
    for device in devices:
        device_id = device.config.device_id
        who = member_tags.get(device_id) or device.config.name or deviceid.short(device_id)
        who = f"{who} ({deviceid.short(device_id)})" if who != deviceid.short(device_id) else who
        if device.paused:
            paused += 1
        elif device.connected:
            connected += 1
        elif device.last_seen is not None:
            if now - device.last_seen > unseen_after:
                stale.append(f"{who} last seen {_ago(now - device.last_seen)} ago")
        else:
            added = added_at.get(device_id)
            if added is not None and now - added > unseen_after:
                stale.append(f"{who} never connected since it was added {_ago(now - added)} ago")
            else:
                never.append(who)
    counts = f"{len(devices)} peer(s): {connected} connected"
    if paused:
        counts += f", {paused} paused"
    if never:
        counts += f", not connected yet: {listed(never)}"
    if stale:
        return [
            warn(
                name,
                f"{len(stale)} peer(s) not seen for more than {_ago(unseen_after)}: "
                f"{listed(stale)} ({counts})",
                "sessions from and to them are not moving: check that those machines run "
                "karmad and can reach this one (`karmactl devices`); the threshold is "
                "doctor.peer_unseen_days",
            )
        ]
    return [ok(name, counts)]


def _member_tags(store: Store) -> dict[str, str]:
    tags: dict[str, str] = {}
    for team in teamstore.teams(store):
        tags.setdefault(team.leader_device, team.leader_tag)
        if team.record is not None:
            for member in team.record.members:
                tags[member.device_id] = member.member_tag
    return tags


# --------------------------------------------------------------------------- wiring


def register(doctor: Doctor, svc: Services) -> None:
    service = svc.syncthing
    config: DoctorConfig = svc.config.doctor
    unseen_after = timedelta(days=config.peer_unseen_days)

    def live(
        check: Callable[[Snapshot], list[DoctorCheck]],
    ) -> Callable[[], Awaitable[list[DoctorCheck]]]:
        async def run() -> list[DoctorCheck]:
            snap = service.stream.snapshot
            if service.mode == "off" or snap is None or not service.live:
                return []  # syncthing.reachable says why
            return check(snap)

        return run

    def reconciler_state() -> ReconcilerState:
        return svc.teams.reconciler.status

    doctor.register("syncthing.binary", binary_findings)
    doctor.register("syncthing.reachable", lambda: connection_findings(service))
    doctor.register(
        "syncthing.profile",
        live(lambda snap: profile_findings(snap, service.config, service.mode)),
    )
    doctor.register("syncthing.folders", live(folder_findings))
    doctor.register(
        "syncthing.pending",
        live(lambda snap: pending_findings(snap, reconciler_state(), _member_tags(svc.store))),
    )
    doctor.register(
        "syncthing.peers",
        live(
            lambda snap: peer_findings(
                snap,
                svc.clock(),
                unseen_after,
                _member_tags(svc.store),
                teamstore.managed_devices_added(svc.store),
            )
        ),
    )
