"""Redaction: secrets never leave the machine inside a shared transcript.

Use one `Redactor` per configuration::

    redactor = Redactor(disable=cfg.disable, patterns=..., literals=cfg.literals)
    result = redactor.redact_chunk(complete_lines)   # bytes in, Redaction out
    tally.add(result)                                # per-session counts

`redactor_from_config` builds one from the `[redaction]` config section. What is
redacted, and what is not, is documented in `docs/security.md`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from karmad.redact.custom import LITERAL_KIND, RuleError, UserPattern
from karmad.redact.engine import CHUNK_SIZE, LineReport, Redaction, Redactor, Tally
from karmad.redact.prefilter import PrefilterError
from karmad.redact.rules import BUILTIN_KINDS, RULES_VERSION, placeholder

if TYPE_CHECKING:
    from karmad.config import RedactionConfig

__all__ = [
    "BUILTIN_KINDS",
    "CHUNK_SIZE",
    "LITERAL_KIND",
    "RULES_VERSION",
    "LineReport",
    "PrefilterError",
    "Redaction",
    "Redactor",
    "RuleError",
    "Tally",
    "UserPattern",
    "placeholder",
    "redactor_from_config",
]


def redactor_from_config(config: RedactionConfig) -> Redactor:
    """The redactor for a loaded (hence already validated) `[redaction]` section."""
    return Redactor(
        disable=config.disable,
        patterns=[UserPattern(p.name, p.regex, tuple(p.anchors)) for p in config.patterns],
        literals=config.literals,
    )
