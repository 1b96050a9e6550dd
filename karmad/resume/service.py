"""Resume jobs: decided at once on the event loop, written in a worker thread.

`start` (the `session.resume` handler's work) resolves the session, the local checkout
and where the transcript goes, which costs a few index reads and stats, and answers with
the id and command right away; the copy itself, which can be tens of megabytes, runs in a
thread one job at a time, and `session.resumeResult` (or the `session.resumed` event)
says when it is done.

Identity: this member's own session keeps its id where no transcript with that id
exists here; any other member's session (a teammate's, or this person's other machine)
gets `plan.derived_id(original id, this member)`, so continuing it never collides with
the original. A target that exists is never replaced: it is either what an earlier
resume wrote (recognised by the hash recorded in `resumes`; the answer is "already"),
the session's own transcript ("present"), or a conflict.
"""

from __future__ import annotations

import itertools
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import anyio
import msgspec
from anyio.abc import TaskStatus

from karmad import codec, logs, protocol
from karmad.archive import layout
from karmad.bus import Bus, Clock
from karmad.errors import KarmadError
from karmad.flow import manifest as mf
from karmad.index import discovery
from karmad.index.facts import Facts
from karmad.index.queries import IndexQueries
from karmad.paths import Paths
from karmad.protocol import ErrorCode
from karmad.resume import checkout as checkouts
from karmad.resume import plan, writer
from karmad.resume.claudecode import command, project_dir_name
from karmad.resume.rewrite import Places, Rewriter, rules
from karmad.store import Row, Store

log = logs.get("karmad.resume")

KEEP_JOBS: Final = 50
HEAD_BYTES: Final = 1 << 20
"""How much of a transcript is searched for the sender's Claude Code config directory."""
_FACTS = codec.Decoder(Facts)

Work = Literal["materialise", "restore", "verify", "none", "conflict"]


@dataclass
class _Job:
    result: protocol.SessionResume
    work: Work
    main: Path
    transcripts: list[tuple[Path, str, str]]
    """(path, kind, agent id) of the session's transcripts other than the main one."""
    target: Path
    own: bool
    cwds: list[str]
    sender_roots: tuple[str, ...]
    local_root: str
    provenance: Row | None = None
    restore: list[tuple[Path, Path]] = field(default_factory=list)


def _facts(row: Row) -> Facts:
    try:
        return _FACTS.decode(row["facts"])
    except codec.InvalidData:
        return Facts()


class Resumer:
    def __init__(
        self,
        *,
        paths: Paths,
        store: Store,
        index: IndexQueries,
        member: Callable[[], str | None],
        bus: Bus,
        clock: Clock,
    ) -> None:
        self._paths = paths
        self._store = store
        self._index = index
        self._member = member
        self._bus = bus
        self._clock = clock
        self._ids = itertools.count(1)
        self._jobs: OrderedDict[int, protocol.SessionResume] = OrderedDict()
        self._pending: list[tuple[int, _Job]] = []
        self._running: dict[str, int] = {}
        self._wake = anyio.Event()

    # ------------------------------------------------------------------ event loop

    def result(self, job: int) -> protocol.SessionResume | None:
        return self._jobs.get(job)

    def start(self, p: protocol.SessionResumeParams) -> protocol.SessionResume:
        row = self._index.resolve(p.id, p.origin)
        job = self._plan(row, p.checkout)
        target = str(job.target)
        running = self._running.get(target)
        if running is not None and running in self._jobs:
            return self._jobs[running]  # the same resume is under way: join it
        if job.work == "conflict":
            raise KarmadError(
                ErrorCode.ALREADY_EXISTS,
                f"{job.target} already exists and was not written by karmad; nothing was changed",
                field="id",
            )
        number = next(self._ids)
        job.result = msgspec.structs.replace(job.result, job=number)
        self._jobs[number] = job.result
        while len(self._jobs) > KEEP_JOBS:
            self._jobs.popitem(last=False)
        if job.work == "none":
            return job.result
        self._running[target] = number
        self._pending.append((number, job))
        self._wake.set()
        return job.result

    def _files(self, session_pk: int) -> list[Row]:
        return self._index.store.query(
            "SELECT path, kind, agent_id, missing FROM files WHERE session_pk = ? "
            "ORDER BY kind != 'main', path",
            (session_pk,),
        )

    def _checkouts(self, identity: str) -> list[str]:
        """This machine's checkouts of a project, most recently used first."""
        rows = self._index.store.query(
            "SELECT s.project_path, MAX(s.last_ts) AS last FROM sessions s "
            "JOIN roots r ON r.id = s.root_id WHERE r.origin = 'local' AND s.project = ? "
            "AND s.project_path != '' GROUP BY s.project_path ORDER BY last DESC LIMIT 50",
            (identity,),
        )
        return [str(r["project_path"]) for r in rows]

    def _plan(self, row: Row, given: str | None) -> _Job:
        session_id = str(row["session_id"])
        own = row["origin_key"] == "local"
        files = self._files(int(row["id"]))
        mains = [f for f in files if f["kind"] == "main" and not f["missing"]]
        if not mains or not os.path.isfile(mains[0]["path"]):
            raise KarmadError(
                ErrorCode.NOT_FOUND,
                f"the transcript of session {session_id} is not on this machine any more "
                "(not archived)",
                field="id",
            )
        main = Path(mains[0]["path"])
        identity = str(row["project"])
        if not identity:
            raise KarmadError(
                ErrorCode.UNSUPPORTED,
                f"session {session_id} names no working directory: its project is unknown",
                field="id",
            )
        by_remote = row["project_source"] in ("git", "team")
        if given:
            local_root = checkouts.check(given, identity, by_remote)
        else:
            local_root = checkouts.choose(self._checkouts(identity), identity, by_remote)
        facts = _facts(row)
        cwds = list(facts.cwds) or [str(row["cwd"])]
        first = str(row["cwd"]) or cwds[0]
        if own:
            checkout = str(row["project_path"]) or first
        else:
            checkout = plan.sender_checkout(first, self._sent_checkout(main, session_id))
        roots = plan.sender_roots(cwds, checkout)
        directory = plan.start_directory(first, roots, local_root)
        if not os.path.isdir(directory):
            directory = local_root
        directory = os.path.realpath(directory)
        projects = self._paths.claude_projects
        folder = projects / project_dir_name(directory)
        transcripts = [
            (Path(f["path"]), str(f["kind"]), str(f["agent_id"]))
            for f in files
            if f["kind"] != "main" and not f["missing"]
        ]

        def build(new_id: str, work: Work) -> _Job:
            target = folder / f"{new_id}.jsonl"
            result = protocol.SessionResume(
                job=0,
                state="running" if work != "none" else "done",
                session_id=new_id,
                path=str(target),
                checkout=local_root,
                directory=directory,
                command=command(directory, new_id),
                origin_session=session_id,
                origin=str(row["origin_key"]),
                member="" if own else str(row["member_tag"]),
            )
            return _Job(result, work, main, transcripts, target, own, cwds, roots, local_root)

        if own:
            target = folder / f"{session_id}.jsonl"
            made = self._provenance(target)
            if made is not None:
                job = build(session_id, "verify")
                job.provenance = made
                return job
            if target.exists() and _same_file(target, main):
                job = build(session_id, "none")
                job.result.outcome = "present"
                job.result.message = "the transcript is where Claude Code looks for it already"
                return job
            if not target.exists() and not self._elsewhere(session_id, target):
                job = build(session_id, "materialise")
                restore = self._restorable(job)
                if restore:
                    job.work = "restore"
                    job.restore = restore
                return job
        member = self._member()
        if member is None:
            raise KarmadError(ErrorCode.NOT_INITIALISED, "this member has no identity yet")
        new_id = plan.derived_id(session_id, member)
        job = build(new_id, "materialise")
        made = self._provenance(job.target)
        if made is not None:
            job.work = "verify"
            job.provenance = made
        elif job.target.exists() or (folder / new_id).exists():
            job.work = "conflict"
        return job

    def _sent_checkout(self, main: Path, session_id: str) -> str:
        """The sender's checkout root, from the manifest beside a received session."""
        manifest = discovery.root_of(main, "main") / mf.MANIFESTS / f"{session_id}.json"
        try:
            data = manifest.read_bytes()[: 1 << 20]
            return mf.decode(data).checkout
        except (OSError, codec.InvalidData):
            return ""

    def _elsewhere(self, session_id: str, target: Path) -> bool:
        """Whether Claude Code has a transcript with this id in another project folder
        (then reusing the id would give `claude --resume` two files to choose from)."""
        name = f"{session_id}.jsonl"
        for entry in discovery.list_dir(str(self._paths.claude_projects)):
            candidate = Path(entry.path) / name
            if candidate != target and candidate.exists():
                return True
        return False

    def _restorable(self, job: _Job) -> list[tuple[Path, Path]]:
        """An own session whose archived files go back exactly where they were, paths
        unchanged: (archived, live) for each file, the main transcript last; else []."""
        archive = self._paths.archive_projects
        if archive not in job.main.parents:
            return []
        if self._paths.claude_projects / job.main.relative_to(archive) != job.target:
            return []
        sender, local = self._places(job, None)
        if rules(sender, local):
            return []
        pairs: list[tuple[Path, Path]] = []
        session = job.main.with_suffix("").name
        for src, rel in layout.side_files(archive, job.main.parent.name, session):
            pairs.append((src, job.target.with_suffix("") / rel))
        return [*pairs, (job.main, job.target)]

    def _places(self, job: _Job, head: bytes | None) -> tuple[Places, Places]:
        here = self._paths
        if job.own:
            config: str | None = str(here.claude_dir)
            home: str | None = str(here.home)
        else:
            config = plan.sender_config(head or b"", job.main.parent.name)
            home = plan.sender_home(job.cwds, config)
        sender = Places(
            roots=job.sender_roots,
            home=home,
            config=config,
            project_dir=job.main.parent.name,
            session_id=job.result.origin_session,
        )
        local = Places(
            roots=(job.local_root,),
            home=str(here.home),
            config=str(here.claude_dir),
            project_dir=job.target.parent.name,
            session_id=job.result.session_id,
        )
        return sender, local

    def _provenance(self, target: Path) -> Row | None:
        return self._store.query_one("SELECT * FROM resumes WHERE path = ?", (str(target),))

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            while self._pending:
                number, job = self._pending.pop(0)
                try:
                    done = await anyio.to_thread.run_sync(self._execute, job)
                except writer.TargetExists as exc:
                    done = _failed(job, ErrorCode.ALREADY_EXISTS, f"{exc}; nothing was changed")
                except OSError as exc:
                    log.warning("resume_failed", session=job.result.origin_session, error=str(exc))
                    done = _failed(job, ErrorCode.INTERNAL_ERROR, str(exc))
                except Exception as exc:  # a bug here must not take the daemon down
                    log.exception("resume_crashed")
                    done = _failed(job, ErrorCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
                self._running.pop(str(job.target), None)
                if number in self._jobs:
                    self._jobs[number] = done
                self._bus.publish(
                    "session.resumed",
                    {
                        "job": number,
                        "state": done.state,
                        "session": done.session_id,
                        "origin_session": done.origin_session,
                        "outcome": done.outcome,
                    },
                )

    # ------------------------------------------------------------------ worker thread

    def _execute(self, job: _Job) -> protocol.SessionResume:
        result = job.result
        if job.work == "verify":
            return self._verify(job)
        if job.work == "restore":
            written = writer.restore(job.restore)
            outcome: protocol.ResumeOutcome = "restored"
            message = "put back from karmad's archive as it was"
        else:
            written = self._materialise(job)
            outcome = "materialised"
            message = "written for Claude Code"
        anyio.from_thread.run_sync(self._record, job, outcome, written)
        log.info(
            "session_resumed",
            session=result.session_id,
            origin=result.origin_session,
            outcome=outcome,
            bytes=written.bytes,
        )
        return msgspec.structs.replace(
            result,
            state="done",
            outcome=outcome,
            bytes=written.bytes,
            files=written.files,
            message=message,
        )

    def _materialise(self, job: _Job) -> writer.Written:
        with job.main.open("rb") as f:
            head = f.read(HEAD_BYTES)
        sender, local = self._places(job, head)
        found = rules(sender, local)
        copy = writer.Copy(
            rewrite=Rewriter(found, json=True),
            rewrite_text=Rewriter(found, json=False),
            old_id=job.result.origin_session,
            new_id=job.result.session_id,
            copy_of=job.result.origin_session,
        )
        side: list[tuple[Path, str, bool]] = []
        for path, _kind, agent_id in job.transcripts:
            name = f"{discovery.AGENT_PREFIX}{agent_id}{discovery.SUFFIX}"
            side.append((path, f"{discovery.SUBAGENTS}/{name}", True))
        for src, rel in self._tool_results(job.main):
            side.append((src, rel, False))
        return writer.materialise(job.main, side, job.target, copy)

    def _tool_results(self, main: Path) -> list[tuple[Path, str]]:
        """(file, path under the session's directory) of a session's saved tool results,
        wherever its main transcript is: Claude Code's folder, the archive, an inbox."""
        prefix = f"{discovery.TOOL_RESULTS}/"
        archive = self._paths.archive_projects
        if archive in main.parents:
            found = layout.side_files(archive, main.parent.name, main.with_suffix("").name)
            return [(src, rel) for src, rel in found if rel.startswith(prefix)]
        results = main.with_suffix("") / discovery.TOOL_RESULTS
        out: list[tuple[Path, str]] = []
        for dirpath, _dirs, names in os.walk(results, followlinks=False):
            for name in sorted(names):
                src = Path(dirpath) / name
                if not name.startswith(".") and not src.is_symlink():
                    out.append((src, prefix + src.relative_to(results).as_posix()))
        return out

    def _verify(self, job: _Job) -> protocol.SessionResume:
        made = job.provenance
        assert made is not None
        size = int(made["main_bytes"])
        if writer.prefix_sha256(job.target, size) != made["main_sha256"]:
            return _failed(
                job,
                ErrorCode.ALREADY_EXISTS,
                f"{job.target} exists but is not what the earlier resume wrote; nothing was "
                "changed",
            )
        grown = job.target.stat().st_size - size
        message = f"already {made['outcome']} on {made['created_at'][:10]}; nothing to do"
        if grown > 0:
            message += f" (continued since: {grown} bytes more)"
        return msgspec.structs.replace(job.result, state="done", outcome="already", message=message)

    def _record(self, job: _Job, outcome: str, written: writer.Written) -> None:
        """On the event loop: what was written, from whom."""
        result = job.result
        with self._store.transaction():
            self._store.execute(
                "INSERT OR REPLACE INTO resumes (path, session_id, origin_session, origin, "
                "member, checkout, outcome, files, bytes, main_bytes, main_sha256, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    result.path,
                    result.session_id,
                    result.origin_session,
                    result.origin,
                    result.member,
                    result.checkout,
                    outcome,
                    written.files,
                    written.bytes,
                    written.main_bytes,
                    written.main_sha256,
                    self._clock().isoformat(),
                ),
            )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _failed(job: _Job, code: ErrorCode, detail: str) -> protocol.SessionResume:
    return msgspec.structs.replace(
        job.result,
        state="failed",
        error=detail,
        reason=protocol.ERRORS[code].reason,
    )
