"""Generate what distribution packages ship besides the Python code.

    python packaging/generate.py [--out DIR]     man pages and shell completions
    python packaging/generate.py --units         rewrite systemd/ and launchd/ files

Everything comes from the argument parsers and renderers karmad and karmactl use
themselves, so the man pages, completions and unit files cannot drift from the programs.
The output under DIR mirrors /usr/share: man/man1, bash-completion/completions,
zsh/site-functions, fish/vendor_completions.d.

Needs the `packaging` extra (`pip install 'karmad[packaging]'`): shtab writes the
completions, argparse-manpage the man pages. Set SOURCE_DATE_EPOCH for reproducible
dates in the man pages.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import shtab
from argparse_manpage.manpage import Manpage

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from karmactl.cli import build_parser as karmactl_parser  # noqa: E402
from karmactl.service.units import LAUNCHD_LABEL, launchd_plist, systemd_unit  # noqa: E402
from karmad import __version__  # noqa: E402
from karmad.cli import build_parser as karmad_parser  # noqa: E402

PROGRAMS = {
    "karmad": (karmad_parser, "share Claude Code sessions through Syncthing (the daemon)"),
    "karmactl": (karmactl_parser, "control karmad"),
}

PACKAGED_KARMAD = "/usr/bin/karmad"
"""Where distribution packages put karmad; the shipped systemd unit runs it."""

HOMEBREW_KARMAD = "/usr/local/bin/karmad"


def _walk(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _walk(sub)


def annotate_paths(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Tell shtab which options take files or directories, from how they are declared."""
    for p in _walk(parser):
        for action in p._actions:
            if not action.option_strings or action.nargs == 0:
                continue
            is_dir = action.dest.endswith("_dir")
            is_path = action.type is Path or action.metavar == "PATH" or action.dest == "socket"
            if is_dir:
                action.complete = shtab.DIRECTORY  # type: ignore[attr-defined]
            elif is_path:
                action.complete = shtab.FILE  # type: ignore[attr-defined]
    return parser


def man_page(name: str) -> str:
    build, description = PROGRAMS[name]
    data = {
        "project_name": "karmad",
        "version": __version__,
        "manual_title": "karmad manual",
        "description": description,
        "include": str(HERE / "man" / f"{name}.include"),
    }
    return str(Manpage(build(), data))


def completions(name: str) -> dict[str, str]:
    build, _ = PROGRAMS[name]
    return {
        f"bash-completion/completions/{name}": shtab.complete(annotate_paths(build()), "bash"),
        f"zsh/site-functions/_{name}": shtab.complete(annotate_paths(build()), "zsh"),
        f"fish/vendor_completions.d/{name}.fish": shtab.complete(annotate_paths(build()), "fish"),
    }


def generate(out: Path) -> list[Path]:
    written = []
    for name in PROGRAMS:
        files = {f"man/man1/{name}.1": man_page(name), **completions(name)}
        for relative, text in files.items():
            path = out / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(path)
    return written


def shipped_units() -> dict[Path, bytes]:
    return {
        ROOT / "systemd" / "karmad.service": systemd_unit([PACKAGED_KARMAD]).encode(),
        ROOT / "launchd" / f"{LAUNCHD_LABEL}.plist": launchd_plist([HOMEBREW_KARMAD]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "dist" / "share", help="output directory"
    )
    parser.add_argument(
        "--units", action="store_true", help="rewrite systemd/ and launchd/ from the renderer"
    )
    args = parser.parse_args(argv)
    if args.units:
        for path, data in shipped_units().items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            print(path)
        return 0
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
