"""User-defined rules: regex patterns and literal strings from the config.

They go through the same engine as the built-in rules, so they need the same thing the
built-in rules have: an anchor, a literal that every match contains, for the prefilter
to find candidate lines without decoding them. For a literal the anchor is the literal
itself; for a regex it is its literal prefix, or the `anchors` the user gives.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from karmad.redact.rule import KIND_RE, Anchor, Hit, Rule, placeholder
from karmad.redact.rules import BUILTIN_KINDS

LITERAL_KIND = "literal"
MIN_ANCHOR = 3
"""Shorter anchors would send most lines down the slow path."""


class RuleError(ValueError):
    """A user rule that cannot be used as given; the message says why."""


@dataclass(frozen=True, slots=True)
class UserPattern:
    name: str
    regex: str
    anchors: tuple[str, ...] = ()


def _raw_safe(ch: str) -> bool:
    """Characters a JSON encoder writes as themselves (given no gratuitous escapes)."""
    return ch not in '"\\' and ord(ch) >= 0x20


def raw_safe_run(text: str) -> str:
    """The longest run of `text` that appears verbatim in any canonical JSON encoding."""
    best = ""
    current: list[str] = []
    for ch in [*text, "\x00"]:
        if _raw_safe(ch):
            current.append(ch)
            continue
        if len(current) > len(best):
            best = "".join(current)
        current = []
    return best


_META = frozenset(".^$*+?{}[]|()")
_QUANTIFIERS = frozenset("?*{")
_ESCAPED_LITERALS = frozenset(".^$*+?{}[]|()\\/-_#&~@%!,:;<=>'\" ")


def _top_level_alternation(regex: str) -> bool:
    depth = 0
    in_class = False
    i = 0
    while i < len(regex):
        ch = regex[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            # `[]...]` and `[^]...]` keep a leading `]` inside the class
            if regex[i + 1 : i + 2] == "^":
                i += 1
            if regex[i + 1 : i + 2] == "]":
                i += 1
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            return True
        i += 1
    return False


def literal_prefix(regex: str) -> str:
    """The literal text every match of `regex` starts with ("" when there is none).

    Deliberately conservative: it stops at the first metacharacter, drops a character a
    quantifier may remove, gives up on a top-level `|`, and honours only a leading
    `(?i)` flag (the prefilter matches anchors case-insensitively anyway).
    """
    if regex.startswith("(?i)"):
        regex = regex[4:]
    if _top_level_alternation(regex):
        return ""
    out: list[str] = []
    i = 0
    while i < len(regex):
        ch = regex[i]
        if ch in _META:
            break
        if ch == "\\":
            nxt = regex[i + 1 : i + 2]
            if not nxt or nxt not in _ESCAPED_LITERALS:
                break
            lit, i = nxt, i + 2
        else:
            lit, i = ch, i + 1
        if i < len(regex) and regex[i] in _QUANTIFIERS:
            break
        out.append(lit)
    return "".join(out)


def _anchor(text: str) -> Anchor:
    return Anchor(re.escape(text).encode(), caseless=True)


def _literal_hits_rule(literals: Sequence[str]) -> Rule:
    ordered = sorted(set(literals), key=lambda lit: (-len(lit), lit))
    pattern = re.compile("|".join(re.escape(lit) for lit in ordered))
    anchors = tuple(_anchor(raw_safe_run(lit)) for lit in ordered)
    return Rule((LITERAL_KIND,), pattern, anchors)


def _check_not_in_placeholders(what: str, found: re.Pattern[str], kinds: Iterable[str]) -> None:
    for kind in kinds:
        if found.search(placeholder(kind)):
            raise RuleError(
                f"{what} matches inside the placeholder {placeholder(kind)!r}: "
                "redacting twice would not give the same result"
            )


def _pattern_rule(pattern: UserPattern, kinds: Sequence[str]) -> Rule:
    what = f"pattern {pattern.name!r}"
    try:
        compiled = re.compile(pattern.regex)
    except re.error as exc:
        raise RuleError(f"{what}: invalid regex: {exc}") from None
    if compiled.search("") is not None:
        raise RuleError(f"{what}: the regex matches the empty string")
    _check_not_in_placeholders(what, compiled, kinds)
    if pattern.anchors:
        for anchor in pattern.anchors:
            if len(anchor) < MIN_ANCHOR or raw_safe_run(anchor) != anchor:
                raise RuleError(
                    f"{what}: anchor {anchor!r} must be at least {MIN_ANCHOR} characters, "
                    "without quotes, backslashes or control characters"
                )
        anchors = tuple(_anchor(a) for a in pattern.anchors)
    else:
        prefix = raw_safe_run(literal_prefix(pattern.regex))
        if len(prefix) < MIN_ANCHOR:
            raise RuleError(
                f"{what}: cannot tell which lines to look at: start the regex with at least "
                f"{MIN_ANCHOR} literal characters, or list in `anchors` literal strings "
                "that every match contains"
            )
        anchors = (_anchor(prefix),)
    has_secret = "secret" in compiled.groupindex
    kind = pattern.name

    def classify(match: re.Match[str], _text: str) -> Hit | None:
        start, end = match.span("secret") if has_secret else match.span()
        return Hit(start, end, kind)

    return Rule((kind,), compiled, anchors, classify=classify)


def user_rules(patterns: Sequence[UserPattern], literals: Sequence[str]) -> tuple[Rule, ...]:
    """Compile and check the user's rules; `RuleError` says what is wrong with which."""
    names = [p.name for p in patterns]
    for name in names:
        if KIND_RE.fullmatch(name) is None:
            raise RuleError(
                f"pattern name {name!r} must be 1-40 lowercase letters, digits or dashes "
                "(it becomes the placeholder [REDACTED:<name>])"
            )
        if name in BUILTIN_KINDS or name == LITERAL_KIND:
            raise RuleError(f"pattern name {name!r} is taken by a built-in kind")
        if names.count(name) > 1:
            raise RuleError(f"pattern name {name!r} is used twice")
    kinds = [*BUILTIN_KINDS, LITERAL_KIND, *names]
    rules = [_pattern_rule(p, kinds) for p in patterns]
    for literal in literals:
        if len(literal.strip()) < MIN_ANCHOR:
            raise RuleError(f"literal {literal!r} is shorter than {MIN_ANCHOR} characters")
        if len(raw_safe_run(literal)) < MIN_ANCHOR:
            raise RuleError(
                f"literal {literal!r} needs a run of {MIN_ANCHOR} characters without quotes, "
                "backslashes or control characters"
            )
        _check_not_in_placeholders(f"literal {literal!r}", re.compile(re.escape(literal)), kinds)
    if literals:
        rules.append(_literal_hits_rule(literals))
    return tuple(rules)


def check_disable(kinds: Iterable[str]) -> None:
    unknown = sorted(set(kinds) - set(BUILTIN_KINDS))
    if unknown:
        raise RuleError(
            f"cannot disable unknown kind(s) {', '.join(unknown)}; "
            f"built-in kinds are: {', '.join(BUILTIN_KINDS)}"
        )
