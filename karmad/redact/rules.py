"""The built-in redaction rules, versioned.

Bump `RULES_VERSION` whenever a rule is added, removed or changes what it matches:
manifests record it so a receiver knows which rules a session went through.
"""

from __future__ import annotations

from karmad.redact.commands import CLI_FLAG, CURL_USER, DASH_FLAG, TOOL_OPTIONS
from karmad.redact.context import (
    ASSIGNMENT,
    AUTH_HEADER,
    AWS_SECRET,
    BASIC,
    BEARER,
    COOKIE,
    NETRC,
    URL_PASSWORD,
)
from karmad.redact.rule import Rule
from karmad.redact.tokens import TOKEN_RULES

RULES_VERSION = 2

BUILTIN_RULES: tuple[Rule, ...] = (
    *TOKEN_RULES,
    AWS_SECRET,
    BEARER,
    BASIC,
    AUTH_HEADER,
    URL_PASSWORD,
    CURL_USER,
    NETRC,
    COOKIE,
    CLI_FLAG,
    DASH_FLAG,
    TOOL_OPTIONS,
    ASSIGNMENT,
)
"""In priority order: where matches overlap they are merged and the earliest rule names
the placeholder, so a provider key assigned to a variable reads `[REDACTED:openai-key]`."""

BUILTIN_KINDS: tuple[str, ...] = tuple(
    dict.fromkeys(kind for rule in BUILTIN_RULES for kind in rule.kinds)
)
