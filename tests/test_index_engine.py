"""The indexing engine on real files and a real SQLite index: incremental reads,
rewrites, de-duplication across files, sessions and origins, re-pricing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from karmad.config import IndexConfig, ModelPriceOverride, PricesConfig
from karmad.index import pricing
from karmad.index.discovery import Root
from karmad.index.engine import Stopped
from karmad.protocol import SessionListParams, UsageSummaryParams
from tests.support.indexing import LocalIndex
from tests.support.transcripts import assistant, line, user, write

SID = "11111111-1111-1111-1111-111111111111"
OTHER = "22222222-2222-2222-2222-222222222222"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "projects"
    path.mkdir()
    return path


@pytest.fixture
def index(tmp_path: Path, root: Path) -> Iterator[LocalIndex]:
    idx = LocalIndex(tmp_path / "index.db", [Root(root)])
    yield idx
    idx.close()


def session_file(root: Path, sid: str = SID, project: str = "-tmp-project") -> Path:
    return root / project / f"{sid}.jsonl"


def test_appends_are_read_from_where_reading_stopped(index: LocalIndex, root: Path) -> None:
    path = session_file(root)
    write(path, [user("hi", session=SID), assistant("m1", "r1", session=SID, input=10, output=1)])
    index.scan()
    assert index.tokens(SID)["output"] == 1
    # The final row of m1 and a new request arrive.
    more = line(assistant("m1", "r1", session=SID, input=10, output=40, stop="end_turn"))
    more += line(assistant("m2", "r2", session=SID, input=5, output=7, stop="end_turn"))
    with path.open("ab") as f:
        f.write(more)
    index.progress.clear()
    index.scan()
    scan = index.scan_progress()
    assert (scan.files_total, scan.bytes_total, scan.bytes_done) == (1, len(more), len(more))
    assert index.tokens(SID) == {
        "requests": 2,
        "input": 15,
        "output": 47,
        "cache_write_5m": 0,
        "cache_write_1h": 0,
        "cache_read": 0,
        "cost": pytest.approx((15 * 3 + 47 * 15) / 1e6),
    }
    # Nothing new: nothing read.
    index.progress.clear()
    index.scan()
    assert index.scan_progress().bytes_total == 0
    assert index.usage_total()["output"] == 47


def test_truncation_and_rewrites_start_the_session_over(index: LocalIndex, root: Path) -> None:
    path = session_file(root)
    write(
        path,
        [assistant(f"m{i}", f"r{i}", session=SID, output=10, stop="end_turn") for i in range(5)],
    )
    index.scan()
    assert index.tokens(SID)["requests"] == 5
    # Shrunk: only what is left counts.
    write(path, [assistant("m0", "r0", session=SID, output=10, stop="end_turn")])
    index.scan()
    assert index.tokens(SID)["requests"] == 1 and index.tokens(SID)["output"] == 10
    # Rewritten in place, longer but different from the start: read again from zero.
    write(
        path,
        [assistant(f"x{i}", f"y{i}", session=SID, output=3, stop="end_turn") for i in range(4)],
    )
    index.scan()
    assert index.tokens(SID) | {"cost": 0} == {
        "requests": 4,
        "input": 0,
        "output": 12,
        "cache_write_5m": 0,
        "cache_write_1h": 0,
        "cache_read": 0,
        "cost": 0,
    }
    assert index.usage_total()["requests"] == 4


def test_a_replaced_copy_with_more_lines_is_an_append(
    index: LocalIndex, root: Path, tmp_path: Path
) -> None:
    """Syncthing delivers a grown file under a new inode; only the new part is read."""
    path = session_file(root)
    write(path, [assistant("m1", "r1", session=SID, output=1, stop="end_turn")])
    index.scan()
    copy = tmp_path / "incoming.jsonl"
    shutil.copy(path, copy)
    extra = line(assistant("m2", "r2", session=SID, output=2, stop="end_turn"))
    with copy.open("ab") as f:
        f.write(extra)
    old_inode = path.stat().st_ino
    os.replace(copy, path)
    assert path.stat().st_ino != old_inode
    index.progress.clear()
    index.scan()
    assert index.scan_progress().bytes_done == len(extra)
    assert index.tokens(SID)["output"] == 3


def test_usage_shared_by_a_session_and_its_subagent_files_counts_once(
    index: LocalIndex, root: Path
) -> None:
    main = session_file(root)
    sub = root / "-tmp-project" / SID / "subagents" / "agent-a1.jsonl"
    write(main, [user("go", session=SID), assistant("m1", "r1", session=SID, output=2)])
    side = {"isSidechain": True, "agentId": "a1"}
    write(
        sub,
        [
            user("sub task", session=SID, extra=side),
            assistant("m1", "r1", session=SID, output=30, stop="end_turn", extra=side),
            assistant("m9", "r9", session=SID, output=4, stop="end_turn", extra=side),
        ],
    )
    index.scan()
    assert index.tokens(SID)["requests"] == 2
    assert index.tokens(SID)["output"] == 34
    detail = index.detail(SID)
    assert detail.subagents == 1 and detail.agents == ["a1"]
    assert detail.user_prompts == 1  # the subagent's prompt is not the user's
    assert sorted(f.kind for f in detail.files) == ["main", "subagent"]


def test_old_agent_files_beside_sessions_join_their_session(index: LocalIndex, root: Path) -> None:
    main = session_file(root)
    agent = root / "-tmp-project" / "agent-f00d.jsonl"
    write(
        main,
        [user("go", session=SID), assistant("m1", "r1", session=SID, output=2, stop="end_turn")],
    )
    # First only a half-written line: the agent file's session is not known yet.
    half = line(
        assistant(
            "m5",
            "r5",
            session=SID,
            output=5,
            stop="end_turn",
            extra={"isSidechain": True, "agentId": "f00d"},
        )
    )
    agent.write_bytes(half[:30])
    index.scan()
    assert index.tokens(SID)["requests"] == 1
    with agent.open("ab") as f:
        f.write(half[30:])
    index.scan()
    assert index.tokens(SID)["requests"] == 2
    assert index.detail(SID).agents == ["f00d"]
    rows = index.store.query("SELECT session_id FROM sessions")
    assert [r[0] for r in rows] == [SID]


def test_inline_sidechains_of_old_transcripts_are_subagents(index: LocalIndex, root: Path) -> None:
    side = {"isSidechain": True}
    write(
        session_file(root),
        [
            user("main prompt", session=SID),
            user("task one", session=SID, extra=side),
            assistant(
                "m1", "r1", session=SID, output=1, stop="end_turn", extra=side | {"parentUuid": "x"}
            ),
            user("task two", session=SID, extra=side),
        ],
    )
    index.scan()
    detail = index.detail(SID)
    assert (detail.subagents, detail.inline_subagents, detail.user_prompts) == (2, 2, 1)


def test_forked_sessions_count_each_request_once_in_summaries(
    index: LocalIndex, root: Path
) -> None:
    first = session_file(root, SID)
    write(
        first,
        [
            assistant(
                "m1",
                "r1",
                session=SID,
                input=100,
                output=10,
                stop="end_turn",
                ts="2026-01-10T10:00:00.000Z",
            )
        ],
    )
    index.scan()
    # A resumed or forked session repeats the earlier request, then adds its own.
    second = session_file(root, OTHER)
    write(
        second,
        [
            assistant(
                "m1",
                "r1",
                session=OTHER,
                input=100,
                output=10,
                stop="end_turn",
                ts="2026-01-10T10:00:00.000Z",
                extra={"forkedFrom": {"sessionId": SID}},
            ),
            assistant(
                "m2",
                "r2",
                session=OTHER,
                input=1,
                output=1,
                stop="end_turn",
                ts="2026-01-11T10:00:00.000Z",
            ),
        ],
    )
    index.scan()
    assert index.tokens(SID)["requests"] == 1
    assert index.tokens(OTHER)["requests"] == 2  # each session's own figures
    assert index.session(OTHER)["shared_requests"] == 1
    assert index.session(SID)["shared_requests"] == 0
    assert index.usage_total()["requests"] == 2 and index.usage_total()["input"] == 101
    summary = index.reader.usage(UsageSummaryParams(group_by="session", tz="UTC"))
    assert {r.key: r.tokens.requests for r in summary.rows} == {SID: 1, OTHER: 1}
    # The first session's transcript is cut back: its copy no longer counts, the fork's does.
    write(first, [user("only this is left", session=SID)])
    index.scan()
    assert index.tokens(SID)["requests"] == 0
    assert index.session(OTHER)["shared_requests"] == 0
    assert index.usage_total()["requests"] == 2 and index.usage_total()["input"] == 101


def test_an_earlier_copy_indexed_later_takes_over(index: LocalIndex, root: Path) -> None:
    write(
        session_file(root, OTHER),
        [
            assistant(
                "m1", "r1", session=OTHER, output=10, stop="end_turn", ts="2026-01-10T10:00:05.000Z"
            )
        ],
    )
    index.scan()
    write(
        session_file(root, SID),
        [
            assistant(
                "m1", "r1", session=SID, output=10, stop="end_turn", ts="2026-01-10T10:00:00.000Z"
            )
        ],
    )
    index.scan()
    counted = index.store.query(
        "SELECT s.session_id FROM usage u JOIN sessions s ON s.id = u.session_pk "
        "WHERE u.canonical = 1"
    )
    assert [r[0] for r in counted] == [SID]
    assert index.session(OTHER)["shared_requests"] == 1
    assert index.usage_total()["requests"] == 1


def test_the_same_session_from_two_origins_is_listed_and_counted_once(
    tmp_path: Path, root: Path
) -> None:
    inbox = tmp_path / "inbox" / "projects"
    records = [
        user("hello", session=SID),
        assistant("m1", "r1", session=SID, output=5, stop="end_turn"),
    ]
    write(session_file(root), records)
    write(session_file(inbox), records)
    remote = Root(
        inbox, origin="remote", member_tag="alice.laptop", user_id="alice", device_id="DEV1"
    )
    idx = LocalIndex(tmp_path / "index.db", [Root(root), remote])
    try:
        idx.scan()
        assert idx.tokens(SID)["requests"] == 1
        assert idx.tokens(SID, "remote:DEV1")["requests"] == 1
        listed = idx.reader.list_sessions(SessionListParams())
        assert [(s.id, s.origin) for s in listed.sessions] == [(SID, "local")]
        both = idx.reader.list_sessions(SessionListParams(distinct=False))
        assert sorted(s.origin for s in both.sessions) == ["local", "remote:DEV1"]
        remote_only = idx.reader.list_sessions(
            SessionListParams(origin="remote", member="alice.laptop")
        )
        assert [(s.origin, s.member, s.user) for s in remote_only.sessions] == [
            ("remote:DEV1", "alice.laptop", "alice")
        ]
        assert idx.usage_total()["requests"] == 1
        # Forgetting the inbox keeps the local copy counted.
        idx.engine.remove_root(inbox)
        assert idx.usage_total()["requests"] == 1
        assert [r[0] for r in idx.store.query("SELECT origin_key FROM sessions")] == ["local"]
    finally:
        idx.close()


def test_deleted_transcripts_stay_in_the_index(index: LocalIndex, root: Path) -> None:
    path = session_file(root)
    write(path, [assistant("m1", "r1", session=SID, output=5, stop="end_turn")])
    index.scan()
    path.unlink()
    index.scan()
    row = index.session(SID)
    assert row["missing"] == 1 and row["requests"] == 1
    write(path, [assistant("m1", "r1", session=SID, output=5, stop="end_turn")])
    index.scan()
    assert index.session(SID)["missing"] == 0
    assert index.session(SID)["requests"] == 1


def test_tool_results_are_counted_on_the_first_scan(index: LocalIndex, root: Path) -> None:
    write(session_file(root), [user("hi", session=SID)])
    folder = root / "-tmp-project" / SID / "tool-results"
    folder.mkdir(parents=True)
    for n in range(3):
        (folder / f"toolu_{n}.txt").write_text("y" * 10)
    index.scan()
    assert (index.session(SID)["tool_result_files"], index.session(SID)["tool_result_bytes"]) == (
        3,
        30,
    )


def test_process_handles_exactly_the_paths_given(index: LocalIndex, root: Path) -> None:
    a, b = session_file(root, SID), session_file(root, OTHER)
    write(a, [assistant("m1", "r1", session=SID, output=1, stop="end_turn")])
    write(b, [assistant("m2", "r2", session=OTHER, output=2, stop="end_turn")])
    index.process(a)
    assert index.store.scalar("SELECT COUNT(*) FROM sessions") == 1
    index.process(b, root / "not" / "a" / "transcript.txt", Path("/elsewhere/x.jsonl"))
    assert index.store.scalar("SELECT COUNT(*) FROM sessions") == 2
    tool_results = root / "-tmp-project" / SID / "tool-results"
    tool_results.mkdir(parents=True)
    (tool_results / "toolu_1.txt").write_text("x" * 100)
    index.process(tool_results / "toolu_1.txt")
    assert (index.session(SID)["tool_result_files"], index.session(SID)["tool_result_bytes"]) == (
        1,
        100,
    )


def test_changing_prices_reprices_everything(tmp_path: Path, root: Path) -> None:
    write(
        session_file(root),
        [
            assistant(
                "m1",
                "r1",
                session=SID,
                model="claude-opus-4-5-20251101",
                input=1_000_000,
                stop="end_turn",
            ),
            assistant(
                "m2", "r2", session=SID, model="claude-unknown-1", input=1_000_000, stop="end_turn"
            ),
            assistant("m3", "r3", session=SID, model="<synthetic>", input=0, stop="end_turn"),
        ],
    )
    idx = LocalIndex(tmp_path / "index.db", [Root(root)])
    try:
        idx.scan()
        row = idx.session(SID)
        assert (row["cost"], row["unpriced"], row["requests"]) == (5.0, 1, 3)
        assert row["price_version"] == pricing.load_table().version
        cheaper = PricesConfig(
            models={
                "claude-opus-4-5": ModelPriceOverride(input=4.0),
                "claude-unknown-1": ModelPriceOverride(
                    input=1, output=2, cache_write_5m=1.25, cache_write_1h=2, cache_read=0.1
                ),
            }
        )
        idx.writer.prices = pricing.load_table(cheaper)
        idx.writer.reprice()
        row = idx.session(SID)
        assert (row["cost"], row["unpriced"]) == (5.0, 0)
        assert row["price_version"] == idx.writer.prices.version != pricing.load_table().version
        assert idx.usage_total()["cost"] == 5.0
        assert idx.writer.stored_price_version() == idx.writer.prices.version
        models = {
            r["model"]: (r["cost"], r["unpriced"])
            for r in idx.store.query("SELECT * FROM session_models")
        }
        assert models == {
            "claude-opus-4-5-20251101": (4.0, 0),
            "claude-unknown-1": (1.0, 0),
            "<synthetic>": (0.0, 0),
        }
    finally:
        idx.close()


def test_sessions_without_a_cwd_take_their_directory_siblings_project(
    index: LocalIndex, root: Path
) -> None:
    write(
        session_file(root, SID), [{"type": "summary", "summary": "Only a summary", "leafUuid": "x"}]
    )
    write(session_file(root, OTHER), [user("hi", session=OTHER)])
    index.scan()
    assert index.session(SID)["project"] == "/tmp/project"
    assert index.session(SID)["cwd"] == ""


def test_project_identity_is_the_checkouts_git_remote(
    index: LocalIndex, root: Path, tmp_path: Path
) -> None:
    checkout = tmp_path / "work" / "widgets"
    (checkout / ".git").mkdir(parents=True)
    (checkout / ".git" / "config").write_text(
        '[remote "origin"]\n\turl = git@github.com:Acme/Widgets.git\n'
    )
    (checkout / "sub").mkdir()
    write(session_file(root), [user("hi", session=SID, extra={"cwd": str(checkout / "sub")})])
    index.scan()
    row = index.session(SID)
    assert (row["project"], row["project_path"], row["project_source"]) == (
        "github.com/acme/widgets",
        str(checkout),
        "git",
    )
    found = index.reader.list_sessions(SessionListParams(project="github.com/acme/widgets"))
    assert [s.id for s in found.sessions] == [SID]


def test_a_large_backlog_is_parsed_by_processes_with_the_same_result(
    tmp_path: Path, root: Path
) -> None:
    """Parser processes and the worker thread give identical indexes."""
    for n in range(24):
        sid = f"{n:08d}-0000-0000-0000-000000000000"
        write(
            session_file(root, sid, f"-p{n % 3}"),
            [
                user(f"prompt {n}", session=sid),
                *(
                    assistant(
                        f"m{n}-{i}",
                        f"r{n}-{i}",
                        session=sid,
                        input=i,
                        output=n,
                        stop="end_turn",
                        content=[{"type": "text", "text": "x" * 2000}],
                    )
                    for i in range(40)
                ),
            ],
        )
    results = []
    for workers in (0, 2):
        config = IndexConfig(parse_processes=workers, batch_bytes=64 << 10, chunk_bytes=16 << 10)
        idx = LocalIndex(
            tmp_path / f"index{workers}.db", [Root(root)], config=config, pool_min_bytes=0
        )
        try:
            idx.scan()
            results.append(_figures(idx))
        finally:
            idx.close()
    assert results[0] == results[1] and len(results[0]) == 24


def test_stopping_in_the_middle_of_a_pooled_scan_keeps_a_consistent_index(
    tmp_path: Path, root: Path
) -> None:
    """karmad stopping during a long first index: the scan ends between two batches, the
    parser pool is let go, and the next scan finishes the job with the same figures."""
    for n in range(40):
        sid = f"{n:08d}-0000-0000-0000-000000000000"
        write(
            session_file(root, sid, f"-p{n % 4}"),
            [
                user(f"prompt {n}", session=sid),
                *(
                    assistant(f"m{n}-{i}", f"r{n}-{i}", session=sid, input=i, output=n)
                    for i in range(30)
                ),
            ],
        )
    config = IndexConfig(parse_processes=1, batch_bytes=32 << 10, chunk_bytes=16 << 10)
    stopped = LocalIndex(tmp_path / "stopped.db", [Root(root)], config=config, pool_min_bytes=0)
    # Stops once the first batch is written.
    stopped.stop_when = lambda: bool(stopped.progress) and stopped.progress[-1].files_done > 0
    try:
        with pytest.raises(Stopped):
            stopped.scan()
        partial = stopped.store.query("SELECT session_id FROM sessions")
        assert 0 < len(partial) < 40
        stopped.stop_when = lambda: False
        stopped.scan()
        after = _figures(stopped)
    finally:
        stopped.close()
    whole = LocalIndex(tmp_path / "whole.db", [Root(root)])
    try:
        whole.scan()
        assert after == _figures(whole) and len(after) == 40
    finally:
        whole.close()


def _figures(index: LocalIndex) -> list[tuple[object, ...]]:
    return [
        tuple(r)
        for r in index.store.query(
            "SELECT session_id, requests, input, output, user_prompts, bytes "
            "FROM sessions ORDER BY session_id"
        )
    ]


def test_an_inbox_gone_while_karmad_was_not_running_leaves_the_views(tmp_path: Path) -> None:
    """Received roots are re-added by each run; one that no inbox has any more (its
    member left while this machine was off) is forgotten though this run never had it."""
    kept, gone = tmp_path / "kept" / "projects", tmp_path / "gone" / "projects"
    for inbox, sid in ((kept, SID), (gone, OTHER)):
        write(session_file(inbox, sid), [assistant("m1", f"r-{sid}", session=sid, output=5)])

    def remote(path: Path, device: str) -> Root:
        return Root(
            path, origin="remote", member_tag=f"{device}.m", user_id=device, device_id=device
        )

    first = LocalIndex(tmp_path / "index.db", [remote(kept, "A"), remote(gone, "B")])
    try:
        first.scan()
    finally:
        first.close()
    # The next run knows only the inbox still wanted.
    second = LocalIndex(tmp_path / "index.db", [remote(kept, "A")])
    try:
        second.engine.remove_root(gone)  # not this run's root: nothing to name it by
        listed = second.reader.list_sessions(SessionListParams(origin="remote"))
        assert sorted(s.id for s in listed.sessions) == [SID, OTHER]
        assert second.engine.retain_remote_roots(frozenset({kept})) == [gone]
        listed = second.reader.list_sessions(SessionListParams(origin="remote"))
        assert [(s.id, s.member) for s in listed.sessions] == [(SID, "A.m")]
        assert second.engine.retain_remote_roots(frozenset({kept})) == []
    finally:
        second.close()
