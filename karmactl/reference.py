"""Renders docs/cli.md from karmactl's own argument parsers, so the reference cannot drift.

    python -m karmactl.reference > docs/cli.md

Built from the parsers' actions (names, metavars, choices, defaults, help), not from
argparse's formatted help, whose layout changes between Python versions and terminals.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

from karmactl import cli

INTRO = """\
# karmactl command reference

This file is generated from karmactl's argument parsers by `python -m karmactl.reference`;
edit the parsers, not this file. `karmactl COMMAND --help` says the same on a terminal.

Every command also takes the common options below, before or after its name.
Exit status: 0 success, 1 the daemon answered with an error (or the command refused),
2 bad usage, 3 the daemon could not be reached. Under `--json`, an error is one JSON
object on stdout: `{"error": {"code", "reason", "message", "detail"?, "field"?}, "exit"}`.
Tables fit the terminal (`$COLUMNS`, else its width; whole lines when output is not a
terminal); `--wide` shows every column. Colour is used on a terminal unless `$NO_COLOR`
is set.
"""

COMMON = {"-h", "--help", "--json", "--socket", "--timeout"}
"""Options every command takes; described once, in the introduction's table."""


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield (*path, name), sub, helps.get(name, "")
                yield from _walk(sub, (*path, name))


def _subcommands(parser: argparse.ArgumentParser) -> bool:
    return any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)


def _names(action: argparse.Action) -> str:
    if not action.option_strings:
        metavar = action.metavar or action.dest
        return f"`{metavar}`" + (" …" if action.nargs in ("+", "*") else "")
    if action.nargs == 0:
        return ", ".join(f"`{o}`" for o in action.option_strings)
    metavar = action.metavar or action.dest.upper()
    if action.choices is not None and action.metavar is None:
        metavar = "{" + ",".join(map(str, action.choices)) + "}"
    return ", ".join(f"`{o} {metavar}`" for o in action.option_strings)


def _meaning(action: argparse.Action) -> str:
    text = (action.help or "").replace("|", "\\|")
    default = action.default
    shown = default not in (None, False, argparse.SUPPRESS, []) and action.nargs != 0
    if shown and "default" not in text:
        text = f"{text} (default: {default})" if text else f"default: {default}"
    if action.required and action.option_strings:
        text = f"required; {text}" if text else "required"
    return text


def _table(actions: list[argparse.Action]) -> list[str]:
    rows = [
        a
        for a in actions
        if not isinstance(a, argparse._SubParsersAction)
        and not (set(a.option_strings) & COMMON)
        and a.help != argparse.SUPPRESS
    ]
    if not rows:
        return []
    return [
        "| argument | meaning |",
        "|---|---|",
        *(f"| {_names(a)} | {_meaning(a)} |" for a in rows),
        "",
    ]


def render() -> str:
    parser = cli.build_parser()
    out = [INTRO, "## Common options", ""]
    common = [a for a in cli.common_options()._actions if a.option_strings]
    out += [
        "| option | meaning |",
        "|---|---|",
        *(f"| {_names(a)} | {_meaning(a)} |" for a in common),
        "",
    ]
    out += ["## Commands", ""]
    for path, sub, summary in _walk(parser, ("karmactl",)):
        if _subcommands(sub):
            continue
        out += [f"### `{' '.join(path)}`", ""]
        text = sub.description or summary
        if text:
            out += [text[0].upper() + text[1:] + ("" if text.endswith(".") else "."), ""]
        out += _table(sub._actions)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
