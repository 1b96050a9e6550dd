"""The session index: every Claude Code session, parsed, de-duplicated and priced.

`index.db` is derived data, rebuilt from transcripts whenever needed; see docs/index.md
for what is counted and how.
"""
