"""The redactor over lines, chunks and streams: structure, counts, text lines, config."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from karmad.redact import Redactor, RuleError, Tally, UserPattern, placeholder
from tests.support.secrets import CORPUS, SecretFactory, needs_corpus

R = Redactor()
SECRETS = SecretFactory(5).all()
ANT = next(s for s in SECRETS if s.kind == "anthropic-key").fragments[0]
PEM = next(s for s in SECRETS if s.kind == "private-key")


def line(record: Any) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def shape(value: Any) -> Any:
    """The structure of a JSON value, with every string reduced to its type."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    if isinstance(value, str):
        return str
    return value


def assistant_with(command: str, text: str) -> dict[str, Any]:
    return {
        "type": "assistant",
        "uuid": "0ccf1a04-1b4c-43b6-8aa5-79e41db43a68",
        "message": {
            "role": "assistant",
            "content": [
                {"type": "text", "text": text},
                {
                    "type": "tool_use",
                    "id": "toolu_01",
                    "name": "Bash",
                    "input": {"command": command},
                },
            ],
            "usage": {"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 0},
        },
    }


def test_structure_is_kept_and_only_secret_strings_change() -> None:
    record = assistant_with(f"export ANTHROPIC_API_KEY={ANT}", "Setting the key up.")
    out, report = R.redact_line(line(record))
    assert report is not None
    after = json.loads(out)
    assert shape(after) == shape(record)
    assert after["message"]["content"][0] == record["message"]["content"][0]
    assert after["message"]["content"][1]["input"]["command"] == (
        "export ANTHROPIC_API_KEY=[REDACTED:anthropic-key]"
    )
    assert report.counts == {"anthropic-key": 1}
    assert report.paths == ("$.message.content[1].input.command",)
    assert report.json
    assert out.endswith(b"\n")


def test_private_key_with_escaped_newlines_inside_a_json_string() -> None:
    record = {"type": "user", "toolUseResult": {"stdout": f"here:\n{PEM.text}done"}}
    raw = line(record)
    assert b"\\n" in raw  # the key's newlines are JSON escapes in the raw line
    out, report = R.redact_line(raw)
    assert json.loads(out)["toolUseResult"]["stdout"] == "here:\n[REDACTED:private-key]\ndone"
    assert report is not None and report.counts == {"private-key": 1}


def test_private_key_double_encoded_in_a_json_file_read_by_a_tool() -> None:
    body = PEM.fragments
    service_account = json.dumps(
        {
            "private_key": "-----BEGIN PRIVATE KEY-----\n"
            + "\n".join(body)
            + "\n-----END PRIVATE KEY-----\n"
        }
    )
    out, _ = R.redact_line(line({"content": service_account}))
    for fragment in body:
        assert fragment.encode() not in out
    # the inner JSON stays valid JSON; the whole value went (name and key block alike)
    assert json.loads(json.loads(out)["content"]) == {"private_key": "[REDACTED:private-key]"}


def test_keys_are_kept_but_a_key_naming_a_secret_redacts_its_value() -> None:
    record = {
        "input": {"password": "hunter22", "apiKey": "k-123456", "token_count": "7", "sk-x": "v"},
        "env": {"DB_PASSWORD": "$DB_PASSWORD", "API_KEY": ""},
    }
    out, report = R.redact_line(line(record))
    after = json.loads(out)
    assert list(after["input"]) == list(record["input"])
    assert after["input"] == {
        "password": "[REDACTED:password]",
        "apiKey": "[REDACTED:secret]",
        "token_count": "7",
        "sk-x": "v",
    }
    assert after["env"] == record["env"]
    assert report is not None and report.counts == {"password": 1, "secret": 1}


def test_clean_lines_pass_byte_for_byte_even_when_inspected() -> None:
    # Python-style separators and an ASCII escape: re-encoding would change both.
    raw = b'{"type": "user", "content": "password: <your password> \\u2192 MAX_TOKENS=5"}\n'
    out, report = R.redact_line(raw)
    assert report is None
    assert out is raw
    assert R.redact_line(raw, prefilter=False) == (raw, None)


def test_everything_but_the_redacted_strings_stays_byte_for_byte() -> None:
    raw = (
        b'{ "n" : 1.50, "big": 123456789012345678901234567890, "dup": 1, "dup": 2,\t'
        b'"arrow": "\\u2192 \xe2\x86\x92", "cmd" : "export DB_PASSWORD=hunter22",'
        b' "list": [ "a\\/b", "PASSWORD=x1" ] }\n'
    )
    out, report = R.redact_line(raw)
    assert out == raw.replace(b"hunter22", b"[REDACTED:password]").replace(
        b"PASSWORD=x1", b"PASSWORD=[REDACTED:password]"
    )
    assert report is not None
    assert report.paths == ("$.cmd", "$.list[1]")


def test_clean_chunk_is_returned_as_is() -> None:
    data = b"".join(line({"n": i, "text": "nothing to see"}) for i in range(100))
    result = R.redact_chunk(data)
    assert result.data is data
    assert result.reports == []
    assert result.bytes_in == len(data)


def test_line_endings_are_kept() -> None:
    raw = json.dumps({"c": "DB_PASSWORD=hunter22"}).encode()
    for ending in (b"\n", b"\r\n", b""):
        out, _ = R.redact_line(raw + ending)
        assert out == b'{"c": "DB_PASSWORD=[REDACTED:password]"}' + ending


def test_text_lines_are_redacted_as_text_and_reported() -> None:
    raw = f"// not json: export TOKEN={ANT} and DB_PASSWORD=hunter22\n".encode()
    out, report = R.redact_line(raw)
    assert (
        out == b"// not json: export TOKEN=[REDACTED:anthropic-key]"
        b" and DB_PASSWORD=[REDACTED:password]\n"
    )
    assert report is not None
    assert not report.json
    assert report.paths == ("$",)
    # a truncated JSON line: still invalid, and the secret still goes
    truncated = line({"content": f"key {ANT}", "more": 1})[:-12]
    out, report = R.redact_line(truncated)
    assert ANT.encode() not in out
    assert report is not None and not report.json
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(out)


def test_non_utf8_bytes_survive_text_redaction() -> None:
    raw = b"\xff\xfe garbage DB_PASSWORD=hunter22 \xc3\n"
    out, report = R.redact_line(raw)
    assert out == b"\xff\xfe garbage DB_PASSWORD=[REDACTED:password] \xc3\n"
    assert report is not None


def test_counts_per_line_and_tally_per_session() -> None:
    lines = [
        line({"c": "plain"}),
        line({"c": f"{ANT} and {ANT}"}),
        line({"c": "x", "d": ["DB_PASSWORD=a1b2c3", "PASSWORD=zz9"]}),
        b"not json API_KEY=abcdef\n",
        line({"c": "plain again"}),
    ]
    assert [r.line for r in R.redact_chunk(b"".join(lines)).reports] == [None] * 3
    result = R.redact_chunk(b"".join(lines), explain=True)
    assert [(r.line, r.counts, r.json) for r in result.reports] == [
        (1, {"anthropic-key": 2}, True),
        (2, {"password": 2}, True),
        (3, {"secret": 1}, False),
    ]
    assert [r.offset for r in result.reports] == [
        len(lines[0]),
        len(lines[0]) + len(lines[1]),
        sum(map(len, lines[:3])),
    ]
    tally = Tally()
    tally.add(result)
    tally.add(result)
    assert tally.counts == {"anthropic-key": 4, "password": 4, "secret": 2}
    assert tally.lines_redacted == 6
    assert tally.text_lines == 2
    assert tally.replacements == 10
    assert tally.as_dict()["counts"] == {"anthropic-key": 4, "password": 4, "secret": 2}
    assert ANT not in json.dumps(tally.as_dict())
    restored = Tally.from_dict(json.loads(json.dumps(tally.as_dict())))
    assert restored == tally
    restored.merge(tally)
    assert restored.counts["secret"] == 4


def test_redaction_is_idempotent_and_deterministic() -> None:
    data = b"".join(line({"c": s.text}) for s in SECRETS)
    first = R.redact_chunk(data)
    assert first.data != data
    assert Redactor().redact_chunk(data).data == first.data
    second = R.redact_chunk(first.data)
    assert second.data is first.data
    assert second.reports == []


def _stream(redactor: Redactor, data: bytes, chunk_size: int) -> tuple[bytes, Tally, list[Any]]:
    out = io.BytesIO()
    reports: list[Any] = []
    tally = redactor.redact_stream(
        io.BytesIO(data), out, chunk_size=chunk_size, on_report=reports.append
    )
    return out.getvalue(), tally, reports


def test_stream_output_does_not_depend_on_chunk_size() -> None:
    records = [line({"i": i, "c": s.text}) for i, s in enumerate(SECRETS)]
    records.insert(3, line({"big": "x" * 5000 + " DB_PASSWORD=hunter22"}))
    data = b"".join(records) + b'{"last":"no newline API_KEY=abc123"}'
    reference, tally, reports = _stream(R, data, 1 << 20)
    assert reference.endswith(b'{"last":"no newline API_KEY=[REDACTED:secret]"}')
    assert tally.bytes_in == len(data)
    assert tally.bytes_out == len(reference)
    for size in (1, 7, 100, 4096):
        out, other, other_reports = _stream(R, data, size)
        assert out == reference
        assert other.counts == tally.counts
        assert [(r.line, r.offset) for r in other_reports] == [(r.line, r.offset) for r in reports]
    assert [r.line for r in reports] == list(range(len(records) + 1))


@needs_corpus
def test_real_transcripts_stream_through_unchanged(tmp_path: Path) -> None:
    """The shared corpus holds no secret: every file must come out byte for byte."""
    files = sorted(CORPUS.rglob("*.jsonl"))
    assert files
    for path in files:
        out = io.BytesIO()
        with path.open("rb") as src:
            tally = R.redact_stream(src, out)
        assert out.getvalue() == path.read_bytes(), path
        assert tally.replacements == 0


# ---- user rules


def test_user_literals_and_patterns() -> None:
    redactor = Redactor(
        literals=["Project Falcon", "acme-internal.example.com"],
        patterns=[
            UserPattern("acme-token", r"acme_[a-z0-9]{16}"),
            UserPattern("customer", r"(?i)customer (?P<secret>#\d{5})", anchors=("customer",)),
        ],
    )
    record = {
        "c": "Project Falcon talks to https://acme-internal.example.com with acme_0123456789abcdef"
        " for Customer #12345"
    }
    out, report = redactor.redact_line(line(record))
    assert json.loads(out)["c"] == (
        "[REDACTED:literal] talks to https://[REDACTED:literal] with [REDACTED:acme-token]"
        " for Customer [REDACTED:customer]"
    )
    assert report is not None
    assert report.counts == {"literal": 2, "acme-token": 1, "customer": 1}
    assert redactor.redact_line(out) == (out, None)
    assert {"literal", "acme-token", "customer"} <= set(redactor.kinds)


def test_non_ascii_literal_found_behind_ascii_escapes() -> None:
    redactor = Redactor(literals=["Müller GmbH"])
    raw = json.dumps({"c": "Kunde: Müller GmbH"}).encode()  # ensure_ascii: M\u00fcller
    assert b"\\u00fc" in raw
    out, report = redactor.redact_line(raw)
    assert json.loads(out) == {"c": "Kunde: [REDACTED:literal]"}
    assert report is not None


def test_disabled_kinds_stay() -> None:
    redactor = Redactor(disable=["jwt", "password"])
    jwt = next(s for s in SECRETS if s.kind == "jwt").fragments[0]
    text = f"{jwt} DB_PASSWORD=hunter22 https://u:pw123456@h API_KEY=abc123"
    out, counts = redactor.redact_string(text)
    assert out == (
        f"{jwt} DB_PASSWORD=hunter22 https://u:[REDACTED:url-password]@h API_KEY=[REDACTED:secret]"
    )
    assert counts == {"url-password": 1, "secret": 1}
    assert "jwt" not in redactor.kinds and "password" not in redactor.kinds


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"disable": ["nope"]}, "unknown kind"),
        ({"patterns": [UserPattern("x", "acme_(")]}, "invalid regex"),
        ({"patterns": [UserPattern("x", "acme_.*|")]}, "empty string"),
        ({"patterns": [UserPattern("x", r"\d{6}")]}, "cannot tell which lines"),
        ({"patterns": [UserPattern("x", r"\d{6}", anchors=("a",))]}, "anchor"),
        ({"patterns": [UserPattern("x", "REDACTED:[a-z]+")]}, "placeholder"),
        ({"patterns": [UserPattern("Bad Name", "acme_x")]}, "lowercase"),
        ({"patterns": [UserPattern("jwt", "acme_x")]}, "built-in"),
        ({"patterns": [UserPattern("a", "acme_x"), UserPattern("a", "acme_y")]}, "twice"),
        ({"literals": ["ab"]}, "shorter"),
        ({"literals": ['a"b\\c"d']}, "run of"),
        ({"literals": ["REDACTED"]}, "placeholder"),
    ],
)
def test_unusable_user_rules_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleError, match=message):
        Redactor(**kwargs)


def test_placeholder_format() -> None:
    assert placeholder("aws-access-key") == "[REDACTED:aws-access-key]"
    assert R.rules_version >= 1


def test_secrets_hidden_behind_json_escapes_are_found() -> None:
    """`\\u0073k-ant-...` and `https:\\/\\/` are valid JSON no canonical encoder writes."""
    escaped_key = "\\u0073" + ANT[1:]
    raw = (
        '{"a":"' + escaped_key + '","b":"https:\\/\\/bob:hunter22@git.example.com",'
        '"c":"DB_P\\u0041SSWORD=hunter22"}\n'
    ).encode()
    assert ANT.encode() not in raw
    out, report = R.redact_line(raw)
    assert json.loads(out) == {
        "a": "[REDACTED:anthropic-key]",
        "b": "https://bob:[REDACTED:url-password]@git.example.com",
        "c": "DB_PASSWORD=[REDACTED:password]",
    }
    assert report is not None
    assert R.redact_chunk(raw * 3).data == out * 3


def test_redact_lines_explains_each_line() -> None:
    lines = [line({"a": "clean"}), line({"b": {"c": ["x", "PASSWORD=hunter22"]}}), b"DB_PASS=x1\n"]
    results = list(R.redact_lines(lines))
    assert results[0][0] == lines[0]
    reports = [report for _, report in results]
    assert reports[0] is None
    assert reports[1] is not None and reports[2] is not None
    assert (reports[1].line, reports[1].offset, reports[1].paths) == (
        1,
        len(lines[0]),
        ("$.b.c[1]",),
    )
    assert (reports[2].line, reports[2].offset, reports[2].json) == (
        2,
        len(lines[0]) + len(lines[1]),
        False,
    )


def test_one_redactor_serves_many_threads() -> None:
    """The prefilter keeps a Hyperscan scratch per thread; results must not mix."""
    from concurrent.futures import ThreadPoolExecutor

    chunks = [b"".join(line({"i": i, "c": s.text}) for s in SECRETS[i::4]) for i in range(4)]
    expected = [Redactor().redact_chunk(chunk).data for chunk in chunks]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            assert list(pool.map(lambda c: R.redact_chunk(c).data, chunks)) == expected


@pytest.mark.parametrize("key", ["apiKey\u001f", "API_KEY_", "api key", "pässword"])
def test_only_keys_that_are_names_make_their_values_secret(key: str) -> None:
    """Found by the fast-vs-slow property test: these have no anchor in the raw line."""
    raw = json.dumps({key: "hunter22"}).encode() + b"\n"
    assert R.redact_line(raw) == (raw, None)
    assert R.redact_line(raw, prefilter=False) == (raw, None)
