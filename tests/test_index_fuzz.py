"""Transcript parsing under fuzzing: whatever the bytes of a file (random nesting, sizes,
bytes, truncations, records of the real shape with fields of any type), parsing never
raises, and every complete line is either a record or a recorded skipped line."""

from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from karmad.index.discovery import Root
from karmad.index.work import Limits, ParseJob, parse_file
from tests.support.indexing import LocalIndex
from tests.support.transcripts import assistant, user

EXAMPLES = int(os.environ.get("KARMAD_INDEX_FUZZ_EXAMPLES", "300"))
"""Raise it for a soak: `KARMAD_INDEX_FUZZ_EXAMPLES=20000 pytest tests/test_index_fuzz.py`."""
SLOW_IS_FINE = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
COMMON = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=SLOW_IS_FINE)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(
        ["2026-01-10T10:00:00.000Z", "2026-13-45T99:99:99.999Z", "", "user", "assistant"]
    )
)
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = (
    "type",
    "timestamp",
    "message",
    "usage",
    "content",
    "model",
    "id",
    "requestId",
    "sessionId",
    "cwd",
    "isSidechain",
    "input",
    "name",
    "subtype",
    "durationMs",
    "toolUseResult",
)


def real_records(rnd: random.Random) -> list[dict[str, Any]]:
    tool = {"type": "tool_use", "id": "toolu_1", "name": "Task", "input": {"subagent_type": "x"}}
    return [
        user("a prompt", ts="2026-01-10T09:00:00.000Z"),
        user([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]),
        assistant(
            "msg_1",
            "req_1",
            input=rnd.randint(0, 10**6),
            output=rnd.randint(0, 10**4),
            cache_write=rnd.randint(0, 10**5),
            one_hour=rnd.randint(0, 10**5),
            five_minutes=0,
            stop=rnd.choice([None, "end_turn"]),
            content=[tool, {"type": "text", "text": "hi"}],
        ),
        {"type": "system", "subtype": "turn_duration", "durationMs": 1200},
        {"type": "summary", "summary": "s", "leafUuid": "u"},
        {"type": "custom-title", "customTitle": "t"},
    ]


def mutate(record: Any, value: Any, rnd: random.Random) -> Any:
    """Put `value` somewhere inside `record` (or replace it)."""
    node = record
    for _ in range(rnd.randint(0, 4)):
        if isinstance(node, dict) and node:
            key = rnd.choice(list(node))
            if isinstance(node[key], (dict, list)) and node[key]:
                node = node[key]
                continue
            node[key] = value
            return record
        if isinstance(node, list) and node:
            index = rnd.randrange(len(node))
            if isinstance(node[index], (dict, list)) and node[index]:
                node = node[index]
                continue
            node[index] = value
            return record
        break
    if isinstance(node, dict):
        node[rnd.choice(FIELDS)] = value
    elif isinstance(node, list):
        node.append(value)
    else:
        return value
    return record


def nested(depth: int, rnd: random.Random) -> bytes:
    opener, closer = rnd.choice([(b"[", b"]"), (b'{"a":', b"}")])
    inner = opener * depth + b"1" + closer * depth
    return b'{"type":"assistant","message":{"content":' + inner + b"}}"


def hostile_line(value: Any, rnd: random.Random) -> bytes:
    """One line: a record of the real shape with `value` planted in it, then maybe
    broken the way files get broken (cut, bytes flipped, NULs, bad UTF-8, deep nesting)."""
    kind = rnd.randrange(9)
    if kind == 0:
        return nested(rnd.choice([10, 900, 1100, 5000, 50_000]), rnd)
    if kind == 1:
        return bytes(rnd.randrange(256) for _ in range(rnd.randrange(64))).replace(b"\n", b" ")
    record = mutate(rnd.choice(real_records(rnd)), value, rnd)
    data = json.dumps(record, separators=(",", ":"), ensure_ascii=rnd.random() < 0.5).encode(
        "utf-8", "surrogatepass"
    )
    if kind == 2 and data:
        data = data[: rnd.randrange(len(data))]
    elif kind == 3 and data:
        at = rnd.randrange(len(data))
        data = data[:at] + bytes([rnd.randrange(256)]) + data[at + 1 :]
    elif kind == 4:
        data = data.replace(b'"hi"', b'"h\\ud83di"').replace(b'"ok"', b'"\xff\xfe"')
    elif kind == 5:
        data = data + b"\x00" * rnd.randrange(1, 4)
    elif kind == 6:
        data = b" " * rnd.randrange(3) + data + b"\r"
    return data.replace(b"\n", b" ")


def complete_lines(data: bytes) -> list[bytes]:
    return [raw for raw in data.split(b"\n")[:-1] if raw.strip()]


@COMMON
@given(
    st.lists(VALUES, min_size=1, max_size=8),
    st.randoms(use_true_random=False),
    st.integers(64, 1 << 16),
)
def test_parsing_never_raises_and_accounts_for_every_line(
    values: list[Any], rnd: random.Random, chunk: int
) -> None:
    lines = [hostile_line(v, rnd) for v in values]
    data = b"\n".join(lines) + b"\n"
    tail = b""
    if rnd.random() < 0.3:  # a line still being written
        tail = hostile_line(values[0], rnd)[:20].replace(b"\n", b"")
    limit = rnd.choice([1 << 20, 4096])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.jsonl"
        path.write_bytes(data + tail)
        result = parse_file(ParseJob(str(path), True, text=True), Limits(chunk, limit))
    assert result.status == "ok", result.problem
    assert result.usage is not None and result.text is not None
    expected = len(complete_lines(data))
    assert result.usage.records + result.usage.bad_lines == expected
    assert result.pending == len(tail) and result.offset == len(data)
    assert len(result.text.entries) <= result.usage.records
    skipped = [e for e in result.usage.errors if not e.repaired]
    assert len(skipped) == min(result.usage.bad_lines, len(skipped))
    assert all(1 <= e.line <= len(data.split(b"\n")) for e in result.usage.errors)


@settings(max_examples=max(EXAMPLES // 6, 1), deadline=None, suppress_health_check=SLOW_IS_FINE)
@given(
    st.lists(st.lists(VALUES, min_size=1, max_size=5), min_size=1, max_size=4),
    st.randoms(use_true_random=False),
)
def test_the_index_survives_any_files(files: list[list[Any]], rnd: random.Random) -> None:
    """Through the whole pipeline (engine, writer, queries): nothing raises, and every
    file is either indexed or recorded as a problem."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "projects"
        paths = []
        for n, values in enumerate(files):
            sid = f"{n:08d}-0000-4000-8000-000000000000"
            path = root / "-p" / f"{sid}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            good = json.dumps(user("hello", session=sid)).encode()
            path.write_bytes(b"\n".join([good, *(hostile_line(v, rnd) for v in values)]) + b"\n")
            paths.append(str(path))
        idx = LocalIndex(Path(tmp) / "index.db", [Root(root)])
        try:
            idx.scan()
            indexed = {r[0] for r in idx.store.query("SELECT path FROM files")}
            problems = {p.path for p in idx.reader.file_problems()}
            assert indexed | problems == set(paths)
            for row in idx.store.query("SELECT session_id FROM sessions"):
                idx.detail(row[0])
        finally:
            idx.close()
