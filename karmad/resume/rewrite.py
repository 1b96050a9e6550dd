"""Rewriting the paths a session names, from the machine it ran on to this one.

A transcript names its checkout everywhere: `cwd` fields, tool inputs and results, the
environment block Claude Code replays, the memory directory in the system prompt it
replays (`<config>/projects/<encoded cwd>/memory/`), large outputs saved under
`<config>/projects/<encoded cwd>/<session>/tool-results/`, temporary directories named
after the encoded checkout. Each of those must name this machine's places, or the model
is told about directories that do not exist here (and the sender's paths leak).

Rules, longest first, applied in one pass (a replaced text is never replaced again):

1. the sender's session directory under its project directory -> the local one;
2. the sender's project directory -> the local one;
3. each checkout root the session ran in (worktrees first) -> the local checkout root;
4. the sender's Claude Code config directory, then home -> the local ones;
5. the sender's project directory name, the encoded checkout roots and the encoded home
   as tokens (`-Users-alice-src-app`) -> their local encodings.

A path is replaced only on path boundaries: not preceded by a character that would make
it part of a longer name, and not followed by one (`/home/al` never matches inside
`/home/alice`, nor `/src/app` inside `/src/app-old`). Encoded tokens may be followed by
`-` (an encoded subdirectory continues the name). The work is done on raw bytes, so a
line whose paths do not change keeps every byte; in JSON the needles are matched in
their escaped form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

from karmad.resume.claudecode import encoded

Kind = Literal["path", "token"]

_ALNUM: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_PATH_BEFORE: Final = frozenset(_ALNUM + b"._~-")
"""Bytes that, right before a path, make it the tail of a longer name."""
_TOKEN_BEFORE: Final = frozenset(_ALNUM + b"-")
_PATH_AFTER: Final = rb"(?![A-Za-z0-9_~\x80-\xff-]|\.[A-Za-z0-9_])"
"""After a path: not a character that continues its last name (a dot only ends it when
what follows is not a name: `/src/app.` at the end of a sentence, not `/src/app.py`)."""
_TOKEN_AFTER: Final = rb"(?![A-Za-z0-9])"
MIN_NEEDLE: Final = 4
"""Shorter paths (`/`, `/a`) would match far too much to be rewritten safely."""


@dataclass(frozen=True, slots=True)
class Rule:
    kind: Kind
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Places:
    """Where one machine keeps what a session names."""

    roots: tuple[str, ...]
    """Checkout roots the session ran in, the repository last (worktrees before it)."""
    home: str | None
    config: str | None
    """Claude Code's config directory (`~/.claude`, or `$CLAUDE_CONFIG_DIR`)."""
    project_dir: str
    """The name of the session's directory under `<config>/projects`."""
    session_id: str


def rules(sender: Places, local: Places) -> list[Rule]:
    """The replacements that move a session from `sender`'s places to `local`'s.

    `local.roots` has one element: the local checkout every sender root maps to.
    """
    root = local.roots[0]
    out: list[Rule] = []
    if sender.config and local.config:
        old_dir = f"{sender.config}/projects/{sender.project_dir}"
        new_dir = f"{local.config}/projects/{local.project_dir}"
        out.append(Rule("path", f"{old_dir}/{sender.session_id}", f"{new_dir}/{local.session_id}"))
        out.append(Rule("path", old_dir, new_dir))
    for old_root in sender.roots:
        out.append(Rule("path", old_root, root))
    if sender.config and local.config:
        out.append(Rule("path", sender.config, local.config))
    if sender.home and local.home:
        out.append(Rule("path", sender.home, local.home))
    out.append(Rule("token", sender.project_dir, local.project_dir))
    for old_root in sender.roots:
        out.append(Rule("token", encoded(old_root), encoded(root)))
    if sender.home and local.home:
        out.append(Rule("token", encoded(sender.home), encoded(local.home)))
    seen: set[tuple[Kind, str]] = set()
    kept: list[Rule] = []
    for rule in out:
        key = (rule.kind, rule.old)
        if rule.old == rule.new or key in seen or len(rule.old) < MIN_NEEDLE:
            continue
        seen.add(key)
        kept.append(rule)
    return kept


def _escaped(text: str) -> bytes:
    """`text` as it appears inside a JSON string written without ASCII escapes."""
    return json.dumps(text, ensure_ascii=False)[1:-1].encode()


def _trie(needles: dict[bytes, bytes]) -> bytes:
    """One regex for many literals: a trie of their bytes, so each position is tried
    against one shared prefix rather than every literal in turn (and a prefix common to
    all of them lets the regex engine skip to its occurrences). `needles` maps each
    literal to the lookahead that must follow it; a longer literal is tried before a
    shorter one it extends."""
    root: dict[int | None, Any] = {}
    for word, after in needles.items():
        node = root
        for byte in word:
            node = node.setdefault(byte, {})
        node[None] = after

    def emit(node: dict[int | None, Any]) -> bytes:
        branches = [
            re.escape(bytes([k])) + emit(node[k]) for k in sorted(k for k in node if k is not None)
        ]
        if None in node:
            branches.append(node[None])
        if len(branches) == 1 and None not in node:
            return branches[0]
        return b"(?:" + b"|".join(branches) + b")"

    return emit(root)


class Rewriter:
    """Applies rules to bytes; `json=True` for transcript lines, False for plain text."""

    def __init__(self, rules: Iterable[Rule], *, json: bool = True) -> None:
        form: Callable[[str], bytes] = _escaped if json else str.encode
        self._rules: dict[bytes, tuple[bytes, frozenset[int]]] = {}
        needles: dict[bytes, bytes] = {}
        for rule in rules:
            old = form(rule.old)
            path = rule.kind == "path"
            needles[old] = _PATH_AFTER if path else _TOKEN_AFTER
            self._rules[old] = (form(rule.new), _PATH_BEFORE if path else _TOKEN_BEFORE)
        self._pattern = re.compile(_trie(needles)) if needles else None
        self._data = b""

    @property
    def empty(self) -> bool:
        return self._pattern is None

    def __call__(self, data: bytes) -> bytes:
        if self._pattern is None:
            return data
        self._data = data
        try:
            return self._pattern.sub(self._replace, data)
        finally:
            self._data = b""

    def _replace(self, match: re.Match[bytes]) -> bytes:
        found = match.group(0)
        new, forbidden = self._rules[found]
        start = match.start()
        before = self._data[start - 1] if start else None
        if before is not None and (before in forbidden or before >= 0x80):
            return found  # the tail of a longer name: leave it alone
        return new
