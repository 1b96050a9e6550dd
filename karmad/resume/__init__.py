"""Resume anywhere: an indexed session materialised as a Claude Code transcript for a
local checkout, so that `claude --resume <id>` continues it here (design.md §9).

`claudecode` knows where Claude Code looks for a transcript, `paths` rewrites the
paths a session names, `plan` decides what to write where (pure), `checkout` finds the
local checkout of a project, `writer` does the file work, `service` runs resume jobs
and records their provenance.
"""
