"""The archive: every own session kept by karmad, whatever Claude Code deletes later.

`mirror` keeps one file (a hard link that follows the live transcript, a copy where no
link is possible, earlier generations set aside); `archiver` decides which files, when,
and reports what the archive holds.
"""
