"""Parsing transcripts: every record type, tolerance to the unexpected, the
de-duplication rule, and reading by offset (half-written lines, huge files)."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from karmad.index.parse import UsageParser, _squeezed, canonical_ts, fix_surrogates
from karmad.index.reader import Chunk, ReadState, count_lines, digest, read_lines
from karmad.index.text import TextParser
from karmad.index.usage import UsageRow, better
from karmad.index.work import Limits, ParseJob, parse_file
from tests.support.transcripts import assistant, line, user, write

LIMITS = Limits(chunk_bytes=1 << 16, max_line_bytes=1 << 20)


def parse(path: Path, *, offset: int = 0, line_no: int = 0, main: bool = True) -> Any:
    result = parse_file(ParseJob(str(path), main, offset, line_no, text=True), LIMITS)
    assert result.status == "ok"
    return result


def records_of_every_type() -> list[dict[str, Any]]:
    return [
        {"type": "summary", "summary": "Old summary", "leafUuid": "x"},
        {
            "type": "file-history-snapshot",
            "messageId": "m",
            "snapshot": {},
            "isSnapshotUpdate": False,
        },
        {
            "type": "queue-operation",
            "operation": "enqueue",
            "timestamp": "2026-01-10T09:00:00.000Z",
            "sessionId": "s",
            "content": "hi",
        },
        user(
            "Fix the parser",
            ts="2026-01-10T09:00:01.000Z",
            extra={"entrypoint": "cli", "gitBranch": "main"},
        ),
        user(
            [{"type": "text", "text": "look at this"}, {"type": "image", "source": {}}],
            ts="2026-01-10T09:00:02.000Z",
        ),
        user("<local-command-stdout>done</local-command-stdout>", ts="2026-01-10T09:00:03.000Z"),
        user("Caveat: meta", ts="2026-01-10T09:00:03.500Z", extra={"isMeta": True}),
        assistant(
            "msg_1",
            "req_1",
            input=10,
            output=3,
            cache_write=100,
            cache_read=1000,
            ts="2026-01-10T09:00:04.000Z",
            content=[{"type": "thinking", "thinking": "hmm", "signature": "x"}],
        ),
        assistant(
            "msg_1",
            "req_1",
            input=10,
            output=50,
            cache_write=100,
            cache_read=1000,
            stop="tool_use",
            ts="2026-01-10T09:00:05.000Z",
            content=[
                {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls"}},
                {
                    "type": "tool_use",
                    "id": "t2",
                    "name": "mcp__github__create_issue",
                    "input": {"title": "x"},
                },
                {
                    "type": "tool_use",
                    "id": "t3",
                    "name": "Task",
                    "input": {"subagent_type": "Explore", "prompt": "look"},
                },
            ],
        ),
        user(
            [
                {"type": "tool_result", "tool_use_id": "t1", "content": "boom", "is_error": True},
                {
                    "type": "tool_result",
                    "tool_use_id": "t2",
                    "content": [{"type": "text", "text": "ok"}],
                },
            ],
            ts="2026-01-10T09:00:06.000Z",
        ),
        {
            "type": "progress",
            "data": {"type": "hook_progress"},
            "timestamp": "2026-01-10T09:00:06.500Z",
            "uuid": "p1",
            "sessionId": "s",
            "toolUseID": "t3",
            "parentToolUseID": "t3",
        },
        {
            "type": "system",
            "subtype": "api_error",
            "level": "error",
            "timestamp": "2026-01-10T09:00:07.000Z",
            "uuid": "e1",
            "sessionId": "s",
            "retryAttempt": 1,
        },
        {
            "type": "system",
            "subtype": "compact_boundary",
            "content": "Conversation compacted",
            "compactMetadata": {"trigger": "auto", "preTokens": 150000},
            "timestamp": "2026-01-10T09:00:08.000Z",
            "uuid": "c1",
            "sessionId": "s",
        },
        user("summary of before", ts="2026-01-10T09:00:08.500Z", extra={"isCompactSummary": True}),
        {
            "type": "system",
            "subtype": "turn_duration",
            "durationMs": 4250.5,
            "timestamp": "2026-01-10T09:00:09.000Z",
            "uuid": "d1",
            "sessionId": "s",
        },
        {
            "type": "attachment",
            "attachment": {"type": "deferred_tools_delta"},
            "uuid": "a1",
            "timestamp": "2026-01-10T09:00:09.500Z",
            "sessionId": "s",
        },
        {"type": "custom-title", "customTitle": "My title", "sessionId": "s"},
        {"type": "x-not-invented-yet", "timestamp": "2026-01-10T09:00:10.000Z", "whatever": [1, 2]},
        assistant(
            "msg_2",
            "req_2",
            input=1,
            output=7,
            stop="end_turn",
            ts="2026-01-10T09:00:11.000Z",
            extra={"brandNewField": {"a": 1}},
        ),
    ]


def test_every_record_type_is_accepted_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    write(path, records_of_every_type())
    result = parse(path)
    facts = result.usage.facts
    assert result.usage.bad_lines == 0 and result.usage.errors == []
    assert facts.types == {
        "summary": 1,
        "file-history-snapshot": 1,
        "queue-operation": 1,
        "user": 6,
        "assistant": 3,
        "progress": 1,
        "system": 3,
        "attachment": 1,
        "custom-title": 1,
        "x-not-invented-yet": 1,
    }
    assert facts.unknown_types == {"x-not-invented-yet": 1}
    assert facts.system == {"api_error": 1, "compact_boundary": 1, "turn_duration": 1}
    assert (facts.compactions, facts.api_errors, facts.active_ms) == (1, 1, 4250)
    # Typed and pasted prompts count; command output, meta lines, tool results and the
    # compact summary do not.
    assert facts.user_prompts == 2
    assert facts.first_prompt == "Fix the parser"
    assert facts.tools == {"Bash": 1, "mcp__github__create_issue": 1, "Task": 1}
    assert facts.tool_errors == 1
    assert facts.subagent_types == {"Explore": 1}
    assert (facts.summary, facts.custom_title, facts.title) == (
        "Old summary",
        "My title",
        "My title",
    )
    assert facts.entrypoints == ["cli"] and facts.branches == ["main"]
    assert facts.cwds == ["/tmp/project"] and facts.versions == ["2.1.0"]
    assert (facts.first_ts, facts.last_ts) == (
        "2026-01-10T09:00:00.000Z",
        "2026-01-10T09:00:11.000Z",
    )
    # The text pass counts fields it does not know, per record type.
    assert result.text.unknown_fields == {"assistant.brandNewField": 1}
    kinds = [e.kind for e in result.text.entries]
    assert kinds.count("user") == 6 and kinds.count("assistant") == 3 and kinds.count("system") == 3
    texts = [e.text for e in result.text.entries if e.text]
    assert "Fix the parser" in texts and "look at this" in texts
    assert not any("local-command" in t or "summary of before" in t for t in texts)


def test_usage_is_deduplicated_keeping_the_complete_row(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    write(path, records_of_every_type())
    rows = sorted(parse(path).usage.usage.values(), key=lambda r: r.ts)
    assert [(r.input, r.output, r.cache_write_5m, r.cache_read, r.complete) for r in rows] == [
        (10, 50, 100, 1000, True),
        (1, 7, 0, 0, True),
    ]


def _row(output: int, complete: bool, cache_read: int = 0) -> UsageRow:
    return UsageRow(1, "m", 0, 1, output, 0, 0, cache_read, complete)


@pytest.mark.parametrize(
    ("new", "old", "replaces"),
    [
        (_row(50, True), _row(3, False), True),  # the final row replaces a partial one
        (_row(3, False), _row(50, True), False),  # a partial never replaces the final one
        (_row(40, True), _row(90, False), True),  # complete wins even with smaller counts
        (_row(90, False), _row(40, True), False),
        (_row(9, False), _row(3, False), True),  # no stop_reason: the larger counters
        (_row(3, False), _row(9, False), False),
        (_row(5, False, 10), _row(5, False, 9), True),  # then the larger input side
        (_row(5, False), _row(5, False), False),  # a tie keeps the row seen first
        (_row(60, True), _row(50, True), True),
    ],
)
def test_deduplication_rule(new: UsageRow, old: UsageRow, replaces: bool) -> None:
    assert better(new, old) is replaces


def test_rows_without_message_id_are_never_merged(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    write(
        path,
        [
            assistant(None, "r1", output=5),
            assistant(None, "r1", output=5),
            assistant("m", "r1", output=1),
            assistant("m", "r2", output=2),
        ],
    )
    rows = parse(path).usage.usage.values()
    assert sorted(r.output for r in rows) == [1, 2, 5, 5]


def test_malformed_lines_are_recorded_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    good = assistant("m", "r", output=5, stop="end_turn")
    path.write_bytes(
        b"// a comment someone added\n"
        + line(good)
        + b'{"type": "user", "message": {"content": "trunc\n'
        + b"\x00\x00\x00\x00\n"
        + b"[1, 2, 3]\n"
        + b"\n"
        + line(assistant("m2", "r2", output=7, stop="end_turn"))
    )
    result = parse(path)
    assert sorted(r.output for r in result.usage.usage.values()) == [5, 7]
    assert result.usage.bad_lines == 4
    found = [(e.line, e.reason.split(":")[0], e.repaired) for e in result.usage.errors]
    assert found == [
        (1, "malformed", False),
        (3, "malformed", False),
        (4, "malformed", False),
        (5, "not a JSON object (list)", False),
    ]
    assert result.usage.errors[0].sample.startswith("// a comment")
    assert result.usage.errors[2].offset == len(b"// a comment someone added\n") + len(
        line(good)
    ) + len(b'{"type": "user", "message": {"content": "trunc\n')


def test_unexpected_shapes_keep_what_fits(tmp_path: Path) -> None:
    weird = assistant("m", "r", input=4, output=6, cache_read=8, stop="end_turn")
    weird["message"]["usage"]["cache_creation_input_tokens"] = "lots"
    weird["message"]["content"] = [{"type": "tool_use", "name": "Bash", "input": "not an object"}]
    odd_user = user("hello")
    odd_user["message"] = "just a string"
    path = tmp_path / "s.jsonl"
    write(path, [weird, odd_user, {"no": "type"}])
    result = parse(path)
    (row,) = result.usage.usage.values()
    assert (row.input, row.output, row.cache_write_5m, row.cache_read) == (4, 6, 0, 8)
    facts = result.usage.facts
    assert facts.types == {"assistant": 1, "user": 1, "": 1}
    assert facts.tools == {"Bash": 1}
    assert facts.unknown_fields == {
        "assistant.message.usage.cache_creation_input_tokens:shape": 1,
        "assistant.message.content.input:shape": 1,
        "user.message:shape": 1,
    }
    assert result.usage.bad_lines == 0


def test_non_utf8_bytes_and_broken_surrogates_are_repaired(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    bad_utf8 = line(
        assistant("m1", "r1", output=5, stop="end_turn", content=[{"type": "text", "text": "XXXX"}])
    ).replace(b"XXXX", b"a\xffb")
    surrogate = line(
        assistant("m2", "r2", output=6, stop="end_turn", content=[{"type": "text", "text": "YYYY"}])
    ).replace(b"YYYY", b"\\ud83d cut")
    paired = line(
        assistant("m3", "r3", output=7, stop="end_turn", content=[{"type": "text", "text": "ZZZZ"}])
    ).replace(b"ZZZZ", b"\\ud83d\\ude00")
    path.write_bytes(bad_utf8 + surrogate + paired)
    result = parse(path)
    assert sorted(r.output for r in result.usage.usage.values()) == [5, 6, 7]
    assert result.usage.bad_lines == 0
    assert [(e.line, e.reason, e.repaired) for e in result.usage.errors] == [
        (1, "repaired: invalid UTF-8 replaced", True),
        (2, "repaired: unpaired surrogate escapes replaced", True),
    ]
    texts = [e.text for e in result.text.entries]
    assert texts == ["a\ufffdb", "\ufffd cut", "\U0001f600"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "short prompt",
        " \n\t lead " * 300,
        "w" * 5000,
        "ab " * 1000,
        " " * 959 + "word " * 100,
        "x" * 959 + " tail",
        ("\u3000word\u00a0" * 400),
    ],
)
def test_first_prompt_squeezes_whitespace_as_a_split_of_the_whole_text(text: str) -> None:
    for limit in (1, 7, 240):
        assert _squeezed(text, limit) == " ".join(text.split())[:limit]


def test_fix_surrogates_respects_escaped_backslashes() -> None:
    assert fix_surrogates(b'{"a":"\\\\ud800"}') is None  # a literal backslash, then text
    assert fix_surrogates(b'{"a":"\\ud800\\udc00"}') is None  # a proper pair
    assert fix_surrogates(b'{"a":"\\udc00\\ud800"}') == b'{"a":"\\ufffd\\ufffd"}'


def test_half_written_last_line_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    first = line(assistant("m1", "r1", output=1, stop="end_turn"))
    second = line(assistant("m2", "r2", output=2, stop="end_turn"))
    path.write_bytes(first + second[:40])
    result = parse(path)
    assert [r.output for r in result.usage.usage.values()] == [1]
    assert (result.offset, result.line, result.pending) == (len(first), 1, 40)
    with path.open("ab") as f:
        f.write(second[40:])
    more = parse(path, offset=result.offset, line_no=result.line)
    assert [r.output for r in more.usage.usage.values()] == [2]
    assert (more.offset, more.line, more.pending) == (len(first) + len(second), 2, 0)


def test_overlong_lines_are_skipped_without_holding_them(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    huge = line(user("x" * 300_000))
    path.write_bytes(
        line(user("before")) + huge + line(assistant("m", "r", output=3, stop="end_turn"))
    )
    job = ParseJob(str(path), True, text=False)
    result = parse_file(job, Limits(chunk_bytes=4096, max_line_bytes=65536))
    assert result.usage is not None
    assert [r.output for r in result.usage.usage.values()] == [3]
    assert [(e.line, e.reason) for e in result.usage.errors] == [
        (2, f"line of {len(huge)} bytes is too long")
    ]
    assert result.usage.facts.user_prompts == 1
    assert result.line == 3 and result.offset == path.stat().st_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-10T09:00:00.123Z", "2026-01-10T09:00:00.123Z"),
        ("2026-01-10T10:00:00+01:00", "2026-01-10T09:00:00.000Z"),
        ("2026-01-10T09:00:00.123456+00:00", "2026-01-10T09:00:00.123Z"),
        ("2026-01-10T09:00:00", "2026-01-10T09:00:00.000Z"),
        ("yesterday", ""),
    ],
)
def test_timestamps_are_canonical(text: str, expected: str) -> None:
    assert canonical_ts(text) == expected


def test_chunks_split_anywhere_give_the_same_result(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    write(path, records_of_every_type())
    whole = parse(path)
    for chunk in (64, 333, 1024):
        small = parse_file(ParseJob(str(path), True, text=True), Limits(chunk, 1 << 20))
        assert small.usage == whole.usage
        assert small.text is not None
        assert small.text.entries == whole.text.entries


def test_fingerprint_from_the_chunks_read_matches_the_file(tmp_path: Path) -> None:
    """The digest is taken from the chunks just parsed when they hold both ends of what
    was read; it must be the one a later read of the file computes."""
    path = tmp_path / "s.jsonl"
    write(path, records_of_every_type())
    with path.open("ab") as f:
        f.write(b'{"type": "user", "half')  # a line still being written
    for chunk in (64, 333, 1024, 1 << 20):
        result = parse_file(ParseJob(str(path), True), Limits(chunk, 1 << 20))
        fd = os.open(path, os.O_RDONLY)
        try:
            assert result.digest == digest(fd, result.offset)
        finally:
            os.close(fd)
    assert count_lines(b"a\n\nb\nc") == 3
    assert count_lines(b"") == 0


def test_a_chunk_with_a_bad_line_still_checks_the_others_utf8(tmp_path: Path) -> None:
    """A line whose invalid UTF-8 is in a field the index does not read is repaired and
    recorded when its chunk is read line by line, as before the typed decode came first."""
    skipped = assistant("m1", "r1", output=5, stop="end_turn")
    skipped["ignored"] = "XXXX"
    path = tmp_path / "s.jsonl"
    path.write_bytes(line(skipped).replace(b"XXXX", b"a\xffb") + b"not json\n")
    result = parse(path)
    assert [r.output for r in result.usage.usage.values()] == [5]
    assert [(e.line, e.reason.split(":")[0], e.repaired) for e in result.usage.errors] == [
        (1, "repaired", True),
        (2, "malformed", False),
    ]


def test_a_100_mb_file_is_streamed(tmp_path: Path) -> None:
    """Parsing a 100 MB transcript holds a few chunks in memory, never the file."""
    path = tmp_path / "big.jsonl"
    padding = "p" * 1500
    expected_output = 0
    with path.open("wb") as f:
        n = 0
        while f.tell() < 100 * 1024 * 1024:
            n += 1
            f.write(line(user(f"prompt {n} {padding}", ts="2026-01-10T09:00:00.000Z")))
            f.write(
                line(
                    assistant(
                        f"msg_{n}",
                        f"req_{n}",
                        input=n % 7,
                        output=n % 13,
                        stop="end_turn",
                        ts="2026-01-10T09:00:01.000Z",
                        content=[{"type": "text", "text": padding}],
                    )
                )
            )
            expected_output += n % 13
    size = path.stat().st_size
    state = ReadState(0, 0)
    parser = UsageParser(file_key=str(path), main=True)
    fd = os.open(path, os.O_RDONLY)
    tracemalloc.start()
    try:
        biggest = 0
        for item in read_lines(fd, state, size, chunk_bytes=4 << 20, max_line_bytes=8 << 20):
            if isinstance(item, Chunk):
                biggest = max(biggest, len(item.data))
            parser.feed(item)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        os.close(fd)
    delta = parser.delta()
    assert state.offset == size and state.line == 2 * n
    assert len(delta.usage) == n
    assert sum(r.output for r in delta.usage.values()) == expected_output
    assert delta.facts.user_prompts == n
    assert biggest <= (4 << 20) + 65536  # a chunk plus the line it cut
    # Chunks, decoded records of one chunk and the usage rows; far below the file's size.
    assert peak < 40 << 20, f"peak {peak / 2**20:.1f} MiB"


def test_text_parser_marks_sidechains(tmp_path: Path) -> None:
    path = tmp_path / "agent-a1.jsonl"
    write(
        path,
        [
            user("sub task", extra={"isSidechain": True, "agentId": "a1"}),
            assistant(
                "m", "r", output=1, stop="end_turn", extra={"isSidechain": True, "agentId": "a1"}
            ),
        ],
    )
    parser = TextParser()
    state = ReadState(0, 0)
    fd = os.open(path, os.O_RDONLY)
    try:
        for item in read_lines(
            fd, state, path.stat().st_size, chunk_bytes=4096, max_line_bytes=1 << 20
        ):
            parser.feed(item)
    finally:
        os.close(fd)
    assert [(e.kind, e.sidechain, e.agent_id) for e in parser.entries] == [
        ("user", True, "a1"),
        ("assistant", True, "a1"),
    ]
    json.dumps([e.text for e in parser.entries])
