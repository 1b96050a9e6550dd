"""The built-in redaction rules, versioned.

Each rule pairs a Python regex, run on *decoded* JSON string values (or on the raw text
of a line that is not JSON), with one or more *prefilter* patterns run by the prefilter
on the *raw* bytes of a line. The contract that keeps the fast path honest: whenever a
rule's regex matches inside a decoded string, one of its prefilter patterns matches the
line's canonical JSON encoding (strings as JSON.stringify or msgspec write them). Lines
that use non-canonical escapes are caught separately by the prefilter and always take
the slow path. `tests/test_redact_prefilter.py` checks the contract with generated lines.

Prefilter patterns are Hyperscan syntax over bytes. Characters a JSON encoder may escape
(quotes, backslashes, control characters, and anything written as a `\\uXXXX` escape)
are allowed for in them; everything else appears in the raw line exactly as decoded.

Bump `RULES_VERSION` whenever a rule is added, removed or changes what it matches:
manifests record it so a receiver knows which rules a session went through.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

RULES_VERSION = 1

PLACEHOLDER_PREFIX = "[REDACTED:"
PLACEHOLDER_RE = re.compile(r"\[REDACTED:[a-z0-9][a-z0-9-]*\]")
KIND_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


def placeholder(kind: str) -> str:
    return f"{PLACEHOLDER_PREFIX}{kind}]"


@dataclass(frozen=True, slots=True)
class Hit:
    """One secret found in a string: the span to replace and the kind it is."""

    start: int
    end: int
    kind: str


@dataclass(frozen=True, slots=True)
class Anchor:
    """A prefilter pattern: Hyperscan syntax over the raw bytes of a line."""

    pattern: bytes
    caseless: bool = False


Classifier = Callable[[re.Match[str], str], "Hit | None"]
"""Decides on one match; gets the original text, as the match may be on a lowercased copy."""
Finder = Callable[[str], Iterator["Hit"]]


@dataclass(frozen=True, slots=True)
class Rule:
    """A redaction rule.

    `pattern` finds candidates; the span replaced is the `secret` group when the pattern
    has one (so names, users and hosts around a secret stay readable), else the whole
    match. `classify`, when set, decides per match (and may name the kind, for rules
    that produce more than one).
    """

    kinds: tuple[str, ...]
    pattern: re.Pattern[str]
    anchors: tuple[Anchor, ...]
    classify: Classifier | None = None
    finder: Finder | None = field(default=None)
    """Replaces the pattern search entirely, for rules a single regex cannot find fast."""
    any_case: re.Pattern[str] | None = field(default=None)
    """For a case-insensitive rule: `pattern` is written in lowercase and searched in
    lowercased ASCII text (several times faster than `re.IGNORECASE`); this is the same
    pattern with IGNORECASE (ASCII only), for text that is not ASCII."""

    def hits(self, text: str) -> list[Hit]:
        """Secrets this rule finds in `text` (a list: most calls find none, cheaply)."""
        if self.finder is not None:
            return list(self.finder(text))
        haystack, pattern = text, self.pattern
        if self.any_case is not None:
            # Only ASCII text is lowercased: `str.lower` maps some other characters to
            # ASCII letters (KELVIN SIGN to `k`) or to two characters (`İ`).
            if text.isascii():
                haystack = text.lower()
            else:
                pattern = self.any_case
        match = pattern.search(haystack)
        if match is None:
            return []
        found: list[Hit] = []
        classify = self.classify
        if classify is None:
            kind = self.kinds[0]
            group = "secret" if "secret" in pattern.groupindex else 0
            while match is not None:
                start, end = match.span(group)
                if end > start:
                    found.append(Hit(start, end, kind))
                match = pattern.search(haystack, max(match.end(), match.start() + 1))
            return found
        while match is not None:
            hit = classify(match, text)
            if hit is not None and hit.end > hit.start:
                found.append(hit)
                pos = max(match.end(), match.start() + 1)
            else:
                # A rejected candidate must not swallow the start of a real one:
                # in `deploy: apiKey: x`, `apiKey: x` begins inside the first match.
                pos = match.start() + 1
            match = pattern.search(haystack, pos)
        return found


# ---- raw-byte building blocks for anchors

_RAW_QUOTE = rb"(?:\*\*|\\{0,3}[\"'`])?"
"""An optional quote closing a key name, possibly escaped once or twice."""


def _rx(pattern: bytes, *, caseless: bool = False) -> Anchor:
    return Anchor(pattern, caseless)


# ---- provider tokens: a distinctive prefix and a body of characters JSON never escapes
#
# Every regex starts with a literal, so `re` can search for it quickly; the word
# boundary before the prefix is a lookbehind placed after it. (A regex that starts with
# a lookbehind is tried at every position of the string: measured 50x slower.)


def _b(prefix: str, before: str = "[A-Za-z0-9]") -> str:
    """`prefix` (a fixed-width regex), not preceded by a character of `before`."""
    return f"{prefix}(?<!{before}{prefix})"


_B64_BEFORE = "[A-Za-z0-9+/_-]"
"""For prefixes made only of base64 letters: never match inside a base64 blob (an `=`
before is fine: padding only ends a blob, and `KEY=AKIA...` must match)."""
_END_B64 = r"(?![A-Za-z0-9+/=_-])"


def _any_case(
    kinds: tuple[str, ...],
    regex: str,
    anchors: tuple[Anchor, ...],
    classify: Classifier | None = None,
) -> Rule:
    """A case-insensitive rule, its regex written in lowercase (see `Rule.any_case`)."""
    return Rule(
        kinds,
        re.compile(regex, re.ASCII),
        anchors,
        classify=classify,
        any_case=re.compile(regex, re.ASCII | re.IGNORECASE),
    )


def _span(match: re.Match[str], text: str, group: str) -> str:
    return text[match.start(group) : match.end(group)]


def _token(kind: str, regex: str, *anchors: bytes) -> Rule:
    return Rule((kind,), re.compile(regex, re.ASCII), tuple(_rx(a) for a in anchors))


_TOKENS: tuple[Rule, ...] = (
    _token(
        "private-key",
        r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
        # bounded, so a string full of BEGIN lines without an END stays linear
        r"(?:[\s\S]{0,65536}?-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
        r"|(?:[A-Za-z0-9+/=:,. \t\r\n-]|\\[rn])*)",
        rb"PRIVATE KEY",
    ),
    _token(
        "private-key",
        r"Private-Lines:[ \t]*\d+[ \t]*(?:\r?\n|\\r?\\n)"
        r"(?P<secret>(?:[A-Za-z0-9+/=]+[ \t]*(?:\r?\n|\\r?\\n|$))+)",
        rb"Private-Lines:",
    ),
    _token(
        "anthropic-key",
        _b("sk-ant-") + r"[A-Za-z0-9_-]{20,}",
        rb"sk-ant-[A-Za-z0-9_-]{20}",
    ),
    _token(
        "openai-key",
        _b("sk-") + r"(?:(?:proj|svcacct|admin|None|or-v1)-[A-Za-z0-9_-]{20,}|[A-Za-z0-9]{32,})",
        rb"sk-(?:proj|svcacct|admin|None|or-v1)-[A-Za-z0-9_-]{20}",
        rb"sk-[A-Za-z0-9]{32}",
    ),
    _token(
        "aws-access-key",
        _b("(?:AKIA|ASIA|ABIA|ACCA)", _B64_BEFORE) + r"[A-Z0-9]{16}" + _END_B64,
        rb"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}",
    ),
    _token(
        "github-token",
        _b("gh[pousr]_") + r"[A-Za-z0-9]{36,255}|" + _b("github_pat_") + r"[A-Za-z0-9_]{22,255}",
        rb"gh[pousr]_[A-Za-z0-9]{36}",
        rb"github_pat_[A-Za-z0-9_]{22}",
    ),
    _token(
        "gitlab-token",
        _b("gl") + r"(?:pat|dt|rt|ptt|cbt|ft|imt|oas|soat|agent)-[A-Za-z0-9_-]{20,}",
        rb"gl(?:pat|dt|rt|ptt|cbt|ft|imt|oas|soat|agent)-[A-Za-z0-9_-]{20}",
    ),
    _token(
        "slack-token",
        _b("xox")
        + r"[abeoprs](?:\.xox[abeoprs])?-[A-Za-z0-9-]{10,}|"
        + _b("xapp-")
        + r"\d-[A-Za-z0-9-]{10,}",
        rb"xox[abeoprs](?:\.xox[abeoprs])?-[A-Za-z0-9-]{10}",
        rb"xapp-\d-[A-Za-z0-9-]{10}",
    ),
    _token(
        "slack-webhook",
        r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[A-Za-z0-9_/+-]{8,})",
        rb"hooks\.slack\.com",
    ),
    _token(
        "discord-webhook",
        r"discord(?:app)?\.com/api/webhooks/(?P<secret>\d+/[A-Za-z0-9_-]{20,})",
        rb"discord(?:app)?\.com/api/webhooks",
    ),
    _token(
        "stripe-key",
        _b("(?:sk|rk)_")
        + r"(?:live|test)_[A-Za-z0-9]{16,}|"
        + _b("whsec_")
        + r"[A-Za-z0-9+/=]{24,}",
        rb"k_(?:live|test)_[A-Za-z0-9]{16}",
        rb"whsec_[A-Za-z0-9+/=]{24}",
    ),
    _token(
        "google-api-key",
        _b("AIza", _B64_BEFORE) + r"[0-9A-Za-z_-]{35}" + _END_B64,
        rb"AIza[0-9A-Za-z_-]{35}",
    ),
    _token(
        "google-oauth",
        _b("GOCSPX-") + r"[A-Za-z0-9_-]{20,}|" + _b(r"ya29\.") + r"[0-9A-Za-z_-]{20,}",
        rb"GOCSPX-[A-Za-z0-9_-]{20}",
        rb"ya29\.[0-9A-Za-z_-]{20}",
    ),
    _token("npm-token", _b("npm_") + r"[A-Za-z0-9]{36,}", rb"npm_[A-Za-z0-9]{36}"),
    _token("pypi-token", _b("pypi-Ag") + r"[A-Za-z0-9_-]{50,}", rb"pypi-Ag[A-Za-z0-9_-]{50}"),
    _token("huggingface-token", _b("hf_") + r"[A-Za-z0-9]{30,}", rb"hf_[A-Za-z0-9]{30}"),
    _token(
        "sendgrid-key",
        _b(r"SG\.") + r"[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}",
        rb"SG\.[A-Za-z0-9_-]{16}",
    ),
    _token(
        "twilio-key",
        _b("SK", _B64_BEFORE) + r"[0-9a-fA-F]{32}" + _END_B64,
        rb"SK[0-9a-fA-F]{32}",
    ),
    _token(
        "digitalocean-token",
        _b("do[opr]_v1_") + r"[a-f0-9]{64}",
        rb"do[opr]_v1_[a-f0-9]{64}",
    ),
    _token(
        "doppler-token",
        _b(r"dp\.") + r"(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,}",
        rb"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40}",
    ),
    _token(
        "shopify-token",
        _b("shp") + r"(?:at|ca|pa|ss)_[a-fA-F0-9]{32}",
        rb"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}",
    ),
    _token(
        "vault-token",
        _b(r"hv[sb]\.") + r"[A-Za-z0-9_-]{24,}",
        rb"hv[sb]\.[A-Za-z0-9_-]{24}",
    ),
    _token(
        "age-secret-key",
        r"AGE-SECRET-KEY-1[0-9A-Z]{58}",
        rb"AGE-SECRET-KEY-1[0-9A-Z]{58}",
    ),
    _token(
        "api-token",
        "|".join(
            (
                _b("dckr_pat_") + r"[A-Za-z0-9_-]{20,}",  # Docker Hub
                _b("lin_") + r"(?:api|oauth)_[A-Za-z0-9]{32,}",  # Linear
                _b("PMAK-") + r"[a-f0-9]{24}-[a-f0-9]{34}",  # Postman
                _b("tskey-") + r"[a-z]+-[A-Za-z0-9-]{16,}",  # Tailscale
                _b("gl(?:sa|c_)") + r"_?[A-Za-z0-9+/=_]{32,}",  # Grafana
                _b("sntr") + r"[ysu]s?_[A-Za-z0-9+/=_-]{30,}",  # Sentry
                _b("gsk_") + r"[A-Za-z0-9]{40,}",  # Groq
                _b("pcsk_") + r"[A-Za-z0-9_]{40,}",  # Pinecone
                _b("lsv2_") + r"(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}",  # LangSmith
                _b("r8_") + r"[A-Za-z0-9]{37}",  # Replicate
                _b("xai-") + r"[A-Za-z0-9]{60,}",  # xAI
                _b("pplx-") + r"[A-Za-z0-9]{40,}",  # Perplexity
                _b("ops_eyJ") + r"[A-Za-z0-9+/=_-]{20,}",  # 1Password service accounts
                _b("ATATT3") + r"[A-Za-z0-9_=-]{30,}",  # Atlassian
                _b("sbp_") + r"[a-f0-9]{40}",  # Supabase
                _b("sq0") + r"(?:atp|csp)-[A-Za-z0-9_-]{22,}",  # Square
                _b("pscale_") + r"(?:tkn|pw|oauth)_[A-Za-z0-9_.-]{32,}",  # PlanetScale
                _b("dapi") + r"[a-f0-9]{32}(?:-\d)?",  # Databricks
                _b("figd_") + r"[A-Za-z0-9_-]{40,}",  # Figma
                r"FlyV1 fm\d_[A-Za-z0-9+/=_-]{20,}",  # Fly.io
            )
        ),
        rb"dckr_pat_[A-Za-z0-9_-]{20}",
        rb"lin_(?:api|oauth)_[A-Za-z0-9]{32}",
        rb"PMAK-[a-f0-9]{24}",
        rb"tskey-[a-z]+-[A-Za-z0-9-]{16}",
        rb"gl(?:sa|c_)_?[A-Za-z0-9+/=_]{32}",
        rb"sntr[ysu]s?_[A-Za-z0-9+/=_-]{30}",
        rb"gsk_[A-Za-z0-9]{40}",
        rb"pcsk_[A-Za-z0-9_]{40}",
        rb"lsv2_(?:pt|sk)_[a-f0-9]{32}",
        rb"r8_[A-Za-z0-9]{37}",
        rb"xai-[A-Za-z0-9]{60}",
        rb"pplx-[A-Za-z0-9]{40}",
        rb"ops_eyJ[A-Za-z0-9+/=_-]{20}",
        rb"ATATT3[A-Za-z0-9_=-]{30}",
        rb"sbp_[a-f0-9]{40}",
        rb"sq0(?:atp|csp)-[A-Za-z0-9_-]{22}",
        rb"pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_.-]{32}",
        rb"dapi[a-f0-9]{32}",
        rb"figd_[A-Za-z0-9_-]{40}",
        rb"FlyV1 fm\d_",
    ),
    _token(
        "telegram-bot-token",
        r"\d{8,10}:AA[A-Za-z0-9_-]{33}",
        rb"\d{8}:AA[A-Za-z0-9_-]{33}",
    ),
    _token(
        "jwt",
        _b("eyJ") + r"[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
        rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ",
    ),
)


# ---- contextual secrets: what surrounds them says they are secrets

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
    if last in _PASSWORD_WORDS:
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
        _rx(
            _NAME_ENDINGS.encode() + _RAW_QUOTE + rb"(?:[ \t\r]|\\t)*[=:]",
            caseless=True,
        ),
    ),
    finder=_assignment_hits,
)
"""`NAME=value`, `export NAME="value"`, `name: value`, `"name": "value"` where the name
announces a secret. The value is replaced, the name kept. The same anchor covers JSON
object keys, which the engine checks for the same names."""


def _classify_flag(match: re.Match[str], text: str) -> Hit | None:
    value = _span(match, text, "value")
    if value.startswith("-") or not_a_secret(value):
        return None
    kind = "password" if match["flag"].lower().startswith("pass") else "secret"
    return Hit(*match.span("value"), kind)


CLI_FLAG = _any_case(
    ("password", "secret"),
    r"--(?<![\w-]--)(?P<flag>password|passwd|pass|token|secret|api-key|apikey|auth-token"
    r"|access-token|client-secret)[ \t]+\\?[\"']?(?P<value>[^\s\"'`;|&)\\]+)",
    (
        _rx(
            rb"--(?:password|passwd|pass|token|secret|api-key|apikey|auth-token|access-token"
            rb"|client-secret)(?:[ \t]|\\t)",
            caseless=True,
        ),
    ),
    _classify_flag,
)
"""`--password hunter2`, `--token abc` (the `--flag=value` form is an assignment)."""


AWS_SECRET = _any_case(
    ("aws-secret-key", "aws-session-token"),
    r"(?P<name>secret_?access_?key|session_?token"
    r"|security_?token)\\?[\"']?[ \t]*(?:=|:|=>)[ \t]*\\?[\"']?"
    r"(?P<secret>[a-z0-9/+=]{16,})",
    (
        _rx(
            rb"(?:secret_?access_?key|session_?token|security_?token)"
            + _RAW_QUOTE
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

BEARER = _any_case(
    ("bearer-token",),
    r"bearer(?<![a-z0-9]bearer)[ \t]+(?P<secret>" + _TOKEN68 + ")",
    (_rx(rb"bearer(?:[ \t]|\\t)+[A-Za-z0-9._~+/-]{16}", caseless=True),),
)


_B64_RUN = r"(?:[A-Za-z0-9+/]{4}){2,}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
"""Padded base64 of at least 6 bytes: `user:pw` and longer."""


def _classify_basic(match: re.Match[str], text: str) -> Hit | None:
    try:
        decoded = base64.b64decode(_span(match, text, "secret"), validate=True)
    except (binascii.Error, ValueError):
        return None
    if b":" not in decoded:
        return None
    return Hit(*match.span("secret"), "basic-auth")


BASIC = _any_case(
    ("basic-auth",),
    r"basic(?<![a-z0-9]basic)[ \t]+(?P<secret>"
    + _B64_RUN.replace("A-Za-z", "a-z")
    + r")(?![a-z0-9+/=])",
    (
        _rx(
            rb"basic(?:[ \t]|\\t)+" + _B64_RUN.encode() + rb"(?:[^A-Za-z0-9+/=\n]|$)",
            caseless=True,
        ),
    ),
    _classify_basic,
)
"""Only tokens that really are base64 of `user:password`: "basic configuration" stays."""


def _classify_header(match: re.Match[str], text: str) -> Hit | None:
    value = _span(match, text, "secret")
    if not_a_secret(value) or value.lower() in ("bearer", "basic", "token"):
        return None
    return Hit(*match.span("secret"), "auth-header")


AUTH_HEADER = _any_case(
    ("auth-header",),
    r"(?:authorization|x-api-key|api-key|x-auth-token"
    r"|private-token|x-access-token)\\?[\"']?[ \t]*[:=][ \t]*\\?[\"']?"
    r"(?:(?:token|bot|bearer|basic|digest|apikey)[ \t]+)?(?P<secret>[a-z0-9._~+/=:-]{8,})",
    (
        _rx(
            rb"(?:authorization|api-key|auth-token|private-token|access-token)"
            + _RAW_QUOTE
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
    if not_a_secret(_span(match, text, "secret")):
        return None
    return Hit(*match.span("secret"), "password")


NETRC = Rule(
    ("password",),
    re.compile(r"password[ \t]+(?P<secret>[^\s\\]+)", re.ASCII),
    (_rx(rb"password(?:[ \t]|\\t)+"),),
    classify=_classify_netrc,
)
"""`~/.netrc`: `machine h login u password p`, on one line or on lines of their own."""


def _classify_cookie(match: re.Match[str], text: str) -> Hit | None:
    if not_a_secret(_span(match, text, "secret")):
        return None
    return Hit(*match.span("secret"), "cookie")


COOKIE = _any_case(
    ("cookie",),
    r"cookie\\?[\"']?[ \t]*:[ \t]*(?P<secret>[^\r\n\"'\\]{8,})",
    (_rx(rb"cookie" + _RAW_QUOTE + rb"(?:[ \t]|\\t)*:", caseless=True),),
    _classify_cookie,
)
"""`Cookie:` and `Set-Cookie:` headers: session cookies are credentials."""


def _classify_curl_user(match: re.Match[str], text: str) -> Hit | None:
    if not_a_secret(_span(match, text, "secret")):
        return None
    return Hit(*match.span("secret"), "password")


CURL_USER = Rule(
    ("password",),
    re.compile(
        r"-(?:u(?<![\w-]-u)|-user(?<![\w-]--user))[ \t]+\\?[\"']?"
        r"(?P<user>[^\s:\"'\\\x00-\x1f]+)"
        r":(?P<secret>[^\s\"'\\\x00-\x1f]+)",
        re.ASCII,
    ),
    (_rx(rb"(?:-u|--user)(?:[ \t]|\\t)+\S*:"),),
    classify=_classify_curl_user,
)
"""`curl -u user:password`: the user stays, the password goes."""


def _classify_url(match: re.Match[str], text: str) -> Hit | None:
    if not_a_secret(_span(match, text, "secret")):
        return None
    return Hit(*match.span("secret"), "url-password")


URL_PASSWORD = Rule(
    ("url-password",),
    re.compile(
        r"://(?P<user>[^\s/?#@:\"'\\\x00-\x1f]*)"
        r":(?P<secret>[^\s/?#\"'<>`\\\x00-\x1f]+)@",
    ),
    (_rx(rb"://(?:[^\s/?#@:\"\\]|\\u[0-9a-fA-F]{4})*:(?:[^\s/?#\"\\]|\\u[0-9a-fA-F]{4})*@"),),
    classify=_classify_url,
)
"""`scheme://user:password@host`: user and host stay readable."""


BUILTIN_RULES: tuple[Rule, ...] = (
    *_TOKENS,
    AWS_SECRET,
    BEARER,
    BASIC,
    AUTH_HEADER,
    URL_PASSWORD,
    CURL_USER,
    NETRC,
    COOKIE,
    CLI_FLAG,
    ASSIGNMENT,
)
"""In priority order: where matches overlap they are merged and the earliest rule names
the placeholder, so a provider key assigned to a variable reads `[REDACTED:openai-key]`."""

BUILTIN_KINDS: tuple[str, ...] = tuple(
    dict.fromkeys(kind for rule in BUILTIN_RULES for kind in rule.kinds)
)
