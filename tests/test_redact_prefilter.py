"""The fast path must never disagree with the slow path.

The slow path decodes every line and runs every rule on every string; the fast path
decodes only the lines the prefilter flags, and runs only the rules it flags. Generated
lines mix secrets, anchors, quotes, backslashes, control characters and non-ASCII text,
and are encoded the ways JSON encoders differ (compact, ASCII-only, spaced, and hostile:
gratuitous `\\uXXXX` and `\\/` escapes), plus lines that are not JSON at all.
"""

from __future__ import annotations

import json
import os
import random
import string
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from karmad.redact import Redactor, UserPattern
from tests.support.secrets import SecretFactory

BUILTIN = Redactor()
CUSTOM = Redactor(
    literals=["Project Falcon", "Müller-GmbH internal"],
    patterns=[
        UserPattern("acme-token", r"acme_[a-z0-9]{8}"),
        UserPattern("ticket", r"(?i)\bTCK-\d{4}", anchors=("tck-",)),
    ],
    disable=["jwt"],
)
SECRET_TEXTS = [s.text for s in SecretFactory(11).all()]
PIECES = [
    "sk-",
    "sk-ant-",
    "AKIA",
    "ghp_",
    "xoxb-",
    "eyJ",
    ".eyJ",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----",
    "PRIVATE KEY",
    "Bearer ",
    "bearer\t",
    "Basic ",
    "Authorization: ",
    "x-api-key: ",
    "://",
    "@",
    ":",
    "=",
    " = ",
    ": ",
    "=>",
    "--password ",
    "-u ",
    "PASSWORD",
    "password",
    "api_key",
    "apiKey",
    "SECRET",
    "Token",
    "export ",
    '"',
    "'",
    "`",
    "\\",
    "\\n",
    "\n",
    "\t",
    "\r",
    "\x00",
    "\x1b[0m",
    "/",
    "é",
    "→",
    "\u2028",
    " ",
    "aws_secret_access_key",
    "AWS_SESSION_TOKEN",
    "hooks.slack.com/services/",
    "[REDACTED:",
    "[REDACTED:secret]",
    "Project Falcon",
    "Müller-GmbH internal",
    "acme_",
    "tck-",
    "TCK-",
    "Private-Lines: 2\n",
    "login me ",
    "password ",
    "\n  password ",
    "Cookie: ",
    "set-cookie:",
    "_auth=",
    "AgEIcHlwaS5vcmc",
    "mysql ",
    "mysql -u root -p",
    " -p",
    "-p'",
    "sshpass -p ",
    "docker login ",
    "smbclient -U ",
    "%",
    "-storepass ",
    "-passin pass:",
    "7z a -p",
    "--db-password ",
    "zip -P ",
]
TOKEN = st.text(alphabet=string.ascii_letters + string.digits + "+/=_-.", min_size=1, max_size=50)
NAMES = st.sampled_from(
    [
        "API_KEY",
        "password",
        "clientSecret",
        "x-api-key",
        "DB_PASS",
        "token",
        "MAX_TOKENS",
        "key",
        "auth",
        "_auth",
        "Cookie",
    ]
)
OPS = st.sampled_from(["=", " = ", ": ", ":", '": "', '\\": \\"', " := ", "=>", "**: "])
ASSIGNMENTS = st.builds(lambda n, o, v: n + o + v, NAMES, OPS, TOKEN)
FRAGMENT = st.one_of(
    st.sampled_from(SECRET_TEXTS),
    st.sampled_from(PIECES),
    ASSIGNMENTS,
    TOKEN,
    st.text(max_size=12),
)
STRINGS = st.lists(FRAGMENT, max_size=6).map("".join)
KEYS = st.one_of(
    st.sampled_from(["password", "apiKey", "auth", "content", "command", "input", "x"]),
    STRINGS,
)
VALUES = st.recursive(
    st.one_of(
        STRINGS,
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.none(),
    ),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=10,
)


def _hostile_string(text: str, rnd: random.Random) -> str:
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "/" and rnd.random() < 0.5:
            out.append("\\/")
        elif ord(ch) < 0x20 or rnd.random() < 0.2:
            if 0xD800 <= ord(ch) <= 0xDFFF:
                out.append(ch)
            elif ord(ch) > 0xFFFF:
                encoded = ch.encode("utf-16-be")
                out.append(f"\\u{encoded[:2].hex()}\\u{encoded[2:].hex()}")
            else:
                out.append(f"\\u{ord(ch):04{rnd.choice('xX')}}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def hostile_dumps(value: Any, rnd: random.Random) -> str:
    """Valid JSON that escapes characters no canonical encoder would."""
    if isinstance(value, str):
        return _hostile_string(value, rnd)
    if isinstance(value, list):
        return "[" + ", ".join(hostile_dumps(v, rnd) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{_hostile_string(k, rnd)} :{hostile_dumps(v, rnd)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    return json.dumps(value)


def encodings(value: Any, rnd: random.Random) -> list[bytes]:
    return [
        msgspec.json.encode(value),
        json.dumps(value).encode(),
        json.dumps(value, ensure_ascii=False, indent=None, separators=(", ", ": ")).encode(
            "utf-8", "surrogatepass"
        ),
        hostile_dumps(value, rnd).encode("utf-8", "surrogatepass"),
    ]


def agree(redactor: Redactor, line: bytes) -> None:
    fast = redactor.redact_line(line)
    slow = redactor.redact_line(line, prefilter=False)
    assert fast == slow, (line, fast, slow)
    out, report = slow
    if report is None:
        assert out == line
    else:
        again, second = redactor.redact_line(out, prefilter=False)
        assert second is None, (out, second)
        assert again == out


SLOW_IS_FINE = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
EXAMPLES = int(os.environ.get("KARMAD_REDACT_EXAMPLES", "400"))
"""Raise it for a soak: `KARMAD_REDACT_EXAMPLES=20000 pytest tests/test_redact_prefilter.py`."""
COMMON = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=SLOW_IS_FINE)


@COMMON
@given(VALUES, st.randoms(use_true_random=False))
def test_fast_path_agrees_on_json_lines(value: Any, rnd: random.Random) -> None:
    for line in encodings(value, rnd):
        agree(BUILTIN, line + b"\n")
        agree(CUSTOM, line)


@COMMON
@given(st.lists(FRAGMENT, max_size=8).map("".join), st.integers(0, 400))
def test_fast_path_agrees_on_lines_that_are_not_json(text: str, cut: int) -> None:
    line = text.replace("\n", " ").encode("utf-8", "surrogatepass")
    agree(BUILTIN, line)
    agree(CUSTOM, line + b"\r\n")
    truncated = msgspec.json.encode({"content": text})[:cut]
    agree(BUILTIN, truncated.replace(b"\n", b" "))


@settings(max_examples=max(EXAMPLES // 4, 1), deadline=None, suppress_health_check=SLOW_IS_FINE)
@given(st.lists(VALUES, min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_chunks_agree_with_lines(values: list[Any], rnd: random.Random) -> None:
    lines = [rnd.choice(encodings(v, rnd)).replace(b"\n", b" ") + b"\n" for v in values]
    chunk = b"".join(lines)
    expected = b"".join(BUILTIN.redact_line(line, prefilter=False)[0] for line in lines)
    result = BUILTIN.redact_chunk(chunk, explain=True)
    assert result.data == expected
    slow_reports = [BUILTIN.redact_line(line, prefilter=False)[1] for line in lines]
    assert [r.line for r in result.reports] == [i for i, r in enumerate(slow_reports) if r]
    assert [r.counts for r in result.reports] == [r.counts for r in slow_reports if r]
