"""What a distribution packager gets: man pages, completions, a wheel and an sdist."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from karmactl.cli import build_parser
from tests.support.daemon import REPO

GENERATE = REPO / "packaging" / "generate.py"


@pytest.fixture(scope="module")
def share(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("share")
    subprocess.run(
        [sys.executable, str(GENERATE), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, "SOURCE_DATE_EPOCH": "86400"},
    )
    return out


def subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> Iterator[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix}{name}"
                yield from subcommands(sub, f"{prefix}{name} ")


def test_man_pages_document_every_command(share: Path) -> None:
    karmactl = (share / "man" / "man1" / "karmactl.1").read_text()
    karmad = (share / "man" / "man1" / "karmad.1").read_text()
    assert karmactl.startswith('.TH KARMACTL "1" "1970\\-01\\-02"')
    for command in subcommands(build_parser()):
        assert f"karmactl {command}" in karmactl.replace("\\-", "-"), command
    for section in ("ENVIRONMENT", "EXIT STATUS", "SEE ALSO"):
        assert f".SH {section}" in karmactl
    assert "\\-\\-log\\-file" in karmad
    assert ".SH SIGNALS" in karmad


def test_man_pages_are_clean_roff(share: Path) -> None:
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed here")
    for page in ("karmad.1", "karmactl.1"):
        done = subprocess.run(
            ["groff", "-man", "-Tutf8", "-ww", "-z", str(share / "man" / "man1" / page)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0
        assert done.stderr == "", done.stderr


def bash_complete(share: Path, words: list[str], program: str = "karmactl") -> list[str]:
    script = share / "bash-completion" / "completions" / program
    words_text = " ".join(f'"{w}"' for w in words)
    line = " ".join(words)
    code = (
        f"source '{script}'; COMP_WORDS=({words_text}); COMP_CWORD={len(words) - 1}; "
        f"COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; _shtab_{program}; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.split()


def test_bash_completion(share: Path) -> None:
    assert bash_complete(share, ["karmactl", "serv"]) == ["service"]
    assert set(bash_complete(share, ["karmactl", "service", ""])) == {
        "install",
        "uninstall",
        "status",
        "restart",
        "logs",
    }
    assert "--manager" in bash_complete(share, ["karmactl", "doctor", "--"])
    assert bash_complete(share, ["karmad", "--state-"], "karmad") == ["--state-dir"]


def test_zsh_completion(share: Path, tmp_path: Path) -> None:
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed here (./dev test installs it where it can)")
    functions = share / "zsh" / "site-functions"
    for name in ("_karmactl", "_karmad"):
        subprocess.run(["zsh", "-n", str(functions / name)], check=True, timeout=30)
    done = subprocess.run(
        [
            "zsh",
            "-f",
            "-c",
            f"fpath=({functions} $fpath); autoload -Uz compinit; compinit -u -D; "
            "print ${_comps[karmactl]} ${_comps[karmad]}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert done.stdout.split() == ["_karmactl", "_karmad"]


def fish_complete(share: Path, line: str) -> list[str]:
    script = share / "fish" / "vendor_completions.d" / "karmactl.fish"
    done = subprocess.run(
        ["fish", "--no-config", "-c", f"source '{script}'; complete -C '{line}'"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [row.split("\t")[0] for row in done.stdout.splitlines()]


def test_fish_completion(share: Path) -> None:
    if shutil.which("fish") is None:
        pytest.skip("fish is not installed here (./dev test installs it where it can)")
    for name in ("karmactl.fish", "karmad.fish"):
        script = share / "fish" / "vendor_completions.d" / name
        subprocess.run(["fish", "--no-config", "-n", str(script)], check=True, timeout=30)
    assert "service" in fish_complete(share, "karmactl serv")
    assert set(fish_complete(share, "karmactl service ")) == {
        "install",
        "uninstall",
        "status",
        "restart",
        "logs",
    }
    assert "--priority" in fish_complete(share, "karmactl service logs --")


def test_units_are_regenerated_unchanged(tmp_path: Path) -> None:
    """`generate.py --units` reproduces the shipped files byte for byte."""
    sys.path.insert(0, str(GENERATE.parent))
    try:
        import generate
    finally:
        sys.path.remove(str(GENERATE.parent))
    for path, data in generate.shipped_units().items():
        assert path.read_bytes() == data, f"{path} is stale: run packaging/generate.py --units"


def source_tree(dest: Path) -> Path:
    """The files git would ship (tracked or new, not ignored), copied away from the repo."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    for name in listed:
        source = REPO / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


@pytest.mark.slow
def test_wheel_and_sdist_build_cleanly(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs the git checkout to know which files are the source")
    src = source_tree(tmp_path / "src")
    dist = tmp_path / "dist"
    # --no-isolation: the build backend comes from the test environment, no download.
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # README.md is not part of this tree yet; the rest is setuptools saying that an
    # exclusion (needed in a checkout with bytecode around) matched nothing.
    noise = ("README", "byte-compiling is disabled", "no previously-included files matching")
    warnings = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if "warning" in line.lower() and not any(n in line for n in noise)
    ]
    assert warnings == []
    [wheel] = dist.glob("karmad-*.whl")
    [sdist] = dist.glob("karmad-*.tar.gz")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = zf.read(entry_points).decode()
    for module in (
        "karmad/sdnotify.py",
        "karmad/doctor.py",
        "karmad/checks/store.py",
        "karmactl/service/units.py",
        "karmactl/cmd_doctor.py",
        "karmad/py.typed",
    ):
        assert module in names, module
    assert "karmad = karmad.cli:main" in scripts
    assert "karmactl = karmactl.cli:main" in scripts
    with tarfile.open(sdist) as tf:
        members = {m.name.split("/", 1)[1] for m in tf.getmembers() if "/" in m.name}
    for shipped in (
        "systemd/karmad.service",
        "launchd/org.karmad.karmad.plist",
        "packaging/generate.py",
        "packaging/README.md",
        "packaging/man/karmad.include",
        "docs/operations.md",
        "tests/test_service.py",
    ):
        assert shipped in members, shipped

    # The wheel alone (no checkout beside it) installs and runs.
    target = tmp_path / "installed"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    ran = subprocess.run(
        [
            sys.executable,
            "-c",
            "import karmactl.cli, sys; print(karmactl.cli.__file__); "
            "sys.exit(karmactl.cli.main(['--version']))",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target), "PYTHONSAFEPATH": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    where, version = ran.stdout.split()[0], ran.stdout.split("\n", 1)[1].strip()
    assert where.startswith(str(target)), "the installed wheel ran, not the checkout"
    assert version == "karmactl 0.1.0"
