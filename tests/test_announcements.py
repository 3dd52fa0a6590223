"""Which targets a webhook's announcement names: every URL form, every repo-type, the default branch."""

from __future__ import annotations

import pytest

from providers import parse_reference, parse_source
from revision_controller.announcements import BranchPush, ImagePush, Repository, names, repository_of
from revision_controller.targets import GitTarget, ImageTarget

PUSH = BranchPush(frozenset({Repository("github.com", "acme/app")}), "main", "main")


@pytest.mark.parametrize("url", ["https://github.com/Acme/App.git", "https://GitHub.com/acme/app/",
                                 "git@github.com:acme/app.git", "ssh://git@github.com/acme/app",
                                 "http://github.com:80/acme/app"])
def test_every_spelling_of_a_url_names_one_repository(url: str) -> None:
    assert repository_of(url) == Repository("github.com", "acme/app")


@pytest.mark.parametrize("url", ["", "not a url", "http://[::1/x", "ftp://github.com/a/b", "https://github.com/"])
def test_what_is_not_a_repository_url_names_none(url: str) -> None:
    assert repository_of(url) is None


@pytest.mark.parametrize("repo_type, url", [("github", "https://github.com/acme/app"),
                                            ("git", "https://github.com/acme/app.git"),
                                            ("github", "git@github.com:acme/app.git")])
def test_a_push_names_the_branch_of_the_repository_whatever_the_repo_type(repo_type: str, url: str) -> None:
    source = parse_source(repo_type, url)
    assert names(PUSH, GitTarget(source, "main"))
    assert not names(PUSH, GitTarget(source, "dev"))
    assert not names(PUSH, GitTarget(parse_source(repo_type, url.replace("app", "other")), "main"))


def test_a_push_to_the_default_branch_names_targets_without_a_revision() -> None:
    source = parse_source("github", "https://github.com/acme/app")
    assert names(PUSH, GitTarget(source, ""))
    assert not names(BranchPush(PUSH.repositories, "dev", "main"), GitTarget(source, ""))
    assert not names(BranchPush(PUSH.repositories, "main", ""), GitTarget(source, ""))


def test_a_gitlab_project_named_by_id_is_named_by_a_push_carrying_that_id() -> None:
    source = parse_source("gitlab", "https://gitlab.example.com/group/app", base_url="https://gitlab.example.com",
                          project_id="15")
    push = BranchPush(frozenset({Repository("gitlab.example.com", "#15")}), "main")
    assert names(push, GitTarget(source, "main"))
    assert not names(BranchPush(frozenset({Repository("gitlab.example.com", "#16")}), "main"),
                     GitTarget(source, "main"))


def test_an_image_push_names_the_tag_of_that_image_only() -> None:
    target = ImageTarget(parse_reference("registry.example.com:5000/team/app:v1"))
    assert names(ImagePush("registry.example.com:5000", "team/app", "v1"), target)
    assert not names(ImagePush("registry.example.com:5000", "team/app", "v2"), target)
    assert not names(ImagePush("registry.example.com", "team/app", "v1"), target)
    pinned = ImageTarget(parse_reference("registry.example.com:5000/team/app@sha256:" + "a" * 64))
    assert not names(ImagePush("registry.example.com:5000", "team/app", "latest"), pinned)
    assert not names(PUSH, target) and not names(ImagePush("github.com", "acme/app", "main"),
                                                 GitTarget(parse_source("git", "https://github.com/acme/app"), "main"))


def test_docker_hub_names_are_read_as_the_daemon_reads_them() -> None:
    hub = parse_reference("nginx")
    target = ImageTarget(parse_reference("docker.io/library/nginx:latest"))
    assert names(ImagePush(hub.registry, hub.repository, "latest"), target)
