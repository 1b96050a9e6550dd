"""The indexer as a daemon subsystem: what to index when, and what it reports.

Triggers are the start-up scan (catching up with whatever changed while karmad was not
running), the file watcher (watchfiles, debounced), `notify_changed` (callers that learn
of changes another way, such as received Syncthing folders) and `index.rebuild`. All the
work runs in one worker thread, one job at a time, on the indexer's own write
connection; progress reaches the event loop as bus events (`index.*`), health states and
a one-line summary for `daemon.status`.
"""

from __future__ import annotations

import itertools
import math
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import anyio
from anyio.abc import TaskStatus
from watchfiles import Change, awatch

from karmad import codec, logs, protocol
from karmad.bus import Bus, Clock, utc_now
from karmad.config import IndexConfig
from karmad.health import Health
from karmad.index.discovery import Root
from karmad.index.engine import Engine, Progress, Stopped
from karmad.index.pricing import PriceTable
from karmad.index.schema import INDEX_SCHEMA
from karmad.index.writer import IndexWriter
from karmad.store import Store, StoreCorrupt, StoreError, StoreFull, StoreTooNew

log = logs.get("karmad.index")

PROGRESS_EVERY_S: Final = 0.25
"""Least time between two `index.progress` events."""
SESSION_EVENT_LIMIT: Final = 200
"""Sessions named in one `index.sessions` event; more are reported as a count."""
WATCH_SETTLE_S: Final = 0.25
"""Time for a (re)started watcher to be in place before the catch-up scan."""
RETRY_FIRST_S: Final = 1.0
RETRY_MAX_S: Final = 30.0
"""A job that failed (a full disk, an I/O error) is tried again after 1 s, 2 s, 4 s…
at most this far apart, until it succeeds."""
FREE_SPACE_POLL_S: Final = 1.0
"""While the disk is full, how often to look whether space came back (one statvfs):
the job is tried again as soon as it did, not when its delay is up."""


@dataclass(slots=True)
class _Work:
    """What the worker should do next; merged while it is busy."""

    startup: bool = False
    scan: bool = False
    rebuild: bool = False
    text_only: bool = False
    job: int = 0
    add: list[Root] = field(default_factory=list)
    remove: list[Path] = field(default_factory=list)
    retain: frozenset[Path] | None = None
    """Received roots to keep; every other one stored in the index is forgotten."""

    def pending(self) -> bool:
        return bool(
            self.startup
            or self.scan
            or self.rebuild
            or self.add
            or self.remove
            or self.retain is not None
        )

    def merge(self, other: _Work) -> None:
        """Fold in work asked for meanwhile (or work that failed, to be done again)."""
        self.startup = self.startup or other.startup
        self.scan = self.scan or other.scan
        if other.rebuild:
            self.text_only = (
                other.text_only if not self.rebuild else self.text_only and other.text_only
            )
            self.rebuild = True
            self.job = other.job
        self.add = [*other.add, *(r for r in self.add if all(r.path != o.path for o in other.add))]
        self.remove = [*other.remove, *(p for p in self.remove if p not in other.remove)]
        if self.retain is not None or other.retain is not None:
            # Keeping more is safe (a removed root is removed by name anyway); forgetting a
            # root added after one side's list was made is not.
            self.retain = (
                (self.retain or frozenset())
                | (other.retain or frozenset())
                | {r.path for r in self.add}
            )


@dataclass(slots=True)
class _Failure:
    """The last job failed: what, why, and when it is tried again."""

    error: str
    attempts: int
    retry_at: float
    """`time.monotonic()` of the next try."""
    work: _Work
    free_bytes: int | None = None
    """Free space on the index's disk when it was found full (None: not a full disk)."""


@dataclass(slots=True)
class _Snapshot:
    state: str = "starting"
    detail: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    progress: Progress | None = None
    last_scan: protocol.IndexScan | None = None
    error: str = ""


class Indexer:
    def __init__(
        self,
        *,
        index_path: Path,
        config: IndexConfig,
        prices: PriceTable,
        bus: Bus,
        health: Health,
        roots: Iterable[Root],
        clock: Clock = utc_now,
    ) -> None:
        self.index_path = index_path
        self.config = config
        self.prices = prices
        self._bus = bus
        self._health = health
        self._clock = clock
        self._roots: list[Root] = list(roots)
        self._lock = threading.Lock()
        self._changed: set[str] = set()
        self._changed_since: float | None = None
        self._work = _Work(startup=True, scan=True)
        self._jobs = itertools.count(1)
        self._wake = anyio.Event()
        self._stopping = threading.Event()
        self._watch_restart = anyio.Event()
        self._snapshot = _Snapshot()
        self._last_progress = 0.0
        self._counted_at = 0.0
        self.watching = False
        self._engine: Engine | None = None
        self._failure: _Failure | None = None
        self._retry_files_at: float | None = None
        """`time.time()` when the next file with a transient problem is due."""
        health.add_summary("index", self.summary)

    # ------------------------------------------------------------------ public (event loop)

    @property
    def roots(self) -> list[Root]:
        return list(self._roots)

    def add_root(self, root: Root) -> None:
        """Index another directory of sessions (a teammate's inbox, say) from now on."""
        if any(r.path == root.path for r in self._roots):
            self._roots = [r for r in self._roots if r.path != root.path]
        self._roots.append(root)
        with self._lock:
            self._work.add.append(root)
            self._work.scan = True
            if self._work.retain is not None:
                self._work.retain |= {root.path}
        self._kick()

    def remove_root(self, path: Path) -> None:
        """Stop indexing a directory and forget the sessions read from it."""
        self._roots = [r for r in self._roots if r.path != path]
        with self._lock:
            self._work.remove.append(path)
            if self._work.retain is not None:
                self._work.retain -= {path}
        self._kick()

    def retain_remote_roots(self, keep: Iterable[Path]) -> None:
        """Received roots are exactly `keep` from now on: also forget those an earlier run
        indexed and that no inbox has any more (a member who left while karmad was not
        running), which `remove_root` cannot name."""
        with self._lock:
            self._work.retain = frozenset(keep)
        self._kick()

    def notify_changed(self, paths: Iterable[Path | str]) -> None:
        """Index these files now (what changed in them), without waiting for the watcher."""
        added = False
        with self._lock:
            for path in paths:
                self._changed.add(str(path))
                added = True
            if added and self._changed_since is None:
                self._changed_since = time.monotonic()
        if added:
            self._kick()

    def request_rebuild(self, *, text_only: bool = False) -> int:
        job = next(self._jobs)
        with self._lock:
            self._work.rebuild = True
            self._work.text_only = self._work.text_only or text_only
            if not text_only:
                self._work.text_only = False
            self._work.job = job
        self._kick()
        return job

    def status(self, root_counts: dict[str, tuple[int, int]]) -> protocol.IndexStatus:
        snap = self._snapshot
        counts = snap.counts
        lag = 0.0
        with self._lock:
            if self._changed_since is not None:
                lag = time.monotonic() - self._changed_since
        progress = None
        if snap.progress is not None and snap.state in ("scanning", "indexing text"):
            progress = _progress(snap.progress)
        return protocol.IndexStatus(
            state=snap.state if self.config.enabled else "disabled",
            detail=snap.detail,
            enabled=self.config.enabled,
            watching=self.watching,
            full_text=self.config.full_text,
            sessions=counts.get("sessions", 0),
            files=counts.get("files", 0),
            bytes=counts.get("bytes", 0),
            indexed_bytes=counts.get("indexed", 0),
            text_indexed_bytes=counts.get("text_indexed", 0),
            pending_bytes=max(counts.get("bytes", 0) - counts.get("indexed", 0), 0),
            missing_files=counts.get("missing", 0),
            bad_lines=counts.get("bad_lines", 0),
            lag_s=round(lag, 3),
            progress=progress,
            last_scan=snap.last_scan,
            price_version=self.prices.version,
            roots=[
                protocol.IndexRoot(
                    path=str(r.path),
                    origin=r.origin_key,
                    member=r.member_tag,
                    user=r.user_id,
                    sessions=root_counts.get(str(r.path), (0, 0))[0],
                    files=root_counts.get(str(r.path), (0, 0))[1],
                    exists=r.path.is_dir(),
                )
                for r in self._roots
            ],
            error=snap.error,
        )

    @property
    def changes_waiting(self) -> int:
        """Changed transcripts noticed but not yet taken up by the worker."""
        with self._lock:
            return len(self._changed)

    @property
    def text_complete(self) -> bool:
        counts = self._snapshot.counts
        return counts.get("text_indexed", 0) >= counts.get("indexed", 0)

    def summary(self) -> str:
        """One line for `daemon.status` and the service manager's status text."""
        snap = self._snapshot
        if not self.config.enabled:
            return ""
        progress = snap.progress
        if snap.state == "scanning" and progress is not None:
            p = _progress(progress)
            return f"indexing {p.percent:.0f}% ({progress.files_done}/{progress.files_total} files)"
        if snap.state == "indexing text" and progress is not None:
            return f"building search index {_progress(progress).percent:.0f}%"
        if snap.state == "error":
            return f"index: {snap.error}"
        sessions = snap.counts.get("sessions")
        return f"{sessions} sessions indexed" if sessions is not None else ""

    # ------------------------------------------------------------------ tasks

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Open the index, signal start-up done, then scan and follow changes."""
        if not self.config.enabled:
            self._set_state("disabled", "index.enabled is false")
            task_status.started()
            return
        store = await anyio.to_thread.run_sync(self._open)
        try:
            task_status.started()
            self._kick()  # the start-up scan
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._worker)
                if self.config.watch:
                    tg.start_soon(self._watch)
                await anyio.sleep_forever()
        finally:
            self._stopping.set()
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(store.close)

    def _open(self) -> Store:
        store = Store.open(self.index_path, INDEX_SCHEMA, check_same_thread=False)
        writer = IndexWriter(store, self.prices, lambda: int(time.time() * 1000))
        self._engine = Engine(
            writer,
            self.config,
            full_text=self.config.full_text,
            on_progress=self._from_thread(self._progress),
            on_sessions=self._sessions_changed,
            should_stop=self._stopping.is_set,
            take_changed=self._take_changed,
            on_rejected=self._rejected,
        )
        return store

    def _rejected(self, path: str, reason: str, root: Root) -> None:
        """In the worker thread: a received file failed validation."""
        data: dict[str, object] = {
            "path": path,
            "reason": reason,
            "member": root.member_tag,
            "device": root.device_id,
            "root": str(root.path),
        }
        anyio.from_thread.run_sync(self._bus.publish, "index.rejected", data)

    def _kick(self) -> None:
        self._wake.set()

    def _take_work(self) -> _Work:
        with self._lock:
            work = self._work
            self._work = _Work()
            return work

    def _take_changed(self) -> set[str]:
        with self._lock:
            changed = self._changed
            self._changed = set()
            return changed

    async def _worker(self) -> None:
        while True:
            with anyio.move_on_after(self._wait_s()):
                await self._wake.wait()
            self._wake = anyio.Event()
            work = self._take_work()
            retry_files = self._retry_files_at is not None and self._retry_files_at <= time.time()
            failure = self._failure
            if failure is not None and self._retry_now(failure):
                work.merge(failure.work)
            with self._lock:
                changed = bool(self._changed)
            if not work.pending() and not changed and not retry_files:
                continue
            await anyio.to_thread.run_sync(self._run_work, work, retry_files)
            with self._lock:
                if self._work.pending() or self._changed:
                    self._wake.set()

    def _wait_s(self) -> float:
        """How long the worker may sleep before a retry is due (infinite: no retry)."""
        wait = math.inf
        if self._retry_files_at is not None:
            wait = max(self._retry_files_at - time.time(), 0.0)
        failure = self._failure
        if failure is not None:
            wait = min(wait, max(failure.retry_at - time.monotonic(), 0.0))
            if failure.free_bytes is not None:
                wait = min(wait, FREE_SPACE_POLL_S)
        return wait

    def _retry_now(self, failure: _Failure) -> bool:
        if time.monotonic() >= failure.retry_at:
            return True
        if failure.free_bytes is None:
            return False
        free = _free_bytes(self.index_path)
        return free is not None and free > failure.free_bytes

    # ------------------------------------------------------------------ worker thread

    def _from_thread(self, fn: Callable[[Progress], None]) -> Callable[[Progress], None]:
        def call(progress: Progress) -> None:
            anyio.from_thread.run_sync(fn, progress)

        return call

    def _run_work(self, work: _Work, retry_files: bool = False) -> None:
        engine = self._engine
        assert engine is not None
        writer = engine.writer
        try:
            self._do_work(work, retry_files)
        except Stopped:
            return
        except Exception as exc:
            self._failed(work, exc)
        finally:
            self._retry_files_at = _next_retry(writer)

    def _do_work(self, work: _Work, retry_files: bool) -> None:
        engine = self._engine
        assert engine is not None
        writer = engine.writer
        self._do_jobs(work, retry_files)
        self._report_idle(writer.counts())

    def _failed(self, work: _Work, exc: Exception) -> None:
        """Keep the failure visible and try the work again later (a scan catches up with
        everything the failed job did not write, whatever it was)."""
        error = str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, StoreError):
            log.error("index_write_failed", error=error)
        else:
            log.exception("index_failed")
        previous = self._failure
        attempts = previous.attempts + 1 if previous is not None else 1
        retry = _Work(scan=True)
        if previous is not None:
            retry.merge(previous.work)
        retry.merge(work)
        retry.scan = True
        delay = min(RETRY_FIRST_S * 2 ** (attempts - 1), RETRY_MAX_S)
        self._failure = _Failure(
            error,
            attempts,
            time.monotonic() + delay,
            retry,
            _free_bytes(self.index_path) if isinstance(exc, StoreFull) else None,
        )
        self._report("error", f"trying again in {delay:.0f} s (attempt {attempts})", error=error)
        self._event("index.error", {"error": error, "attempts": attempts, "retry_in_s": delay})

    def _report_idle(self, counts: dict[str, int]) -> None:
        failure = self._failure
        if failure is None:
            self._report("idle", "", counts=counts)
            return
        # Work that failed is still to be done: the error stays until it is.
        wait = max(failure.retry_at - time.monotonic(), 0.0)
        self._report(
            "error",
            f"trying again in {wait:.0f} s (attempt {failure.attempts})",
            counts=counts,
            error=failure.error,
        )

    def _do_jobs(self, work: _Work, retry_files: bool) -> None:
        engine = self._engine
        assert engine is not None
        writer = engine.writer
        if work.startup:
            for root in self._roots:
                engine.add_root(root)
            if writer.stored_price_version() != self.prices.version:
                if writer.counts()["files"]:
                    self._report("repricing", f"price table {self.prices.version}")
                    writer.reprice()
                else:
                    with writer.store.transaction():
                        writer.set_price_version()
        for root in work.add:
            engine.add_root(root)
        for path in work.remove:
            engine.remove_root(path)
        if work.retain is not None:
            for path in engine.retain_remote_roots(work.retain):
                log.info("stale_root_removed", root=str(path))
        if work.rebuild:
            if work.text_only:
                writer.clear_text()
            else:
                writer.clear()
            self._event("index.rebuild", {"job": work.job, "text_only": work.text_only})
        if work.scan or work.rebuild or work.add:
            started = self._clock()
            announced = work.startup or work.rebuild or bool(work.add)
            if announced:
                self._event("index.started", {"job": work.job, "roots": len(engine.roots)})
            self._report("scanning", "")
            report = engine.scan()
            if self._failure is not None:
                # The scan brought every root up to date: the failed work is done.
                log.info("index_recovered", attempts=self._failure.attempts)
                self._failure = None
            # Idle before `index.done`, so a client that asks on seeing it is not told
            # about a scan that has finished.
            self._report_idle(writer.counts())
            # A catch-up scan that found nothing new is not worth a record or events.
            if announced or report.files:
                self._snapshot.last_scan = protocol.IndexScan(
                    started_at=started,
                    seconds=round(report.seconds, 3),
                    files=report.files,
                    bytes=report.bytes,
                )
                self._event(
                    "index.done",
                    {
                        "job": work.job,
                        "seconds": round(report.seconds, 3),
                        "files": report.files,
                        "bytes": report.bytes,
                        "sessions": report.sessions,
                    },
                )
                log.info(
                    "scan_done",
                    seconds=round(report.seconds, 3),
                    files=report.files,
                    bytes=report.bytes,
                    sessions=report.sessions,
                )
        while True:
            changed = self._take_changed()
            if not changed:
                break
            engine.process(changed)
        if retry_files:
            engine.retry_due()
        with self._lock:
            if not self._changed:
                self._changed_since = None

    def _report(
        self, state: str, detail: str, *, counts: dict[str, int] | None = None, error: str = ""
    ) -> None:
        def apply() -> None:
            snap = self._snapshot
            snap.state = state
            snap.detail = detail
            snap.error = error
            if counts is not None:
                snap.counts = counts
            if state in ("idle", "error"):
                snap.progress = None
            self._health.set("index", state, error or detail)

        anyio.from_thread.run_sync(apply)

    def _event(self, topic: str, data: dict[str, object]) -> None:
        anyio.from_thread.run_sync(self._bus.publish, topic, data)

    def _progress(self, progress: Progress) -> None:
        """On the event loop: a batch is done."""
        if not progress.files_total and not progress.bytes_total:
            return  # nothing to do: nothing to report
        snap = self._snapshot
        snap.progress = progress
        state = "scanning" if progress.phase == "scan" else "indexing text"
        if snap.state != state:
            snap.state = state
        now = time.monotonic()
        done = (
            progress.files_done >= progress.files_total
            and progress.bytes_done >= progress.bytes_total
        )
        if now - self._last_progress >= PROGRESS_EVERY_S or done:
            self._last_progress = now
            p = _progress(progress)
            self._health.set("index", state, f"{p.percent:.0f}%")
            self._bus.publish("index.progress", _to_dict(p), remember=False)

    def _sessions_changed(self, session_pks: list[int]) -> None:
        """In the worker thread: name the sessions a batch changed, for clients."""
        engine = self._engine
        assert engine is not None
        if len(session_pks) > SESSION_EVENT_LIMIT:
            data: dict[str, object] = {"count": len(session_pks)}
        else:
            rows = engine.writer.store.query(
                "SELECT session_id, origin_key FROM sessions "
                "WHERE id IN (SELECT value FROM json_each(?))",
                (codec.encode_json(sorted(session_pks)).decode(),),
            )
            data = {
                "count": len(rows),
                "sessions": [{"id": r["session_id"], "origin": r["origin_key"]} for r in rows],
            }
        # Totals for `index.status` cost a pass over the files table: at most once a second
        # while changes stream in (the idle report after each job refreshes them anyway).
        counts = None
        if time.monotonic() - self._counted_at >= 1.0:
            counts = engine.writer.counts()
            self._counted_at = time.monotonic()

        def apply() -> None:
            if counts is not None:
                self._snapshot.counts = counts
            self._bus.publish("index.sessions", data, remember=False)

        anyio.from_thread.run_sync(apply)

    def _set_state(self, state: str, detail: str) -> None:
        self._snapshot.state = state
        self._snapshot.detail = detail
        self._health.set("index", state, detail)

    # ------------------------------------------------------------------ watching

    def _note(self, path: str) -> None:
        with self._lock:
            self._changed.add(path)
            if self._changed_since is None:
                self._changed_since = time.monotonic()

    async def _watch(self) -> None:
        """Follow the roots with watchfiles; wait for roots that do not exist yet."""
        while True:
            present = [r.path for r in self._roots if await anyio.Path(r.path).is_dir()]
            missing = [r.path for r in self._roots if r.path not in present]
            self._watch_restart = anyio.Event()
            async with anyio.create_task_group() as tg:
                for path in missing:
                    tg.start_soon(self._await_directory, path)
                if present:
                    tg.start_soon(self._follow, present)
                    tg.start_soon(self._rescan_once_watching)
                else:
                    self.watching = False
                await self._watch_restart.wait()
                tg.cancel_scope.cancel()

    async def _rescan_once_watching(self) -> None:
        """Look again once the watcher runs: what changed between the last scan and the
        moment it started watching (a root that just appeared, start-up) has no event."""
        await anyio.sleep(WATCH_SETTLE_S)
        with self._lock:
            self._work.scan = True
        self._kick()

    async def _follow(self, paths: list[Path]) -> None:
        stop = anyio.Event()
        try:
            self.watching = True
            async for changes in awatch(
                *paths,
                stop_event=stop,
                step=self.config.watch_step_ms,
                debounce=self.config.watch_debounce_ms,
                recursive=True,
                watch_filter=None,
            ):
                noted = False
                for change, path in changes:
                    if (
                        path.endswith(".jsonl")
                        or "/tool-results" in path
                        or (change == Change.added and await anyio.Path(path).is_dir())
                    ):
                        self._note(path)
                        noted = True
                if noted:
                    self._kick()
                if not all([await anyio.Path(p).is_dir() for p in paths]):
                    break  # a root went away: watch again what exists
        except Exception as exc:  # the watcher died (a root removed, inotify limits...)
            log.warning("watch_failed", error=f"{type(exc).__name__}: {exc}")
            await anyio.sleep(1.0)
        finally:
            self.watching = False
            stop.set()
        self._watch_restart.set()

    async def _await_directory(self, path: Path) -> None:
        """Wait for a root that does not exist yet (Claude Code never ran here, say).

        Watches the closest existing ancestor, not recursively, and looks again after
        each change there, moving down as the missing directories appear.
        """
        while not await anyio.Path(path).is_dir():
            ancestor = await _closest_existing(path)
            stop = anyio.Event()

            async def look_again(ancestor: Path = ancestor, stop: anyio.Event = stop) -> None:
                # What appeared before the watcher was in place has no event.
                await anyio.sleep(WATCH_SETTLE_S)
                if await _closest_existing(path) != ancestor:
                    stop.set()

            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(look_again)
                    async for _ in awatch(
                        ancestor,
                        stop_event=stop,
                        recursive=False,
                        step=max(self.config.watch_step_ms, 200),
                        debounce=self.config.watch_debounce_ms,
                    ):
                        break
                    tg.cancel_scope.cancel()
            except Exception as exc:  # the ancestor went away meanwhile
                log.warning("watch_failed", path=str(ancestor), error=str(exc))
                await anyio.sleep(5.0)
            finally:
                stop.set()
        log.info("root_appeared", path=str(path))
        with self._lock:
            self._work.scan = True
        self._kick()
        self._watch_restart.set()


async def _closest_existing(path: Path) -> Path:
    """`path` if it is a directory, else its closest ancestor that is one."""
    current = path
    while not await anyio.Path(current).is_dir() and current != current.parent:
        current = current.parent
    return current


def _free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path.parent).free
    except OSError:
        return None


def _next_retry(writer: IndexWriter) -> float | None:
    try:
        at = writer.problems.next_retry()
    except StoreError:  # the index cannot be read now: the failed job's retry covers it
        return None
    return at / 1000 if at is not None else None


def _progress(progress: Progress) -> protocol.IndexProgress:
    elapsed = time.monotonic() - progress.started
    if progress.bytes_total:
        fraction = progress.bytes_done / progress.bytes_total
    elif progress.files_total:
        fraction = progress.files_done / progress.files_total
    else:
        fraction = 1.0
    fraction = min(max(fraction, 0.0), 1.0)
    eta = elapsed * (1 - fraction) / fraction if 0 < fraction < 1 else None
    return protocol.IndexProgress(
        phase=progress.phase,
        files_done=progress.files_done,
        files_total=progress.files_total,
        bytes_done=progress.bytes_done,
        bytes_total=progress.bytes_total,
        percent=round(fraction * 100, 1),
        elapsed_s=round(elapsed, 3),
        eta_s=round(eta, 1) if eta is not None else None,
    )


def _to_dict(progress: protocol.IndexProgress) -> dict[str, object]:
    return {
        "phase": progress.phase,
        "files_done": progress.files_done,
        "files_total": progress.files_total,
        "bytes_done": progress.bytes_done,
        "bytes_total": progress.bytes_total,
        "percent": progress.percent,
        "elapsed_s": progress.elapsed_s,
        "eta_s": progress.eta_s,
    }


def open_index(path: Path) -> Store:
    """The index's read connection (migrating the file first).

    The index can always be rebuilt from transcripts, so a file that is damaged, or was
    written by a newer karmad, is moved aside and replaced by an empty one rather than
    stopping the daemon.
    """
    try:
        return Store.open(path, INDEX_SCHEMA)
    except (StoreCorrupt, StoreTooNew) as exc:
        aside = path.with_name(f"{path.name}.unusable-{int(time.time())}")
        log.warning("index_set_aside", path=str(path), moved_to=str(aside), error=str(exc))
        for suffix in ("", "-wal", "-shm"):
            source = Path(str(path) + suffix)
            if source.exists():
                source.rename(Path(str(aside) + suffix))
        return Store.open(path, INDEX_SCHEMA)
