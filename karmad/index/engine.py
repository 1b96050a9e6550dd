"""The indexing work itself: decide what to read, read and parse it, write it.

Runs in the indexer's worker thread (blocking file and database I/O), one job at a
time. Long jobs (a first scan of a large history) are cut into batches of bounded size,
each its own short transaction; a large backlog is parsed by a pool of processes while
this thread writes the previous batch, because parsing, not the disk, is the limit.
Between batches the engine serves files that changed meanwhile first, so a live
session stays current during a long scan.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

from karmad import logs
from karmad.config import IndexConfig
from karmad.index import discovery, remote, work
from karmad.index.discovery import FileRef, Root
from karmad.index.rows import FileRow, FileUpdate
from karmad.index.work import Limits, ParseJob, ParseResult
from karmad.index.writer import IndexWriter

log = logs.get("karmad.index")

POOL_MIN_BYTES: Final = 64 << 20
"""A backlog smaller than this is parsed in the worker thread: starting parser
processes costs more than it saves."""
MAX_BATCH_FILES: Final = 4000
PIECES_PER_WORKER: Final = 2
"""A batch is cut into this many pieces per parser (the worker thread counts as one),
so that the thread and the processes can share out the parsing of a batch evenly."""


@dataclass(slots=True)
class Progress:
    phase: str
    """`scan` (aggregates) or `text` (full-text index)."""
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    started: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class ScanReport:
    seconds: float
    files: int
    bytes: int
    sessions: int


class Stopped(Exception):
    """The daemon is shutting down; the job ends between two batches."""


@dataclass(slots=True)
class _Job:
    ref: FileRef
    root_id: int
    row: FileRow | None
    size: int

    @property
    def new_bytes(self) -> int:
        return max(self.size - (self.row.usage_offset if self.row is not None else 0), 0)


def parser_processes(config: IndexConfig) -> int:
    """Parser processes for a large backlog: by default one per CPU but the one the
    worker thread needs to write, at most 4; none on a single CPU."""
    if config.parse_processes >= 0:
        return config.parse_processes
    return max(0, min(4, (os.cpu_count() or 1) - 1))


class Engine:
    def __init__(
        self,
        writer: IndexWriter,
        config: IndexConfig,
        *,
        full_text: bool,
        on_progress: Callable[[Progress], None],
        on_sessions: Callable[[list[int]], None],
        should_stop: Callable[[], bool],
        take_changed: Callable[[], set[str]],
        pool_min_bytes: int = POOL_MIN_BYTES,
        on_rejected: Callable[[str, str, Root], None] | None = None,
    ) -> None:
        self.writer = writer
        self.pool_min_bytes = pool_min_bytes
        self.config = config
        self.full_text = full_text and writer.fts
        self.limits = Limits(config.chunk_bytes, config.max_line_bytes)
        self._on_progress = on_progress
        self._on_sessions = on_sessions
        self._should_stop = should_stop
        self._take_changed = take_changed
        self._on_rejected = on_rejected
        self.roots: dict[int, Root] = {}

    # ------------------------------------------------------------------ roots

    def add_root(self, root: Root) -> int:
        with self.writer.store.transaction():
            root_id = self.writer.files.root_id(root)
        self.roots[root_id] = root
        return root_id

    def remove_root(self, path: Path) -> None:
        for root_id, root in list(self.roots.items()):
            if root.path == path:
                self.writer.remove_root(root_id)
                del self.roots[root_id]

    def retain_remote_roots(self, keep: frozenset[Path]) -> list[Path]:
        """Forget every received root not in `keep`, those indexed by an earlier run too
        (an inbox that went while karmad was not running); returns what was forgotten."""
        gone = []
        for path, root_id in sorted(self.writer.files.stored_roots("remote").items()):
            if path not in keep:
                self.writer.remove_root(root_id)
                self.roots.pop(root_id, None)
                gone.append(path)
        return gone

    def root_of(self, path: Path) -> tuple[int, Root] | None:
        for root_id, root in self.roots.items():
            for base in (root.path, root.archive):
                if base is not None and (path == base or base in path.parents):
                    return root_id, root
        return None

    def _archived(
        self,
        root: Root,
        listing: list[tuple[FileRef, os.stat_result]],
        known: dict[str, FileRow],
    ) -> list[tuple[FileRef, os.stat_result]]:
        """The root's archived files whose live file is gone, to be read from the archive.

        A file's row follows it between the two places (live, archived) rather than a
        second row being made: they hold the same lines, which must count once.
        """
        assert root.archive is not None
        live = {ref.path for ref, _ in listing}
        moves: list[tuple[FileRow, str]] = []
        for path in live:
            other = discovery.twin(root, path)
            if path not in known and other is not None and other in known:
                moves.append((known[other], path))  # back where Claude Code has it
        found: list[tuple[FileRef, os.stat_result]] = []
        for ref, st in discovery.walk_archive(root):
            live_path = discovery.twin(root, ref.path)
            if live_path is None or live_path in live:
                continue  # the live file is the one read
            if ref.path not in known and live_path in known:
                moves.append((known[live_path], ref.path))
            found.append((ref, st))
        if moves:
            self.writer.files.move([(row.id, path) for row, path in moves])
            for row, path in moves:
                known.pop(row.path, None)
                known[path] = replace(row, path=path)
        return found

    # ------------------------------------------------------------------ jobs

    def scan(self) -> ScanReport:
        """Bring every root up to date with what is on disk."""
        started = time.monotonic()
        jobs: list[_Job] = []
        for root_id, root in self.roots.items():
            known = self.writer.files.of_root(root_id)
            seen: set[str] = set()
            if root.origin == "remote" and (problem := remote.root_path_problem(root)):
                self._rejected(root_id, root, str(root.path), (0, 0, 0), problem)
                continue
            rejected = self.writer.files.rejected_stats(root_id) if root.origin == "remote" else {}
            listing = list(discovery.walk(root.path))
            if root.archive is not None:
                listing += self._archived(root, listing, known)
            for ref, st in listing:
                seen.add(ref.path)
                if not self._admissible(root_id, root, ref, st, rejected):
                    continue
                if not self._readable(root_id, ref, st):
                    continue
                row = known.get(ref.path)
                if (
                    row is not None
                    and not row.missing
                    and (row.inode, row.size, row.mtime_ns)
                    == (
                        st.st_ino,
                        st.st_size,
                        st.st_mtime_ns,
                    )
                ):
                    continue
                jobs.append(_Job(ref, root_id, row, st.st_size))
            gone = [row.id for path, row in known.items() if path not in seen and not row.missing]
            self.writer.files.mark_missing(gone)
        progress = Progress(
            "scan", files_total=len(jobs), bytes_total=sum(j.new_bytes for j in jobs)
        )
        self._on_progress(progress)
        self._run(jobs, progress)
        for root_id, root in self.roots.items():  # once the sessions exist
            self._tool_results(root_id, root)
        if self.full_text:
            self.text_backlog()
        return ScanReport(
            seconds=time.monotonic() - started,
            files=len(jobs),
            bytes=progress.bytes_done,
            sessions=self.writer.counts()["sessions"],
        )

    def process(self, paths: Iterable[str]) -> None:
        """Index what changed at these paths (from the watcher or `notify_changed`)."""
        jobs: list[_Job] = []
        missing: list[int] = []
        for text in sorted(set(self._expand(paths))):
            path = Path(text)
            found = self.root_of(path)
            if found is None:
                self.writer.problems.clear([text])
                continue
            root_id, root = found
            located = discovery.tool_results_session(root.path, path)
            if located is not None:
                files, size = discovery.tool_results(root.path, *located)
                self.writer.files.set_tool_results(root_id, [(*located, files, size)])
                continue
            ref = discovery.locate(root, path)
            if ref is None:
                self.writer.problems.clear([text])
                continue
            row = self.writer.files.get(ref.path)
            other = discovery.twin(root, ref.path)
            try:
                st = os.lstat(ref.path) if root.origin == "remote" else os.stat(ref.path)
            except (FileNotFoundError, NotADirectoryError):
                self.writer.problems.clear([ref.path])
                archived = self._archived_twin(root, ref, row, other)
                if archived is None:
                    if row is not None and not row.missing:
                        missing.append(row.id)
                    continue
                ref, row, st = archived
            except OSError as exc:  # a directory on the way that may not be searched
                self._problem(root_id, ref, f"not readable: {work.os_reason(exc)}", True)
                continue
            else:
                if other is not None and root.path not in path.parents and os.path.exists(other):
                    continue  # an archived file whose live file exists: that one is read
                if row is None and other is not None:
                    row = self._follow(self.writer.files.get(other), ref.path)
            if root.origin == "remote":
                rejected = self.writer.files.rejected_stats(root_id)
                if not self._admissible(root_id, root, ref, st, rejected):
                    continue
            if not self._readable(root_id, ref, st):
                continue
            jobs.append(_Job(ref, root_id, row, st.st_size))
        self.writer.files.mark_missing(missing)
        self._run(jobs, None)

    def _follow(self, row: FileRow | None, path: str) -> FileRow | None:
        """Point a file's row at the place it is read from now."""
        if row is None:
            return None
        self.writer.files.move([(row.id, path)])
        return replace(row, path=path)

    def _archived_twin(
        self, root: Root, ref: FileRef, row: FileRow | None, other: str | None
    ) -> tuple[FileRef, FileRow | None, os.stat_result] | None:
        """A live file that is gone, when the archive still has it: read from there."""
        if other is None or root.path not in Path(ref.path).parents:
            return None
        try:
            st = os.stat(other)
        except (FileNotFoundError, NotADirectoryError):
            return None
        archived = discovery.locate(root, Path(other))
        if archived is None:
            return None
        row = self.writer.files.get(other) if row is None else self._follow(row, other)
        return archived, row, st

    def retry_due(self) -> None:
        """Read again the files whose transient problem is due for another try."""
        due = self.writer.problems.due()
        if not due:
            return
        log.info("files_retried", files=len(due))
        self.process(due)
        if self.full_text:
            self.text_backlog()

    def _expand(self, paths: Iterable[str]) -> Iterator[str]:
        """Paths as given, and for a directory everything in it.

        A file created right after its directory may be missed by the watcher (it can
        only watch the directory once it has heard of it), so a new directory under a
        root is read whole.
        """
        for text in paths:
            if not os.path.isdir(text):
                yield text
                continue
            if self.root_of(Path(text)) is None:
                continue
            for folder, _dirs, files in os.walk(text):
                for name in files:
                    yield os.path.join(folder, name)

    def text_backlog(self) -> None:
        """Build the full-text index for lines the aggregates pass has already read."""
        if not self.full_text:
            return
        counts = self.writer.counts()
        progress = Progress("text", bytes_total=max(counts["indexed"] - counts["text_indexed"], 0))
        self._on_progress(progress)
        after = 0
        while True:
            self._check_stop()
            # Past the last file looked at: one that cannot be read now stays behind
            # (recorded as a problem, tried again later) without holding up the others.
            rows = self.writer.files.behind_on_text(500, after)
            if not rows:
                break
            after = rows[-1].id
            progress.files_total += len(rows)
            updates: list[FileUpdate] = []
            size = 0
            for row in rows:
                root = self.roots.get(row.root_id)
                ref = discovery.locate(root, Path(row.path)) if root is not None else None
                if ref is None:
                    continue
                # The digest covers the bytes up to the aggregates pass's offset: checked
                # first, it tells a file rewritten since (left to the next scan to reset).
                result = work.parse_file(
                    ParseJob(
                        row.path,
                        ref.kind == "main",
                        row.text_offset,
                        row.text_lines,
                        expect=row.digest,
                        expect_at=row.usage_offset,
                        text_only_until=row.usage_offset,
                    ),
                    self.limits,
                )
                if result.status == "failed":
                    self._failed(row.root_id, ref, result)
                if result.status != "ok":
                    continue
                updates.append(FileUpdate(ref, row.root_id, row, result))
                size += row.usage_offset - row.text_offset
                progress.files_done += 1
                progress.bytes_done += row.usage_offset - row.text_offset
                if size >= self.config.batch_bytes:
                    self._apply(updates)
                    updates, size = [], 0
                    self._on_progress(progress)
                    self._serve_changed()
            self._apply(updates)
            self._on_progress(progress)

    # ------------------------------------------------------------------ internals

    def _check_stop(self) -> None:
        if self._should_stop():
            raise Stopped

    def _tool_results(self, root_id: int, root: Root) -> None:
        found: list[tuple[str, str, int, int]] = []
        for project in discovery.list_dir(str(root.path)):
            if not project.is_dir(follow_symlinks=False):
                continue
            for entry in discovery.list_dir(project.path):
                if entry.is_dir(follow_symlinks=False) and os.path.isdir(
                    os.path.join(entry.path, discovery.TOOL_RESULTS)
                ):
                    files, size = discovery.tool_results(root.path, project.name, entry.name)
                    found.append((project.name, entry.name, files, size))
        self.writer.files.set_tool_results(root_id, found)

    def _serve_changed(self) -> None:
        changed = self._take_changed()
        if changed:
            self.process(changed)

    def _apply(self, updates: list[FileUpdate]) -> None:
        if not updates:
            return
        touched, stale = self.writer.apply(updates, self.roots)
        self.writer.problems.clear(up.ref.path for up in updates)
        if touched:
            self._on_sessions(touched)
        if stale:
            # Read meanwhile by another job (a change served during a scan): read again
            # from where that left off.
            self.process(stale)

    def _parse_job(self, job: _Job) -> ParseJob:
        row = job.row
        main = job.ref.kind == "main"
        if row is None or row.usage_offset == 0 or row.session_pk is None:
            return ParseJob(job.ref.path, main, text=self.full_text)
        caught_up = self.full_text and row.text_offset == row.usage_offset
        return ParseJob(
            job.ref.path,
            main,
            row.usage_offset,
            row.usage_lines,
            row.records,
            expect=row.digest,
            text=caught_up,
        )

    def _batches(self, jobs: list[_Job]) -> list[list[_Job]]:
        batches: list[list[_Job]] = []
        current: list[_Job] = []
        size = 0
        for job in jobs:
            current.append(job)
            size += job.new_bytes
            if size >= self.config.batch_bytes or len(current) >= MAX_BATCH_FILES:
                batches.append(current)
                current, size = [], 0
        if current:
            batches.append(current)
        return batches

    def _parsed(self, batches: list[list[_Job]]) -> Iterator[list[ParseResult]]:
        """Results batch by batch, parsed in processes when the backlog is large.

        This thread writes each batch, and whenever the result it needs next is not
        ready it parses a piece no process has started yet: without that it would wait
        while the processes start and whenever they fall behind, and the CPU it runs on
        would sit idle meanwhile.
        """
        total = sum(j.new_bytes for b in batches for j in b)
        workers = parser_processes(self.config)
        if workers < 1 or total < self.pool_min_bytes or len(batches) < 2:
            for batch in batches:
                yield [work.parse_file(self._parse_job(j), self.limits) for j in batch]
            return
        # Pieces small enough to share out evenly; results still come back in order.
        cuts = [_split(b, PIECES_PER_WORKER * (workers + 1)) for b in batches]
        pieces = [p for c in cuts for p in c]
        # spawn, not fork: the daemon has threads, and a forked copy of a threaded
        # process may deadlock; the children exit with the pool, nothing lingers.
        context = multiprocessing.get_context("spawn")
        log.info("parser_pool", processes=workers, bytes=total)
        with contextlib.ExitStack() as stack:
            pool = stack.enter_context(ProcessPoolExecutor(max_workers=workers, mp_context=context))
            # Leaving early (karmad stopping, an error while writing): the pieces still
            # queued are dropped rather than parsed for nobody.
            stack.callback(pool.shutdown, wait=False, cancel_futures=True)
            futures = [
                pool.submit(
                    work.parse_many,
                    work.encode_jobs(self.limits, [self._parse_job(j) for j in p]),
                )
                for p in pieces
            ]
            stolen: dict[int, list[ParseResult]] = {}
            steal_from = 0

            def result(index: int) -> list[ParseResult]:
                nonlocal steal_from
                steal_from = max(steal_from, index)
                while index not in stolen and not futures[index].done():
                    while steal_from < len(futures) and not futures[steal_from].cancel():
                        steal_from += 1
                    if steal_from == len(futures):
                        break  # every piece is started: wait for this one
                    stolen[steal_from] = [
                        work.parse_file(self._parse_job(j), self.limits) for j in pieces[steal_from]
                    ]
                    steal_from += 1
                if index in stolen:
                    return stolen.pop(index)
                try:
                    return work.RESULTS.decode(futures[index].result())
                except Exception as exc:  # the parser process died: parse it here
                    log.warning("parser_process_failed", error=f"{type(exc).__name__}: {exc}")
                    return [work.parse_file(self._parse_job(j), self.limits) for j in pieces[index]]

            index = 0
            for cut in cuts:
                out: list[ParseResult] = []
                for _ in cut:
                    out += result(index)
                    index += 1
                yield out
                if self._should_stop():
                    return

    def _run(self, jobs: list[_Job], progress: Progress | None) -> None:
        batches = self._batches(jobs)
        for batch, results in zip(batches, self._parsed(batches), strict=False):
            self._check_stop()
            updates: list[FileUpdate] = []
            missing: list[int] = []
            rewritten: list[int] = []
            for job, result in zip(batch, results, strict=True):
                root = self.roots.get(job.root_id)
                if result.status == "ok" and root is not None and root.origin == "remote":
                    reason = remote.after_reading(
                        job.ref, result, self.config.max_received_file_bytes
                    )
                    if reason is not None:
                        stat = (result.inode, result.size, result.mtime_ns)
                        session_pk = self._rejected(job.root_id, root, job.ref.path, stat, reason)
                        if session_pk is not None:
                            rewritten.append(session_pk)
                        continue
                if result.status == "failed":
                    self._failed(job.root_id, job.ref, result)
                elif result.status == "gone":
                    if os.path.lexists(job.ref.path):  # replaced while being read
                        self._problem(job.root_id, job.ref, "vanished while being read", True)
                    else:
                        self.writer.problems.clear([job.ref.path])
                        if job.row is not None:
                            missing.append(job.row.id)
                elif result.status == "rewritten":
                    if job.row is not None and job.row.session_pk is not None:
                        rewritten.append(job.row.session_pk)
                else:
                    updates.append(FileUpdate(job.ref, job.root_id, job.row, result))
                    if progress is not None:
                        progress.bytes_done += result.offset - (
                            job.row.usage_offset if job.row is not None else 0
                        )
                if progress is not None:
                    progress.files_done += 1
            self.writer.files.mark_missing(missing)
            self._apply(updates)
            for session_pk in sorted(set(rewritten)):
                self._reread_session(session_pk)
            if progress is not None:
                self._on_progress(progress)
                self._serve_changed()
        self._check_stop()

    def _readable(self, root_id: int, ref: FileRef, st: os.stat_result) -> bool:
        """Only regular files are read; a lasting problem waits for the file to change."""
        if not stat.S_ISREG(st.st_mode):
            if not self.writer.problems.waits_for_change(ref.path, _stat_of(st)):
                self._problem(root_id, ref, work.not_regular(st.st_mode), False, _stat_of(st))
            return False
        return not self.writer.problems.waits_for_change(ref.path, _stat_of(st))

    def _failed(self, root_id: int, ref: FileRef, result: ParseResult) -> None:
        stat_now = (0, 0, 0)
        if not result.transient:  # waits for a change: remember what the file was
            with contextlib.suppress(OSError):
                stat_now = _stat_of(os.stat(ref.path))
        self._problem(root_id, ref, result.problem, result.transient, stat_now)

    def _problem(
        self,
        root_id: int,
        ref: FileRef,
        reason: str,
        transient: bool,
        stat_now: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        problem = self.writer.problems.record(
            root_id, ref.path, ref.session_id, reason, transient=transient, stat=stat_now
        )
        if problem.attempts == 1:
            log.warning("file_not_indexed", path=ref.path, reason=reason, transient=transient)

    def _admissible(
        self,
        root_id: int,
        root: Root,
        ref: FileRef,
        st: os.stat_result,
        rejected: dict[str, tuple[int, int, int]],
    ) -> bool:
        """Remote roots: skip files refused before (until they change) or refused now."""
        if root.origin != "remote":
            return True
        stat = (st.st_ino, st.st_size, st.st_mtime_ns)
        if rejected.get(ref.path) == stat:
            return False
        reason = remote.before_reading(root, ref, st, self.config.max_received_file_bytes)
        if reason is not None:
            session_pk = self._rejected(root_id, root, ref.path, stat, reason)
            if session_pk is not None:
                self._reread_session(session_pk)
            return False
        if ref.path in rejected:
            self.writer.files.unreject(ref.path)  # changed since: give it another look
        return True

    def _rejected(
        self, root_id: int, root: Root, path: str, stat: tuple[int, int, int], reason: str
    ) -> int | None:
        log.warning("file_rejected", path=path, reason=reason, member=root.member_tag)
        session_pk = self.writer.files.reject(root_id, path, stat, reason)
        if self._on_rejected is not None:
            self._on_rejected(path, reason, root)
        return session_pk

    def _reread_session(self, session_pk: int) -> None:
        """Forget a session whose file was rewritten and read all its files again."""
        log.info("session_reread", session_pk=session_pk)
        rows = self.writer.files.of_session(session_pk)
        self.writer.reset_sessions([session_pk])
        updates: list[FileUpdate] = []
        for row in rows:
            root = self.roots.get(row.root_id)
            ref = discovery.locate(root, Path(row.path)) if root is not None else None
            if ref is None:
                continue
            result = work.parse_file(
                ParseJob(row.path, ref.kind == "main", text=self.full_text), self.limits
            )
            if result.status == "failed":
                self._failed(row.root_id, ref, result)
            if result.status == "ok":
                fresh = replace(
                    row,
                    usage_offset=0,
                    usage_lines=0,
                    records=0,
                    text_offset=0,
                    text_lines=0,
                    size=0,
                    digest=None,
                )
                updates.append(FileUpdate(ref, row.root_id, fresh, result))
        self._apply(updates)


def _stat_of(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _split(batch: list[_Job], parts: int) -> list[list[_Job]]:
    """Cut a batch into up to `parts` pieces of similar byte size, keeping order."""
    if parts <= 1 or len(batch) <= 1:
        return [batch]
    target = sum(j.new_bytes for j in batch) / parts
    pieces: list[list[_Job]] = [[]]
    size = 0
    for job in batch:
        if size >= target and len(pieces) < parts:
            pieces.append([])
            size = 0
        pieces[-1].append(job)
        size += job.new_bytes
    return pieces
