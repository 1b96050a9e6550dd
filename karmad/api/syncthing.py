"""`syncthing.*`, `device.list`, `folder.list`, `pending.list`.

Every answer comes from the service's in-memory snapshot; no handler calls Syncthing.
When there is no live snapshot the handlers answer `syncthing_unavailable` (or
`syncthing_not_installed`) at once, whatever state Syncthing is in.
"""

from __future__ import annotations

from datetime import datetime

from karmad import protocol
from karmad.rpc.call import Call
from karmad.rpc.router import Router
from karmad.services import Core, Services
from karmad.syncthing import ids
from karmad.syncthing.service import SyncthingService
from karmad.syncthing.snapshot import DeviceState, FolderState, Snapshot


def status(st: SyncthingService, since: datetime | None = None) -> protocol.SyncthingStatus:
    snap = st.stream.snapshot if st.live else None
    attachment = st.attachment
    run = st.running
    listen: list[str] = []
    listeners: list[protocol.SyncthingListener] = []
    if snap is not None:
        listen = list(snap.options.listen_addresses)
        listeners = [
            protocol.SyncthingListener(
                address=address,
                error=info.error or "",
                lan_addresses=list(info.lan_addresses or ()),
            )
            for address, info in sorted(snap.listeners.items())
        ]
    elif st.prepared is not None:
        listen = list(st.prepared.listen_addresses)
    home = ""
    if st.mode == "managed":
        home = str(st.paths.syncthing_home)
    elif attachment is not None and attachment.home is not None:
        home = str(attachment.home)
    stream = st.stream
    return protocol.SyncthingStatus(
        mode=st.mode,
        state=st.state,
        detail=st.detail,
        since=since,
        version=str(attachment.version) if attachment and attachment.version else "",
        long_version=attachment.long_version if attachment else "",
        binary=str(st.binary.path) if st.binary else "",
        device_id=st.device_id,
        profile=st.config.profile if st.mode == "managed" else "",
        api_address=str(attachment.endpoint) if attachment else "",
        home=home,
        listen_addresses=listen,
        listeners=listeners,
        pid=run.pid if run else None,
        started_at=run.started_at if run else None,
        restarts=st.supervisor.restarts if st.supervisor else 0,
        stream=protocol.SyncthingStream(
            live=st.live,
            resyncs=stream.resyncs,
            last_resync_reason=stream.last_resync_reason,
            last_resync_at=stream.last_resync_at,
            last_event_id=stream.last_event_id,
            down_reason="" if st.live else stream.down_reason,
        ),
    )


def device_info(snap: Snapshot, device: DeviceState) -> protocol.DeviceInfo:
    device_id = device.config.device_id
    folders = sorted(
        f.config.id for f in snap.managed_folders() if device_id in f.config.device_ids
    )
    return protocol.DeviceInfo(
        device_id=device_id,
        name=device.config.name,
        addresses=list(device.config.addresses),
        paused=device.paused,
        connected=device.connected,
        address=device.address,
        connection_type=device.connection_type,
        client_version=device.client_version,
        connected_since=device.connected_since,
        last_seen=device.last_seen,
        in_bytes=device.in_bytes,
        out_bytes=device.out_bytes,
        folders=folders,
    )


def folder_info(folder: FolderState) -> protocol.FolderInfo:
    config = folder.config
    status = folder.status
    completion = [
        protocol.FolderCompletionInfo(
            device_id=device_id,
            completion=round(c.completion, 2),
            need_bytes=c.need_bytes,
            need_items=c.need_items,
            remote_state=c.remote_state,
        )
        for device_id, c in sorted(folder.completion.items())
    ]
    return protocol.FolderInfo(
        folder_id=config.id,
        label=config.label,
        path=config.path,
        type=config.type,
        paused=config.paused,
        devices=list(config.device_ids),
        state="paused" if config.paused else folder.state,
        state_since=folder.state_since,
        error=folder.error,
        pull_errors=status.pull_errors if status else 0,
        error_items=[
            protocol.FolderErrorInfo(path=e.path, error=e.error) for e in folder.file_errors
        ],
        global_bytes=status.global_bytes if status else 0,
        global_files=status.global_files if status else 0,
        local_bytes=status.local_bytes if status else 0,
        local_files=status.local_files if status else 0,
        need_bytes=status.need_bytes if status else 0,
        need_files=status.need_files if status else 0,
        in_sync_bytes=status.in_sync_bytes if status else 0,
        receive_only_changed_files=status.receive_only_changed_files if status else 0,
        completion=completion,
    )


def pending(snap: Snapshot, known: dict[str, tuple[str, str]]) -> protocol.PendingList:
    """Offers as Syncthing has them; who offers them as our own records say (`known`)."""
    unknown = ("", "")
    return protocol.PendingList(
        devices=[
            protocol.PendingDeviceInfo(
                device_id=device_id,
                name=p.name,
                address=p.address,
                time=p.time,
                known_as=known.get(device_id, unknown)[0],
                known_from=known.get(device_id, unknown)[1],
            )
            for device_id, p in sorted(snap.pending_devices.items())
        ],
        folders=[
            protocol.PendingFolderInfo(
                folder_id=folder_id,
                managed=ids.is_managed(folder_id),
                offered_by=[
                    protocol.PendingFolderOfferInfo(
                        device_id=device_id,
                        known_as=known.get(device_id, unknown)[0],
                        label=offer.label,
                        time=offer.time,
                        receive_encrypted=offer.receive_encrypted,
                        remote_encrypted=offer.remote_encrypted,
                    )
                    for device_id, offer in sorted(offers.items())
                ],
            )
            for folder_id, offers in sorted(snap.pending_folders.items())
        ],
    )


def register_status(router: Router, svc: Core) -> None:
    """`syncthing.status` alone: a keeper answers it too."""

    @router.method("syncthing.status")
    def syncthing_status(params: protocol.NoParams, call: Call) -> protocol.SyncthingStatus:
        health = svc.health.get("syncthing")
        return status(svc.syncthing, health.since if health else None)


def register(router: Router, svc: Services) -> None:
    st = svc.syncthing
    register_status(router, svc)

    @router.method("device.list")
    def device_list(params: protocol.NoParams, call: Call) -> protocol.DeviceList:
        snap = st.require_snapshot()
        devices = sorted(snap.devices.values(), key=lambda d: (d.config.name, d.config.device_id))
        return protocol.DeviceList(devices=[device_info(snap, d) for d in devices])

    @router.method("folder.list")
    def folder_list(params: protocol.NoParams, call: Call) -> protocol.FolderList:
        snap = st.require_snapshot()
        folders = sorted(snap.managed_folders(), key=lambda f: f.config.id)
        return protocol.FolderList(folders=[folder_info(f) for f in folders])

    @router.method("pending.list")
    def pending_list(params: protocol.NoParams, call: Call) -> protocol.PendingList:
        return pending(st.require_snapshot(), svc.offers.known_devices())

    @router.method("syncthing.rescan")
    def rescan(params: protocol.RescanParams, call: Call) -> protocol.RescanQueued:
        folders, paths = st.request_scan(params.folder, params.paths)
        return protocol.RescanQueued(folders=folders, paths=paths)
