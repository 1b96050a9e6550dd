from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from karmad.domain import folder_id, project_key
from karmad.paths import (
    Overrides,
    UnsafeDirectory,
    UnsafeFolderId,
    ensure_private_dir,
    project_dir,
    resolve,
)

linux_only = pytest.mark.skipif(sys.platform == "darwin", reason="XDG layout is Linux's")


@linux_only
def test_xdg_defaults() -> None:
    p = resolve(environ={"HOME": "/home/u", "XDG_RUNTIME_DIR": "/run/user/7"})
    assert p.config_file == Path("/home/u/.config/karmad/config.toml")
    assert p.state_dir == Path("/home/u/.local/state/karmad")
    assert p.socket == Path("/run/user/7/karmad/karmad.sock")
    assert p.claude_dir == Path("/home/u/.claude")
    assert p.store == p.state_dir / "karmad.db"
    assert p.index == p.state_dir / "index.db"


@linux_only
def test_xdg_variables_and_relative_values() -> None:
    env = {
        "HOME": "/home/u",
        "XDG_CONFIG_HOME": "/cfg",
        "XDG_STATE_HOME": "relative/is/ignored",
        "CLAUDE_CONFIG_DIR": "/data/claude",
    }
    p = resolve(environ=env)
    assert p.config_file == Path("/cfg/karmad/config.toml")
    assert p.state_dir == Path("/home/u/.local/state/karmad")
    assert p.claude_dir == Path("/data/claude")
    assert p.runtime_dir == Path(f"/tmp/karmad-{os.getuid()}")


def test_flags_beat_environment_beats_defaults() -> None:
    env = {"HOME": "/home/u", "KARMAD_STATE_DIR": "/env/state", "KARMAD_SOCKET": "/env/k.sock"}
    p = resolve(environ=env)
    assert p.state_dir == Path("/env/state")
    assert p.socket == Path("/env/k.sock")
    p = resolve(Overrides(state_dir=Path("/flag/state"), socket=Path("/flag/s.sock")), env)
    assert p.state_dir == Path("/flag/state")
    assert p.socket == Path("/flag/s.sock")


def test_private_dir_created_and_tightened(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    ensure_private_dir(target)
    assert target.stat().st_mode & 0o777 == 0o700
    target.chmod(0o755)
    ensure_private_dir(target)
    assert target.stat().st_mode & 0o777 == 0o700


def test_private_dir_refuses_symlink_and_file(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(UnsafeDirectory):
        ensure_private_dir(link)
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises((UnsafeDirectory, FileExistsError)):
        ensure_private_dir(afile)


@pytest.mark.parametrize(
    "fid", ["../../etc", "acme-backup", "karma-", "karma-../../x", "/etc", "", "karma-" + "a" * 27]
)
def test_only_a_derived_folder_id_becomes_a_path(fid: str) -> None:
    paths = resolve(Overrides(state_dir=Path("/s")), environ={"HOME": "/h"})
    with pytest.raises(UnsafeFolderId):
        paths.folder(fid)
    with pytest.raises(UnsafeFolderId):
        project_dir(paths.folders_dir, fid, project_key("github.com/o/r"))


def test_folder_and_project_directories() -> None:
    paths = resolve(Overrides(state_dir=Path("/s")), environ={"HOME": "/h"})
    fid = folder_id("abcdefghijklmnopqrstuvwxyz", "DEVICE")
    key = project_key("github.com/o/r")
    assert paths.folder(fid) == Path("/s/folders") / fid
    assert project_dir(paths.folders_dir, fid, key) == Path("/s/folders") / fid / "projects" / key
    with pytest.raises(UnsafeFolderId):
        project_dir(paths.folders_dir, fid, "../..")
