"""Contextual secrets: what surrounds them says they are secrets.

Assignments to names that announce a secret, authentication headers, passwords in URLs,
`.netrc` credentials, and AWS secrets, which have no prefix of their own. Passwords on
command lines are in `commands`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import string
from collections.abc import Iterator

from karmad.redact.rule import (
    PLACEHOLDER_PREFIX,
    RAW_QUOTE,
    Hit,
    Rule,
    any_case_rule,
    raw_anchor,
    span_text,
)

_NOT_A_VALUE = frozenset(
    [
        "none",
        "null",
        "nil",
        "true",
        "false",
        "undefined",
        "yes",
        "no",
        "on",
        "off",
        "empty",
        "required",
        "optional",
        "str",
        "string",
        "bytes",
        "int",
        "integer",
        "number",
        "float",
        "bool",
        "boolean",
        "any",
        "unknown",
        "object",
        "secretstr",
        "redacted",
        "changeme",
    ]
)
_CODE_VALUE = re.compile(
    r"(?:self|this|cls|os|process|config|conf|settings|args|opts|options|params|req|request"
    r"|ctx|env|environ|secrets|vars|inputs|props|data|getenv)\b",
    re.ASCII,
)
_TEMPLATE_VALUE = re.compile(
    r"""\$|<[^>]*>$|\{\{.*\}\}$|\{[^{}]*\}$|%s$|%\([A-Za-z_]+\)s$|\.\.\.|(.)\1*$""",
    re.ASCII | re.DOTALL,
)


def not_a_secret(value: str) -> bool:
    """Values that cannot be a secret: references, templates, keywords, placeholders.

    Leaving these alone keeps commands and code readable in the shared transcript
    (`API_KEY=$API_KEY`, `password: <your password>`) and keeps redaction idempotent
    (`[REDACTED:...]` is never redacted again).
    """
    if not value or PLACEHOLDER_PREFIX in value:
        return True
    if value.lower() in _NOT_A_VALUE:
        return True
    return _TEMPLATE_VALUE.match(value) is not None


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*[A-Za-z]", re.ASCII)
_NAME_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", re.ASCII)
_PASSWORD_WORDS = frozenset({"password", "passwd", "passphrase", "pass", "pwd"})
_PASSWORD_VARIABLES = frozenset({"sshpass"})
"""One-word names that tools read a password from, which the last-word rule misses
(`SSHPASS` is not `SSH_PASS`, and `bypass` must stay a word)."""
_KEY_QUALIFIERS_PUBLIC = frozenset(
    [
        "primary",
        "foreign",
        "sort",
        "partition",
        "public",
        "cache",
        "hot",
        "row",
        "range",
        "hash",
        "unique",
        "composite",
        "lookup",
        "map",
        "dict",
        "index",
        "idempotency",
        "object",
        "routing",
        "shard",
        "dedup",
        "dedupe",
        "group",
        "order",
        "label",
        "meta",
        "metadata",
        "name",
        "file",
        "path",
    ]
)
_SECRET_SUFFIXES = (
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "apikey",
    "secretkey",
    "accesskey",
    "privatekey",
    "masterkey",
    "signingkey",
    "encryptionkey",
    "credentials",
    "credential",
)


@functools.lru_cache(maxsize=4096)
def secret_name_kind(name: str) -> str | None:
    """The kind of secret a variable, key or header name announces, if any.

    `OPENAI_API_KEY`, `apiKey`, `client-secret`, `DB_PASSWORD`, `authToken` announce a
    secret; `MAX_TOKENS`, `PRIMARY_KEY`, `public_key`, `key`, `PWD` do not. Names are split
    on `_`, `-`, `.` and camelCase; the last word decides.
    """
    if _NAME.fullmatch(name) is None:
        return None  # not a name (`"api key?"`), or one not ending in its last word (`KEY_`)
    words = [w.lower() for w in _NAME_WORDS.findall(name)]
    if not words:
        return None
    last = words[-1]
    if last in _PASSWORD_WORDS or (len(words) == 1 and last in _PASSWORD_VARIABLES):
        # A lone `PWD` is the shell's working directory.
        return None if last == "pwd" and len(words) == 1 else "password"
    if last.endswith(("password", "passwd", "passphrase")):
        return "password"
    if last == "auth":
        return "secret"  # `.npmrc` `_auth=`, Docker's `"auth": "<base64 user:pass>"`
    if last == "key":
        if len(words) == 1 or words[-2] in _KEY_QUALIFIERS_PUBLIC:
            return None
        return "secret"
    if last.endswith(_SECRET_SUFFIXES):
        return "secret"
    return None


_NAME_ENDINGS = r"(?:key|token|secret|passw(?:or)?d|passphrase|pass|pwd|credentials?|auth)"
_ASSIGNMENT_OP_TEXT = (
    r"""
    (?P<ending>"""
    + _NAME_ENDINGS
    + r""")
    (?P<quote>\*\*|\\?["'`])?
    (?P<op>[ \t]*(?::=|=>|=(?![=~>])|:(?![:/=]))[ \t]*)
    """
)
_ASSIGNMENT_OP = re.compile(_ASSIGNMENT_OP_TEXT, re.VERBOSE | re.ASCII)
"""Where assignments to secret names can be: a name ending and an operator, searched
for in lowercased text (4x faster than a case-insensitive search). Finding this first
and reading the name backwards is fast; a regex that starts with the name would be
tried at every word of every string."""
_ASSIGNMENT_OP_ANY_CASE = re.compile(_ASSIGNMENT_OP_TEXT, re.VERBOSE | re.ASCII | re.IGNORECASE)
_QUOTED = re.compile(
    r"""
        \\"(?P<esc>[^"\\\n]*)\\"
      | "(?P<dq>(?:[^"\\\n]|\\[^\n])*)"
      | '(?P<sq>[^'\n]*)'
      | `(?P<bq>[^`\n]*)`
    """,
    re.VERBOSE | re.ASCII,
)
_BARE = re.compile(r"""[^\s"'`,;&|)}\]\\<][^\s"'`,;&|)}\]\\]*""", re.ASCII)
_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_.-")
_NAME_START = frozenset(string.ascii_letters + "_")


def _assignment_hits(text: str) -> Iterator[Hit]:
    found_ops = (
        _ASSIGNMENT_OP.finditer(text.lower())
        if text.isascii()  # see Rule.any_case
        else _ASSIGNMENT_OP_ANY_CASE.finditer(text)
    )
    consumed = 0
    for match in found_ops:
        name_end = match.end("ending")
        start = match.start("ending")
        if start < consumed:
            continue
        while start > 0 and text[start - 1] in _NAME_CHARS:
            start -= 1
        while start < name_end and text[start] not in _NAME_START:
            start += 1
        name = text[start:name_end]
        kind = secret_name_kind(name)
        if kind is None:
            continue
        pos = match.end()
        quoted = _QUOTED.match(text, pos)
        if quoted is not None:
            group = next(g for g in ("esc", "dq", "sq", "bq") if quoted[g] is not None)
            value_start, value_end = quoted.span(group)
        else:
            bare = _BARE.match(text, pos)
            if bare is None:
                continue
            value_start, value_end = bare.span()
            # Whatever is decided, an assignment inside this bare value (`a=$b=...`) is
            # not looked at again: reading the rest of the run once per `=` would make
            # long runs quadratic.
            consumed = value_end
        value = text[value_start:value_end]
        if not_a_secret(value):
            continue
        if quoted is None:
            raw_op = text[match.start("op") : match.end("op")]
            op = raw_op.strip(" \t")
            if op in (":=", "=>"):
                continue  # Go and PHP code: only quoted literals are values there
            if value.lower() == name.lower():
                continue  # `password=password`: a keyword argument passed through
            spaced = op != raw_op or op == ":"
            if spaced and ("(" in value or _CODE_VALUE.match(value) is not None):
                continue  # `token = get_token()`, `password: req.body.password`
        consumed = value_end
        yield Hit(value_start, value_end, kind)


ASSIGNMENT = Rule(
    ("password", "secret"),
    _ASSIGNMENT_OP,
    (
        raw_anchor(
            _NAME_ENDINGS.encode() + RAW_QUOTE + rb"(?:[ \t\r]|\\t)*[=:]",
            caseless=True,
        ),
    ),
    finder=_assignment_hits,
)
"""`NAME=value`, `export NAME="value"`, `name: value`, `"name": "value"` where the name
announces a secret. The value is replaced, the name kept. The same anchor covers JSON
object keys, which the engine checks for the same names."""


AWS_SECRET = any_case_rule(
    ("aws-secret-key", "aws-session-token"),
    r"(?P<name>secret_?access_?key|session_?token"
    r"|security_?token)\\?[\"']?[ \t]*(?:=|:|=>)[ \t]*\\?[\"']?"
    r"(?P<secret>[a-z0-9/+=]{16,})",
    (
        raw_anchor(
            rb"(?:secret_?access_?key|session_?token|security_?token)"
            + RAW_QUOTE
            + rb"(?:[ \t]|\\t)*[:=]",
            caseless=True,
        ),
    ),
    lambda m, _text: Hit(
        *m.span("secret"),
        "aws-secret-key" if "access" in m["name"].lower() else "aws-session-token",
    ),
)
"""AWS secrets have no prefix of their own; they are recognised by the name beside them,
including the spaced `aws_secret_access_key = ...` of `~/.aws/credentials`. (Patterns of
case-insensitive rules are matched against lowercased text: `[a-z]` covers both cases.)"""


_TOKEN68 = r"[a-z0-9._~+/-]{16,}=*"

BEARER = any_case_rule(
    ("bearer-token",),
    r"bearer(?<![a-z0-9]bearer)[ \t]+(?P<secret>" + _TOKEN68 + ")",
    (raw_anchor(rb"bearer(?:[ \t]|\\t)+[A-Za-z0-9._~+/-]{16}", caseless=True),),
)


_B64_RUN = r"(?:[A-Za-z0-9+/]{4}){2,}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
"""Padded base64 of at least 6 bytes: `user:pw` and longer."""


def _classify_basic(match: re.Match[str], text: str) -> Hit | None:
    try:
        decoded = base64.b64decode(span_text(match, text, "secret"), validate=True)
    except (binascii.Error, ValueError):
        return None
    if b":" not in decoded:
        return None
    return Hit(*match.span("secret"), "basic-auth")


BASIC = any_case_rule(
    ("basic-auth",),
    r"basic(?<![a-z0-9]basic)[ \t]+(?P<secret>"
    + _B64_RUN.replace("A-Za-z", "a-z")
    + r")(?![a-z0-9+/=])",
    (
        raw_anchor(
            rb"basic(?:[ \t]|\\t)+" + _B64_RUN.encode() + rb"(?:[^A-Za-z0-9+/=\n]|$)",
            caseless=True,
        ),
    ),
    _classify_basic,
)
"""Only tokens that really are base64 of `user:password`: "basic configuration" stays."""


def _classify_header(match: re.Match[str], text: str) -> Hit | None:
    value = span_text(match, text, "secret")
    if not_a_secret(value) or value.lower() in ("bearer", "basic", "token"):
        return None
    return Hit(*match.span("secret"), "auth-header")


AUTH_HEADER = any_case_rule(
    ("auth-header",),
    r"(?:authorization|x-api-key|api-key|x-auth-token"
    r"|private-token|x-access-token)\\?[\"']?[ \t]*[:=][ \t]*\\?[\"']?"
    r"(?:(?:token|bot|bearer|basic|digest|apikey)[ \t]+)?(?P<secret>[a-z0-9._~+/=:-]{8,})",
    (
        raw_anchor(
            rb"(?:authorization|api-key|auth-token|private-token|access-token)"
            + RAW_QUOTE
            + rb"(?:[ \t]|\\t)*[:=]",
            caseless=True,
        ),
    ),
    _classify_header,
)


_NETRC_LOGIN = re.compile(r"(?:^|[ \t])login[ \t]+\S+[ \t]+$", re.ASCII)


def _classify_netrc(match: re.Match[str], text: str) -> Hit | None:
    """Only where `.netrc` has it: first on its line, or after `login <name>`."""
    start = match.start()
    head = text[max(0, start - 300) : start]
    escaped = head.rfind("\\n")  # a line that is not JSON keeps its `\n` escapes
    head = head[max(head.rfind("\n") + 1, escaped + 2 if escaped >= 0 else 0) :]
    if head.strip(" \t") and _NETRC_LOGIN.search(head) is None:
        return None
    if not_a_secret(span_text(match, text, "secret")):
        return None
    return Hit(*match.span("secret"), "password")


NETRC = Rule(
    ("password",),
    re.compile(r"password[ \t]+(?P<secret>[^\s\\]+)", re.ASCII),
    (raw_anchor(rb"password(?:[ \t]|\\t)+"),),
    classify=_classify_netrc,
)
"""`~/.netrc`: `machine h login u password p`, on one line or on lines of their own."""


def _classify_cookie(match: re.Match[str], text: str) -> Hit | None:
    if not_a_secret(span_text(match, text, "secret")):
        return None
    return Hit(*match.span("secret"), "cookie")


COOKIE = any_case_rule(
    ("cookie",),
    r"cookie\\?[\"']?[ \t]*:[ \t]*(?P<secret>[^\r\n\"'\\]{8,})",
    (raw_anchor(rb"cookie" + RAW_QUOTE + rb"(?:[ \t]|\\t)*:", caseless=True),),
    _classify_cookie,
)
"""`Cookie:` and `Set-Cookie:` headers: session cookies are credentials."""


def _classify_url(match: re.Match[str], text: str) -> Hit | None:
    if not_a_secret(span_text(match, text, "secret")):
        return None
    return Hit(*match.span("secret"), "url-password")


URL_PASSWORD = Rule(
    ("url-password",),
    re.compile(
        r"://(?P<user>[^\s/?#@:\"'\\\x00-\x1f]*)"
        r":(?P<secret>[^\s/?#\"'<>`\\\x00-\x1f]+)@",
    ),
    (
        raw_anchor(
            rb"://(?:[^\s/?#@:\"\\]|\\u[0-9a-fA-F]{4})*:(?:[^\s/?#\"\\]|\\u[0-9a-fA-F]{4})*@"
        ),
    ),
    classify=_classify_url,
)
"""`scheme://user:password@host`: user and host stay readable."""
