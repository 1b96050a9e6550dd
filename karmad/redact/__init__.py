"""Redaction: secrets never leave the machine inside a shared transcript.

Build one `Redactor` per configuration and keep it (compiling the rules takes a few
milliseconds; it is thread-safe, and the prefilter scan releases the GIL, so it can run
in `anyio.to_thread.run_sync`)::

    redactor = redactor_from_config(config.redaction)  # validated when the config loaded
    tally = Tally.from_dict(manifest_counts)            # or Tally() for a new session
    result = redactor.redact_chunk(new_complete_lines)  # Redaction(data, bytes_in, reports)
    outbox.write(result.data)                           # the input object itself if clean
    tally.add(result)                                   # per-session counts
    manifest["redaction"] = {"rules_version": redactor.rules_version, **tally.as_dict()}

For previews, `redact_stream(src, sink, on_report=...)` or `redact_lines(lines)` give
each redacted line's number, kinds and JSON paths, never the secret. What is redacted,
and what is not, is documented in `docs/security.md`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from karmad.redact.custom import LITERAL_KIND, RuleError, UserPattern
from karmad.redact.engine import CHUNK_SIZE, Redactor
from karmad.redact.prefilter import PrefilterError
from karmad.redact.report import LineReport, Redaction, Tally
from karmad.redact.rule import placeholder
from karmad.redact.rules import BUILTIN_KINDS, RULES_VERSION

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
