"""Usage summaries add up: every grouping has the same grand total, each request counted
once, `<synthetic>` placeholders reported on their own; and `karmactl usage` shows the
table's whole range in its sparkline and the models of each row in its JSON."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from karmactl import render
from karmactl.cmd_usage import sparkline
from karmad.index.discovery import Root
from karmad.protocol import SessionGetParams, UsageGroup, UsageSummaryParams
from tests.support.daemon import KarmadProcess
from tests.support.indexing import LocalIndex
from tests.support.transcripts import (
    CCUSAGE_VERSION,
    CORPUS,
    assistant,
    ccusage_path,
    ccusage_sessions,
    copy_corpus,
    user,
    write,
)
from tests.test_karmactl_output import idle, run

GROUPS: tuple[UsageGroup, ...] = (
    "day",
    "week",
    "month",
    "project",
    "model",
    "session",
    "member",
    "user",
    "device",
)
SUMMED = ("requests", "input", "output", "cache_write_5m", "cache_write_1h", "cache_read")

LOCAL = "11111111-1111-1111-1111-111111111111"
ALICE = "22222222-2222-2222-2222-222222222222"
BOB = "33333333-3333-3333-3333-333333333333"
FORK = "44444444-4444-4444-4444-444444444444"


def synthetic(session: str, ts: str) -> dict[str, Any]:
    """Claude Code's own placeholder answer, as it writes it: no request id, no tokens."""
    return assistant(
        str(uuid.uuid4()),
        None,
        model="<synthetic>",
        session=session,
        stop="stop_sequence",
        ts=ts,
        content=[{"type": "text", "text": "No response requested."}],
    )


def conversation(session: str, cwd: str, start: int, n: int) -> list[dict[str, Any]]:
    """`n` requests a day apart from day `start` of 2026, alternating two models, the odd
    ones with 1-hour cache writes."""
    records: list[dict[str, Any]] = []
    for i in range(n):
        day = start + i
        ts = f"2026-{1 + day // 28:02d}-{1 + day % 28:02d}T12:00:00.000Z"
        records.append(user(f"step {i}", session=session, ts=ts, extra={"cwd": cwd}))
        records.append(
            assistant(
                f"msg_{session[:4]}_{i}",
                f"req_{session[:4]}_{i}",
                model="claude-opus-4-5-20251101" if i % 2 else "claude-sonnet-4-5-20250929",
                session=session,
                input=100 + i,
                output=20 + i,
                cache_write=300,
                five_minutes=300 - 100 * (i % 2),
                one_hour=100 * (i % 2),
                cache_read=1000 * i,
                stop="end_turn",
                ts=ts,
                extra={"cwd": cwd},
            )
        )
    return records


@pytest.fixture
def index(tmp_path: Path) -> Iterator[LocalIndex]:
    """This machine's sessions, two teammates' (one of them received twice, from two
    devices), a fork that repeats requests of another session, and placeholders."""
    local = tmp_path / "projects"
    alice = tmp_path / "alice" / "projects"
    alice_again = tmp_path / "alice-desk" / "projects"
    bob = tmp_path / "bob" / "projects"
    own = conversation(LOCAL, "/work/app", 0, 40)
    write(
        local / "-work-app" / f"{LOCAL}.jsonl", [*own, synthetic(LOCAL, "2026-01-03T12:00:01.000Z")]
    )
    # A fork: new session id, the first ten requests copied, then its own.
    fork = [dict(r, sessionId=FORK, uuid=str(uuid.uuid4())) for r in own[:20]]
    write(local / "-work-app" / f"{FORK}.jsonl", fork + conversation(FORK, "/work/app", 50, 5))
    theirs = conversation(ALICE, "/home/alice/lib", 10, 30)
    write(alice / "-home-alice-lib" / f"{ALICE}.jsonl", theirs)
    write(alice_again / "-home-alice-lib" / f"{ALICE}.jsonl", theirs)
    write(
        bob / "-home-bob-site" / f"{BOB}.jsonl",
        [*conversation(BOB, "/home/bob/site", 70, 20), synthetic(BOB, "2026-03-20T00:00:00.000Z")],
    )
    idx = LocalIndex(
        tmp_path / "index.db",
        [
            Root(local),
            Root(alice, origin="remote", member_tag="alice.lap", user_id="alice", device_id="A1"),
            Root(
                alice_again,
                origin="remote",
                member_tag="alice.desk",
                user_id="alice",
                device_id="A2",
            ),
            Root(bob, origin="remote", member_tag="bob.box", user_id="bob", device_id="B1"),
        ],
    )
    idx.scan()
    yield idx
    idx.close()


def summed(rows: list[Any]) -> dict[str, int]:
    return {k: sum(getattr(r.tokens, k) for r in rows) for k in SUMMED}


def test_every_grouping_has_the_same_grand_total(index: LocalIndex) -> None:
    distinct = 40 + 5 + 30 + 20  # the fork's copies and Alice's second device count once
    reference = index.reader.usage(UsageSummaryParams(group_by="day", tz="UTC"))
    assert reference.totals.requests == distinct
    expected = {k: getattr(reference.totals, k) for k in SUMMED}
    for group in GROUPS:
        result = index.reader.usage(UsageSummaryParams(group_by=group, tz="UTC", breakdown=True))
        assert {k: getattr(result.totals, k) for k in SUMMED} == expected, group
        assert summed(result.rows) == expected, group
        assert sum(r.tokens.cost for r in result.rows) == pytest.approx(reference.totals.cost)
        for row in result.rows:
            models = row.models.values()
            assert {k: sum(getattr(m, k) for m in models) for k in SUMMED} == {
                k: getattr(row.tokens, k) for k in SUMMED
            }, (group, row.key)
    devices = index.reader.usage(UsageSummaryParams(group_by="device"))
    assert {r.key: r.tokens.requests for r in devices.rows} == {"": 45, "A1": 30, "B1": 20}


def test_synthetic_is_never_a_model_or_a_request(index: LocalIndex) -> None:
    by_model = index.reader.usage(UsageSummaryParams(group_by="model"))
    assert "<synthetic>" not in {r.key for r in by_model.rows}
    assert by_model.synthetic_requests == 2
    assert by_model.totals.requests == 95
    march = index.reader.usage(
        UsageSummaryParams(group_by="day", since=datetime(2026, 3, 1, tzinfo=UTC), tz="UTC")
    )
    assert march.synthetic_requests == 1
    detail = index.reader.get_session(SessionGetParams(id=LOCAL))
    assert detail.tokens.requests == 40 and detail.synthetic_requests == 1
    assert "<synthetic>" not in detail.models
    assert "<synthetic>" not in {m.model for m in detail.by_model}


# --------------------------------------------------------------------------- karmactl


def test_the_sparkline_covers_the_table_bucketed_to_the_width() -> None:
    rows = [
        {"key": "2026-01-01", "tokens": {"cost": 1.0}},
        {"key": "2026-01-05", "tokens": {"cost": 4.0}},
        {"key": "2026-03-01", "tokens": {"cost": 2.0}},
    ]
    line, per_mark = sparkline(rows, "day", "cost", 20) or ("", 0)
    days = 31 + 28 + 1
    assert per_mark == math.ceil(days / 20) == 3
    assert len(line) == 20
    # Jan 1-3, Jan 4-6, ..., Feb 28-Mar 1: the first and the last day are both in.
    assert line == render.sparkline([1.0, 4.0] + [0.0] * 17 + [2.0])
    assert sparkline(rows, "day", "cost", 200) == (sparkline(rows, "day", "cost", 60) or ("", 0))
    weeks = [{"key": "2025-12-29", "tokens": {"cost": 1.0}}, rows[2] | {"key": "2026-02-23"}]
    assert sparkline(weeks, "week", "cost", 80) == (render.sparkline([1.0] + [0.0] * 7 + [2.0]), 1)
    months = [
        {"key": "2025-11", "tokens": {"cost": 1.0}},
        {"key": "2026-02", "tokens": {"cost": 0.0}},
    ]
    assert sparkline(months, "month", "cost", 2) == ("█▁", 2)
    assert sparkline(rows[:1], "day", "cost", 80) is None


needs_corpus = pytest.mark.skipif(
    not (CORPUS / "projects").is_dir(), reason=f"no corpus at {CORPUS} (KARMAD_TEST_CORPUS)"
)


@needs_corpus
def test_karmactl_usage_agrees_in_every_grouping(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str
) -> None:
    karmad = karmad_factory(anyio_backend, start=False)
    projects = karmad.home.claude / "projects"
    projects.rmdir()
    copy_corpus(projects)
    karmad.start()
    idle(karmad, 13)
    karmad.call("identity.init", {"user": "alice", "machine": "desk"})
    totals: dict[str, dict[str, Any]] = {}
    for group in GROUPS:
        out = run(karmad, "usage", "--json", "--by", group)
        assert out.returncode == 0, (group, out.stderr)
        result = json.loads(out.stdout)
        totals[group] = result["totals"]
        assert {k: sum(r["tokens"][k] for r in result["rows"]) for k in SUMMED} == {
            k: result["totals"][k] for k in SUMMED
        }, group
        for row in result["rows"]:
            assert row["models"], (group, row["key"])
            assert sum(m["requests"] for m in row["models"].values()) == row["tokens"]["requests"]
    for name, t in totals.items():
        assert {k: t[k] for k in SUMMED} == {k: totals["day"][k] for k in SUMMED}, name
        assert t["cost"] == pytest.approx(totals["day"]["cost"], rel=1e-12), name
    assert totals["day"]["requests"] == 123

    text = run(karmad, "usage", columns=80)
    assert text.returncode == 0, text.stderr
    days = [line.split()[0] for line in text.stdout.splitlines() if line[:4] in ("2025", "2026")]
    header, spark = text.stdout.splitlines()[:2]
    first, last = days[0], days[-1]
    span = (date.fromisoformat(last) - date.fromisoformat(first)).days + 1
    per_mark = math.ceil(span / 78)
    assert header == f"cost by day, {first} … {last} (1 mark = {per_mark} days)"
    assert len(spark) == math.ceil(span / per_mark) <= 78


# --------------------------------------------------------------------------- copies


def resumed_copy(records: list[dict[str, Any]], original: str, session: str) -> list[Any]:
    """What `session.resume` writes: every line, under the new session id, marked."""
    return [dict(r, sessionId=session, karmadCopyOf=original) for r in records]


@pytest.mark.parametrize("copy_first", [True, False])
def test_a_teammates_session_resumed_here_counts_only_the_continuation_as_mine(
    tmp_path: Path, copy_first: bool
) -> None:
    """Alice's session, received; resumed on this machine into a new session that
    continued with two requests of its own. Whatever is indexed first, and although the
    copies carry Alice's timestamps, the copied requests stay Alice's."""
    local = tmp_path / "projects"
    inbox = tmp_path / "alice" / "projects"
    theirs = conversation(ALICE, "/home/alice/lib", 0, 12)
    own = [*resumed_copy(theirs, ALICE, LOCAL), *conversation(LOCAL, "/work/lib", 30, 2)]
    write(local / "-work-lib" / f"{LOCAL}.jsonl", own)
    alice = Root(inbox, origin="remote", member_tag="alice.lap", user_id="alice", device_id="A1")
    idx = LocalIndex(tmp_path / "index.db", [Root(local)] if copy_first else [Root(local), alice])
    try:
        if copy_first:
            idx.scan()
            assert idx.reader.usage(UsageSummaryParams(group_by="member")).totals.requests == 14
        write(inbox / "-home-alice-lib" / f"{ALICE}.jsonl", theirs)
        if copy_first:
            idx.engine.add_root(alice)
        idx.scan()
        for group, expected in (
            ("member", {"": 2, "alice.lap": 12}),
            ("device", {"": 2, "A1": 12}),
        ):
            result = idx.reader.usage(UsageSummaryParams(group_by=group))  # type: ignore[arg-type]
            assert {r.key: r.tokens.requests for r in result.rows} == expected, group
        mine = idx.detail(LOCAL)
        assert mine.tokens.requests == 14 and mine.shared_requests == 12  # full figures, said
    finally:
        idx.close()


def test_copies_made_by_claude_code_count_in_the_earliest_session(tmp_path: Path) -> None:
    """A fork or a resume into a new file (Claude Code 2.x): same message and request ids,
    new session id and uuids, no mark. Counted once, where it first appeared."""
    local = tmp_path / "projects"
    first = conversation(ALICE, "/work/app", 0, 10)
    later = [dict(r, sessionId=BOB, uuid=str(uuid.uuid4())) for r in first]
    write(local / "-work-app" / f"{BOB}.jsonl", [*later, *conversation(BOB, "/work/app", 20, 3)])
    write(local / "-work-app" / f"{ALICE}.jsonl", first)
    idx = LocalIndex(tmp_path / "index.db", [Root(local)])
    try:
        idx.scan()
        result = idx.reader.usage(UsageSummaryParams(group_by="session"))
        assert {r.key: r.tokens.requests for r in result.rows} == {ALICE: 10, BOB: 3}
        assert idx.detail(BOB).shared_requests == 10
    finally:
        idx.close()


# --------------------------------------------------------------------------- prices

M = 1_000_000
CCUSAGE_MISSING = f"ccusage {CCUSAGE_VERSION} is not installed (./dev installs it)"
SONNET = "claude-sonnet-4-5-20250929"
HOUR = "55555555-5555-5555-5555-555555555555"
LONG = "66666666-6666-6666-6666-666666666666"


@pytest.mark.skipif(ccusage_path() is None, reason=CCUSAGE_MISSING)
def test_long_context_and_one_hour_writes_against_ccusage(tmp_path: Path) -> None:
    """1-hour cache writes are priced at their own rate, as ccusage 20 does. A request
    whose input side (input + cache writes + cache reads) exceeds 200k tokens is billed
    whole at the long-context rates (the API's rule, docs/index.md); ccusage prices at
    the higher rate only the tokens of a kind beyond 200k, so here, with no kind above
    200k, it charges base rates for a request the API bills at long-context rates."""
    projects = tmp_path / "claude" / "projects"
    write(
        projects / "-work" / f"{HOUR}.jsonl",
        [
            user("hi", session=HOUR),
            assistant(
                "msg_hour", "req_hour", model=SONNET, session=HOUR, input=10, output=100,
                cache_write=50_000, five_minutes=10_000, one_hour=40_000, cache_read=20_000,
                stop="end_turn",
            ),
        ],
    )  # fmt: skip
    write(
        projects / "-work" / f"{LONG}.jsonl",
        [
            user("hi", session=LONG),
            assistant(
                "msg_long", "req_long", model=SONNET, session=LONG, input=5_000, output=1_000,
                cache_write=100_000, five_minutes=60_000, one_hour=40_000, cache_read=150_000,
                stop="end_turn",
            ),
        ],
    )  # fmt: skip
    theirs = ccusage_sessions(tmp_path / "claude", tmp_path / "home")
    idx = LocalIndex(tmp_path / "index.db", [Root(projects)])
    try:
        idx.scan()
        for sid in (HOUR, LONG):
            ours = idx.detail(sid).tokens
            cc = theirs[sid]
            assert (ours.input, ours.output, ours.cache_read) == (
                cc["inputTokens"], cc["outputTokens"], cc["cacheReadTokens"],
            )  # fmt: skip
            assert ours.cache_write_5m + ours.cache_write_1h == cc["cacheCreationTokens"]
        hour = idx.detail(HOUR).tokens
        assert (hour.cache_write_5m, hour.cache_write_1h) == (10_000, 40_000)
        expected = (10 * 3 + 100 * 15 + 10_000 * 3.75 + 40_000 * 6 + 20_000 * 0.3) / M
        assert hour.cost == pytest.approx(expected, rel=1e-12)
        assert theirs[HOUR]["totalCost"] == pytest.approx(expected, rel=1e-9)
        long = idx.detail(LONG).tokens
        whole = (5_000 * 6 + 1_000 * 22.5 + 60_000 * 7.5 + 40_000 * 12 + 150_000 * 0.6) / M
        assert long.cost == pytest.approx(whole, rel=1e-12)
        base = (5_000 * 3 + 1_000 * 15 + 60_000 * 3.75 + 40_000 * 6 + 150_000 * 0.3) / M
        assert theirs[LONG]["totalCost"] == pytest.approx(base, rel=1e-9)
    finally:
        idx.close()
