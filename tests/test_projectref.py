"""The one rule that names a project: full identities, remotes, keys, paths, and short
forms only when they match exactly one known project."""

from __future__ import annotations

from pathlib import Path

import pytest

from karmad.domain import DomainError, project_key
from karmad.projectref import Known, resolve
from tests.support.sessions import make_checkout

GITHUB = Known("github.com/acme/app", "acme/app")
GITLAB = Known("gitlab.com/acme/app", "acme/app")
OTHER = Known("github.com/acme/api", "acme/api")


def test_a_short_form_names_the_one_project_it_matches() -> None:
    for ref in ("acme/app", "app", "github.com/acme/app", "Acme/App"):
        assert resolve(ref, [GITHUB, OTHER]).identity == "github.com/acme/app"
    assert resolve(project_key(GITHUB.identity), [GITHUB]).identity == GITHUB.identity
    assert resolve("git@github.com:acme/app.git", []).identity == GITHUB.identity


def test_a_short_form_matching_several_is_refused_with_the_candidates() -> None:
    with pytest.raises(DomainError) as info:
        resolve("acme/app", [GITHUB, GITLAB, OTHER])
    assert info.value.reason == "conflict"
    assert "github.com/acme/app, gitlab.com/acme/app" in info.value.detail
    # The full identity still names each one.
    assert resolve("gitlab.com/acme/app", [GITHUB, GITLAB]).identity == GITLAB.identity


def test_an_unknown_short_form_is_never_taken_for_a_host() -> None:
    with pytest.raises(DomainError) as info:
        resolve("acme/app", [OTHER])
    assert info.value.reason == "not_found"
    assert "github.com/acme/app" in info.value.detail  # the form to give instead
    # A full identity not known yet is fine: it is what `share` of a new project gives.
    assert resolve("github.com/acme/new", []).identity == "github.com/acme/new"


def test_paths_name_their_checkout_and_a_folder_without_remote_says_so(tmp_path: Path) -> None:
    checkout = make_checkout(tmp_path, "https://github.com/Acme/App.git")
    named = resolve(str(checkout), [])
    assert (named.identity, named.local_folder) == ("github.com/acme/app", False)
    plain = tmp_path / "notgit"
    plain.mkdir()
    assert resolve(str(plain), []).local_folder
    with pytest.raises(DomainError):
        resolve(" ", [GITHUB])
