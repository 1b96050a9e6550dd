"""Passwords given on command lines.

Long options say what they take (`--password x`, `--db-password x`; the `--name=value`
form is an assignment, see `context.ASSIGNMENT`). Short options do not: `-p` is a
password for mysql (glued: `-pSECRET`; alone it prompts) and for sshpass, but a port
for ssh and docker run, "parents" for mkdir and "patch" for git log. So short options
are read per tool: a table says which tool takes its password in which option and how,
and a command is read word by word (quotes understood) from the tool's name to the end
of the command (`;`, `|`, `&`, a newline). Anything not in the table is left alone:
destroying `mkdir -p build` to catch an unknown tool's password would make shared
transcripts worse for everyone.

`curl -u user:password` and single-dash long options (`-storepass`, `-passin pass:x`)
are rules of their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Literal

from karmad.redact.context import not_a_secret
from karmad.redact.rule import Anchor, Hit, Rule, any_case_rule, raw_anchor, span_text

Form = Literal["glued", "spaced", "both"]
"""How an option takes its value: `-pVALUE` only (alone, the tool prompts), the next
word only, or either."""


@dataclass(frozen=True, slots=True)
class Option:
    flag: str
    form: Form = "both"
    after: str = ""
    """The secret follows this separator inside the value (`-U user%password`); empty:
    the whole value."""


@dataclass(frozen=True, slots=True)
class Tool:
    names: tuple[str, ...]
    options: tuple[Option, ...]
    subcommand: str = ""
    """A word that must come before the option (`docker login -p`, not `docker run -p`)."""


_MYSQL: Final = (
    "mysql",
    "mysqldump",
    "mysqladmin",
    "mysqlimport",
    "mysqlcheck",
    "mysqlshow",
    "mysqlpump",
    "mysqlslap",
    "mysqlbinlog",
    "mysqlsh",
    "mariadb",
    "mariadb-dump",
    "mariadb-admin",
    "mariadb-import",
    "mariadb-check",
    "mariadb-show",
    "mariadb-slap",
    "mariadb-binlog",
)
_MONGO: Final = (
    "mongo",
    "mongosh",
    "mongodump",
    "mongorestore",
    "mongoexport",
    "mongoimport",
    "mongostat",
    "mongotop",
    "mongofiles",
)
_LDAP: Final = (
    "ldapsearch",
    "ldapadd",
    "ldapmodify",
    "ldapdelete",
    "ldapmodrdn",
    "ldapcompare",
    "ldapwhoami",
    "ldapexop",
)
_REGISTRY_LOGIN: Final = ("docker", "podman", "nerdctl", "buildah", "skopeo", "helm", "oras")

TOOLS: Final = (
    # `-p` alone prompts; `-p secret` is a prompt and a database named "secret".
    Tool(_MYSQL, (Option("-p", "glued"),)),
    Tool(("sshpass",), (Option("-p"),)),
    Tool(("redis-cli",), (Option("-a", "spaced"),)),
    Tool(_MONGO, (Option("-p", "spaced"),)),
    Tool(_REGISTRY_LOGIN, (Option("-p"),), subcommand="login"),
    Tool(("az",), (Option("-p"),), subcommand="login"),
    Tool(("zip", "unzip"), (Option("-P", "spaced"),)),
    Tool(("7z", "7za", "7zr", "7zz", "unrar"), (Option("-p", "glued"),)),
    Tool(("rar",), (Option("-hp", "glued"), Option("-p", "glued"))),
    Tool(_LDAP, (Option("-w"),)),
    Tool(("ldappasswd",), (Option("-w"), Option("-a"), Option("-s"))),
    Tool(("sqlcmd", "bcp", "osql"), (Option("-P"),)),
    Tool(("ipmitool",), (Option("-P"),)),
    Tool(("rdesktop",), (Option("-p"),)),
    Tool(("xfreerdp", "wlfreerdp", "sdl-freerdp"), (Option("/p:", "glued"),)),
    Tool(("ssh-keygen",), (Option("-N"), Option("-P"))),
    Tool(
        ("smbclient", "rpcclient", "smbcacls", "smbget"),
        (Option("-U", after="%"), Option("--user=", "glued", after="%")),
    ),
    Tool(("smbmap",), (Option("-p"),)),
    Tool(("lftp",), (Option("-u", after=","),)),
    Tool(("curl",), (Option("-u", "glued", after=":"),)),
    Tool(("openssl",), (Option("-k", "spaced"), Option("-K", "spaced"))),
)
"""Tools whose short options take a password, and how."""

_BY_NAME: Final = {name: tool for tool in TOOLS for name in tool.names}
_NAMES: Final = sorted(_BY_NAME, key=len, reverse=True)
_COMMAND = re.compile(
    r"(?<![\w.-])(?:" + "|".join(re.escape(n) for n in _NAMES) + r")(?= )", re.ASCII
)
"""A tool's name as a command: a space follows (a name is never read out of `7z.exe`,
`mysql.connector` or the middle of base64 data)."""
_WORD = re.compile(r"""(?:[^\s'"`;|&()<>\\]|'[^'\n]*'|"(?:[^"\\\n]|\\.)*")+""")
"""A shell word: bare characters and quoted strings, glued together. A backslash ends
it: in text that is itself JSON (`{\"cmd\": \"mysql -pX\"}`) it starts an escape that
belongs to the text around the command, which must survive."""
_BLANK = re.compile(r"(?:[ \t]|\\\n)*")
MAX_WORDS: Final = 40
"""Words read after a tool's name: a command is short; prose that mentions a tool name
is not read to its end (and a run of names stays linear)."""


def _value_span(text: str, start: int, end: int) -> tuple[int, int]:
    """The value inside one pair of quotes around it, else as it stands."""
    if end - start >= 2 and text[start] in "'\"" and text[end - 1] == text[start]:
        return start + 1, end - 1
    return start, end


def _secret(text: str, start: int, end: int, after: str) -> Hit | None:
    start, end = _value_span(text, start, end)
    if after:
        cut = text.find(after, start, end)
        if cut < 0:
            return None
        start = cut + 1
    value = text[start:end]
    if value.startswith("-") or not_a_secret(value):
        return None
    return Hit(start, end, "password")


def _option_hits(text: str, tool: Tool, start: int) -> Iterator[Hit]:
    pos = start
    seen_subcommand = not tool.subcommand
    pending: Option | None = None
    for _ in range(MAX_WORDS):
        blank = _BLANK.match(text, pos)
        assert blank is not None  # it matches the empty string
        word = _WORD.match(text, blank.end())
        if word is None:
            return  # the end of the command: `;`, `|`, `&`, a newline, the end
        w_start, w_end = word.span()
        pos = w_end
        value = text[w_start:w_end]
        if pending is not None:
            hit = _secret(text, w_start, w_end, pending.after)
            pending = None
            if hit is not None:
                yield hit
                continue
        if not seen_subcommand:
            seen_subcommand = value == tool.subcommand
            continue
        for option in tool.options:
            if not value.startswith(option.flag):
                continue
            if len(value) == len(option.flag):
                if option.form != "glued":
                    pending = option
            elif option.form != "spaced":
                hit = _secret(text, w_start + len(option.flag), w_end, option.after)
                if hit is not None:
                    yield hit
            break


def _command_hits(text: str) -> Iterator[Hit]:
    for match in _COMMAND.finditer(text):
        yield from _option_hits(text, _BY_NAME[match.group()], match.end())


def _tool_anchor(tool: Tool) -> Anchor:
    names = "|".join(re.escape(n) for n in tool.names).encode()
    flags = "|".join(re.escape(o.flag) for o in tool.options).encode()
    between = rb"[^\n]*" + re.escape(tool.subcommand).encode() if tool.subcommand else b""
    # No `\b` before the name: in the raw bytes an escape may precede it (`\u001fmysql`).
    # The space after it keeps short names (`7z`, `az`) from starting a match inside
    # base64 data; a literal space rather than any blank (which JSON may write `\t`)
    # keeps the scan as fast as without these anchors (bench/redact_throughput.py).
    # Whatever follows the option (its glued value or a blank, maybe escaped) is one
    # more byte; a bare option at the end of a string is followed by its closing quote.
    return raw_anchor(rb"(?:" + names + rb") " + between + rb"[^\n]*(?:" + flags + rb")[^\n]")


TOOL_OPTIONS = Rule(
    ("password",),
    _COMMAND,
    tuple(_tool_anchor(tool) for tool in TOOLS),
    finder=_command_hits,
)
"""`mysql -u root -pSECRET`, `sshpass -p SECRET ssh host`, `docker login -p SECRET`,
`smbclient -U user%SECRET`: the short options of the tools in `TOOLS`."""


def _classify_flag(match: re.Match[str], text: str) -> Hit | None:
    value = span_text(match, text, "value")
    if value.startswith("-") or not_a_secret(value):
        return None
    flag = match["flag"].lower()
    kind = "password" if flag.startswith("pass") or "-pass" in flag else "secret"
    return Hit(*match.span("value"), kind)


_LONG_OPTION_ENDINGS = r"(?:[a-z0-9]+-)*?(?:password|passwd|passphrase)"

CLI_FLAG = any_case_rule(
    ("password", "secret"),
    r"--(?<![\w-]--)(?!no-|ask-|prompt-|read-)(?P<flag>"
    + _LONG_OPTION_ENDINGS
    + r"|pass|token|secret|api-key|apikey|auth-token|access-token|client-secret)[ \t]+\\?[\"']?"
    r"(?P<value>[^\s\"'`;|&)\\]+)",
    (
        raw_anchor(
            rb"--(?:[A-Za-z0-9]+-)*(?:password|passwd|passphrase|pass|token|secret|api-key"
            rb"|apikey)(?:[ \t]|\\t)",
            caseless=True,
        ),
    ),
    _classify_flag,
)
"""`--password hunter2`, `--db-password x`, `--token abc` (the `--flag=value` form is an
assignment). `--no-password` and `--ask-pass` take no value."""


_OPENSSL_SOURCE = re.compile(r"(?:env|file|fd):|stdin$", re.ASCII)


def _classify_dash_flag(match: re.Match[str], text: str) -> Hit | None:
    start, end = match.span("value")
    value = text[start:end]
    if value.startswith("pass:"):  # openssl: `-passin pass:SECRET`
        start += len("pass:")
    elif _OPENSSL_SOURCE.match(value):  # openssl: where to read it, not the password
        return None
    if start == end or value.startswith("-") or not_a_secret(text[start:end]):
        return None
    return Hit(start, end, "password")


DASH_FLAG = any_case_rule(
    ("password",),
    r"(?<![\w-])-(?P<flag>password|passwd|passphrase|pass|passin|passout|storepass|keypass"
    r"|srcstorepass|deststorepass|srckeypass|destkeypass)[ \t]+\\?[\"']?"
    r"(?P<value>[^\s\"'`;|&)\\]+)",
    (
        raw_anchor(
            rb"(?:^|[^A-Za-z0-9_-])-(?:password|passwd|passphrase|pass|passin|passout"
            rb"|storepass|keypass|srcstorepass|deststorepass|srckeypass|destkeypass)"
            rb"(?:[ \t]|\\t)",
            caseless=True,
        ),
    ),
    _classify_dash_flag,
)
"""Single-dash long options: `keytool -storepass x`, `influx -password x`,
`openssl pkcs12 -passin pass:x` (`env:VAR` and `file:path` are not passwords)."""


def _classify_curl_user(match: re.Match[str], text: str) -> Hit | None:
    if not_a_secret(span_text(match, text, "secret")):
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
    (raw_anchor(rb"(?:-u|--user)(?:[ \t]|\\t)+\S*:"),),
    classify=_classify_curl_user,
)
"""`curl -u user:password`: the user stays, the password goes."""
