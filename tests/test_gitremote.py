"""Project identity: remotes normalised, checkouts found by reading .git, worktrees."""

from __future__ import annotations

from pathlib import Path

import pytest

from karmad import gitremote


@pytest.mark.parametrize(
    "url",
    [
        "git@github.com:Acme/Widgets.git",
        "github.com:acme/widgets",
        "ssh://git@github.com/acme/widgets.git",
        "ssh://git@github.com:22/acme/widgets",
        "ssh://git@GitHub.com:acme/widgets.git",
        "https://github.com/acme/widgets",
        "https://github.com/acme/widgets.git/",
        "https://user:s3cret@github.com/Acme/widgets.git",
        "http://github.com/acme/widgets",
        "git://github.com/acme/widgets.git",
        "  https://github.com/acme/widgets  ",
    ],
)
def test_every_spelling_of_one_remote_is_equal(url: str) -> None:
    assert gitremote.normalise_remote(url) == "github.com/acme/widgets"


def test_nested_groups_and_other_hosts() -> None:
    assert (
        gitremote.normalise_remote("git@gitlab.example.org:group/sub/Repo.git")
        == "gitlab.example.org/group/sub/repo"
    )
    assert (
        gitremote.normalise_remote("https://gitlab.example.org:8443/group/sub/repo")
        == "gitlab.example.org/group/sub/repo"
    )
    # `org/team-repo` and `org-team/repo` stay different.
    assert gitremote.normalise_remote("git@h.io:org/team-repo") != gitremote.normalise_remote(
        "git@h.io:org-team/repo"
    )


@pytest.mark.parametrize(
    "url",
    [
        "",
        "/srv/git/repo.git",
        "../sibling",
        "file:///srv/git/repo.git",
        "C:/repo",
        "https://h/",
        "x:",
    ],
)
def test_local_paths_have_no_shared_identity(url: str) -> None:
    assert gitremote.normalise_remote(url) is None


def test_remote_urls_reads_git_config_syntax() -> None:
    config = """
[core]
    repositoryformatversion = 0
[remote "upstream"]
    url = https://github.com/upstream/widgets.git  ; a comment
    fetch = +refs/heads/*:refs/remotes/upstream/*
[remote "origin"]
    url = "git@github.com:me/widgets.git"
    url = git@mirror.example.com:me/widgets.git
[remote.legacy]
    url = git@old.example.com:me/widgets.git
"""
    assert gitremote.remote_urls(config) == {
        "upstream": "https://github.com/upstream/widgets.git",
        "origin": "git@github.com:me/widgets.git",
        "legacy": "git@old.example.com:me/widgets.git",
    }


def _repo(path: Path, url: str | None = "git@github.com:acme/widgets.git") -> Path:
    (path / ".git").mkdir(parents=True)
    config = "[core]\n\tbare = false\n"
    if url is not None:
        config += f'[remote "origin"]\n\turl = {url}\n'
    (path / ".git" / "config").write_text(config)
    return path


def _worktree(repo: Path, path: Path, name: str) -> Path:
    git_dir = repo / ".git" / "worktrees" / name
    git_dir.mkdir(parents=True)
    (git_dir / "commondir").write_text("../..\n")
    path.mkdir(parents=True)
    (path / ".git").write_text(f"gitdir: {git_dir}\n")
    return path


def test_identify_from_a_subdirectory_of_a_checkout(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "src" / "widgets")
    (repo / "e2e" / "deep").mkdir(parents=True)
    found = gitremote.identify(str(repo / "e2e" / "deep"))
    assert found == gitremote.ProjectIdentity(
        "github.com/acme/widgets", str(repo), "git", "git@github.com:acme/widgets.git"
    )


def test_origin_wins_else_first_remote(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    (repo / ".git").mkdir(parents=True)
    (repo / ".git" / "config").write_text(
        '[remote "fork"]\n\turl = https://h.io/me/r\n[remote "origin"]\n\turl = https://h.io/them/r\n'
    )
    assert gitremote.identify(str(repo)).identity == "h.io/them/r"
    (repo / ".git" / "config").write_text('[remote "fork"]\n\turl = https://h.io/me/r\n')
    assert gitremote.identify(str(repo)).identity == "h.io/me/r"


def test_credentials_never_kept(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "r", "https://me:token123@h.io/o/r.git")
    found = gitremote.identify(str(repo))
    assert found.identity == "h.io/o/r"
    assert "token123" not in found.remote


def test_checkout_without_remote_and_missing_paths(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "local-only", url=None)
    assert gitremote.identify(str(repo)) == gitremote.ProjectIdentity(str(repo), str(repo), "path")
    elsewhere = "/Users/someone/on/another/machine"
    assert gitremote.identify(elsewhere) == gitremote.ProjectIdentity(elsewhere, elsewhere, "path")


@pytest.mark.parametrize("marker", [".claude/worktrees", ".worktrees"])
def test_claude_code_worktrees_attach_to_their_repository(tmp_path: Path, marker: str) -> None:
    repo = _repo(tmp_path / "widgets")
    worktree = _worktree(repo, repo / marker / "feature-x", "feature-x")
    (worktree / "pkg").mkdir()
    found = gitremote.identify(str(worktree / "pkg"))
    assert found.identity == "github.com/acme/widgets"
    assert found.path == str(repo)
    # Also once the worktree is gone: its shape names the repository.
    gone = repo / marker / "removed-branch"
    assert gitremote.identify(str(gone)).path == str(repo)
    assert gitremote.identify(str(gone)).identity == "github.com/acme/widgets"


def test_claude_desktop_worktrees_found_through_their_git_file(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "code" / "widgets")
    worktree = _worktree(
        repo, tmp_path / "home" / ".claude-worktrees" / "widgets" / "brave-owl", "brave-owl"
    )
    assert gitremote.repository_of_worktree(worktree) == repo
    found = gitremote.identify(str(worktree))
    assert (found.identity, found.path) == ("github.com/acme/widgets", str(repo))


def test_a_plain_directory_is_not_a_worktree(tmp_path: Path) -> None:
    assert gitremote.repository_of_worktree(tmp_path / "x" / ".worktrees") is None
    assert gitremote.repository_of_worktree(tmp_path / ".claude-worktrees" / "a" / "b") is None
