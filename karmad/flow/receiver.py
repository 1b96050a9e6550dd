"""The receiver: teammates' sessions, from their inboxes into the index.

Each project shared with a team, in each teammate's inbox, is one index root attributed
to that teammate (member tag, user, device) and already known to belong to the shared
project's identity. Roots follow the reconciler's inboxes: a member or project that goes
away takes its rows out of the views (the files stay until a purge), also when it went
while karmad was not running. New data is indexed
when Syncthing says a file arrived — no polling — and what the index refuses (see
`karmad.index.remote`) is recorded as an audit event. Nothing here ever writes inside an
inbox: they are receive-only folders and the sender is the only writer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import anyio
from anyio.abc import TaskStatus

from karmad import logs
from karmad.bus import Bus, Clock
from karmad.domain import EventKind, SyncEvent, is_folder_id, is_project_key
from karmad.index.discovery import Root
from karmad.index.service import Indexer
from karmad.paths import managed_folder
from karmad.protocol import Event
from karmad.store import Store, StoreError
from karmad.sync import teamstore
from karmad.sync.model import Inbox

log = logs.get("karmad.flow")

TOPICS = (
    "sync.outboxes",
    "syncthing.item.finished",
    "syncthing.resynced",
    "index.rejected",
    "index.sessions",
)


def roots_for(inboxes: tuple[Inbox, ...], folders_dir: Path) -> dict[Path, Root]:
    """Every (inbox, shared project) as an index root. Pure."""
    roots: dict[Path, Root] = {}
    for inbox in inboxes:
        if not is_folder_id(inbox.folder_id):
            continue
        base = managed_folder(folders_dir, inbox.folder_id)
        user = inbox.owner_tag.split(".", 1)[0]
        for key, identity in inbox.shared:
            if not is_project_key(key):
                continue
            path = base / "projects" / key
            roots[path] = Root(
                path=path,
                origin="remote",
                member_tag=inbox.owner_tag,
                user_id=user,
                device_id=inbox.owner_device,
                project=identity,
                confine_to=str(base),
            )
    return roots


class Receiver:
    def __init__(
        self,
        *,
        indexer: Indexer,
        inboxes: Callable[[], tuple[Inbox, ...]],
        folders_dir: Path,
        store: Store,
        bus: Bus,
        clock: Clock,
    ) -> None:
        self._indexer = indexer
        self._inboxes = inboxes
        self._folders_dir = folders_dir
        self._store = store
        self._bus = bus
        self._clock = clock
        self._roots: dict[Path, Root] = {}
        self._folders: dict[str, Path] = {}
        self._received: set[tuple[str, str]] | None = None

    @property
    def roots(self) -> dict[Path, Root]:
        return dict(self._roots)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        sub = self._bus.subscribe(TOPICS, buffer=10_000)
        self.follow_inboxes()
        task_status.started()
        while True:
            async with sub.receive:
                async for event in sub.receive:
                    try:
                        self._handle(event)
                    except Exception:  # one bad event must not stop receiving
                        log.exception("receive_failed", topic=event.topic)
            # Fell behind: nothing is lost on disk; read every inbox again.
            self._indexer.notify_changed(list(self._roots))
            sub = self._bus.subscribe(TOPICS, buffer=10_000)

    def _handle(self, event: Event) -> None:
        if event.topic == "sync.outboxes":
            self.follow_inboxes()
            # The reconciler has decided the inboxes: anything received before (by an
            # earlier run, for an inbox gone since) is no longer anyone's to show.
            self._indexer.retain_remote_roots(self._roots)
        elif event.topic == "syncthing.item.finished":
            self._arrived(event.data)
        elif event.topic == "syncthing.resynced":
            # Events may have been lost: look at every inbox again.
            self._indexer.notify_changed(list(self._roots))
        elif event.topic == "index.rejected":
            self._rejected(event.data, event.time)
        elif event.topic == "index.sessions":
            self._sessions(event.data, event.time)

    def follow_inboxes(self) -> None:
        wanted = roots_for(self._inboxes(), self._folders_dir)
        for path in sorted(set(self._roots) - set(wanted)):
            log.info("inbox_root_removed", root=str(path))
            self._indexer.remove_root(path)
        for path, root in sorted(wanted.items()):
            if self._roots.get(path) != root:
                log.info("inbox_root_added", root=str(path), member=root.member_tag)
                self._indexer.add_root(root)
        self._roots = wanted
        self._folders = {
            inbox.folder_id: managed_folder(self._folders_dir, inbox.folder_id)
            for inbox in self._inboxes()
            if is_folder_id(inbox.folder_id)
        }

    def _arrived(self, data: dict[str, object]) -> None:
        folder, item = data.get("folder"), data.get("item")
        if not isinstance(folder, str) or not isinstance(item, str) or data.get("error"):
            return
        base = self._folders.get(folder)
        if base is None or not item.startswith("projects/"):
            return
        path = base / item
        # Only paths under a root we index; `..` or absolute items never get this far.
        if any(root == path or root in path.parents for root in self._roots):
            self._indexer.notify_changed([path])

    def _sessions(self, data: dict[str, object], when: datetime) -> None:
        """Record the first arrival of each teammate's session in the audit trail."""
        sessions = data.get("sessions")
        if not isinstance(sessions, list):
            return
        remote = [
            (str(s.get("origin")), str(s.get("id")))
            for s in sessions
            if isinstance(s, dict) and str(s.get("origin", "")).startswith("remote:")
        ]
        if not remote:
            return
        if self._received is None:
            self._received = {
                (str(e.detail.get("origin")), str(e.detail.get("session")))
                for _, e in teamstore.events(self._store, limit=1_000_000)
                if e.kind is EventKind.SESSION_RECEIVED
            }
        for origin, session in remote:
            if (origin, session) in self._received:
                continue
            self._received.add((origin, session))
            device = origin.removeprefix("remote:")
            member = next(
                (r.member_tag for r in self._roots.values() if r.device_id == device), None
            )
            try:
                teamstore.append_event(
                    self._store,
                    SyncEvent(
                        EventKind.SESSION_RECEIVED,
                        when,
                        None,
                        member,
                        device,
                        None,
                        {"session": session, "origin": origin},
                    ),
                )
            except StoreError as exc:
                log.error("audit_failed", error=str(exc))

    def _rejected(self, data: dict[str, object], when: datetime) -> None:
        root = str(data.get("root", ""))
        if Path(root) not in self._roots:
            return
        event = SyncEvent(
            EventKind.SESSION_REJECTED,
            when,
            None,
            str(data.get("member") or "") or None,
            str(data.get("device") or "") or None,
            Path(root).name,
            {"path": str(data.get("path", ""))[-200:], "reason": str(data.get("reason", ""))},
        )
        try:
            teamstore.append_event(self._store, event)
        except StoreError as exc:
            log.error("audit_failed", error=str(exc))
