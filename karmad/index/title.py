"""A session's title as people read it.

A session whose first prompt was a slash command (`/clear`, `/review 12`) has that
prompt as its title, and Claude Code writes such a prompt as markup:
`<command-message>review</command-message> <command-name>/review</command-name>
<command-args>12</command-args>`. The title is the command as typed. Applied when the
index is read rather than when it is written, so titles already indexed read well
without a rebuild.
"""

from __future__ import annotations

import re
from typing import Final

_COMMAND: Final = re.compile(r"<command-name>\s*(.*?)\s*(?:</command-name>|<|…|$)", re.S)
_ARGS: Final = re.compile(r"<command-args>\s*(.*?)\s*(?:</command-args>|…|$)", re.S)
_MESSAGE: Final = re.compile(r"<command-message>.*?(?:</command-message>|$)", re.S)
_TAG: Final = re.compile(r"</?[a-z]+(?:-[a-z]+)+>?")
"""Claude Code's own markers are hyphenated lowercase tags (`<command-name>`,
`<local-command-stdout>`, `<system-reminder>`); a title cut short may end inside one."""


def readable(title: str) -> str:
    """`title` without Claude Code's internal tags: a command as typed (`/review 12`),
    other markup removed with its words kept."""
    if "<" not in title:
        return title
    command = _COMMAND.search(title)
    if command and command[1]:
        args = _ARGS.search(title)
        typed = f"{command[1]} {args[1]}" if args and args[1] else command[1]
        return " ".join(typed.split())
    text = _TAG.sub(" ", _MESSAGE.sub(" ", title))
    return " ".join(text.split())
