from __future__ import annotations

import re

import pytest

import providers
from providers.base import InvalidSource
from providers.urls import clone_url, normalise_clone_url, parse_repository_url

EXAMPLE = "https://git.example.com/OWNER/REPO.git"


@pytest.mark.parametrize("url, expected", [
    ("https://git.example.com/o/r.git", "https://git.example.com/o/r.git"),
    ("https://git.example.com/o/r", "https://git.example.com/o/r"),
    ("https://git.example.com/o/r/", "https://git.example.com/o/r"),
    ("https://git.example.com/o/r.git/", "https://git.example.com/o/r.git"),
    ("  HTTPS://Git.Example.COM/o/r.git ", "https://git.example.com/o/r.git"),
    ("http://127.0.0.1:8080/repo.git", "http://127.0.0.1:8080/repo.git"),
    ("https://bot:s3cr3t@git.example.com/group/sub/r.git", "https://git.example.com/group/sub/r.git"),
    ("git@git.example.com:o/r.git", "https://git.example.com/o/r.git"),
    ("ssh://git@git.example.com:2222/o/r", "https://git.example.com/o/r"),
])
def test_any_clone_url_spelling_becomes_its_smart_http_url(url: str, expected: str) -> None:
    assert normalise_clone_url(url, example=EXAMPLE) == expected


@pytest.mark.parametrize("url", ["", "git.example.com/o/r", "ftp://git.example.com/o/r",
                                 "https://git.example.com/", "https://git.example.com/o/../r"])
def test_what_names_no_repository_says_how_to_write_one(url: str) -> None:
    with pytest.raises(InvalidSource, match=re.escape("OWNER/REPO.git")):
        normalise_clone_url(url, example=EXAMPLE)


@pytest.mark.parametrize("origin, path, expected", [
    ("https://github.com", "o/r", "https://github.com/o/r.git"),
    ("https://GL.example.com/gitlab/", "/team/app/", "https://gl.example.com/gitlab/team/app.git"),
    ("http://user:pw@host.example:8443", "o/r", "http://host.example:8443/o/r.git"),
])
def test_clone_url_joins_origin_and_path_with_git_suffix(origin: str, path: str, expected: str) -> None:
    assert clone_url(origin, path) == expected


@pytest.mark.parametrize("url, suffix", [("https://h/o/r.git", ".git"), ("https://h/o/r", ""),
                                         ("git@h:o/r.git", ".git")])
def test_parsing_remembers_whether_the_url_said_git(url: str, suffix: str) -> None:
    parsed = parse_repository_url(url, example=EXAMPLE)
    assert (parsed.path, parsed.suffix) == ("o/r", suffix)


@pytest.mark.parametrize("url", ["http://[::1:8080/x", "https://user:pw-do-not-show@[fe80::1%25/a/b",
                                 "http://]/a/b", "http://host:1 2/x", "http://host:99999/x"])
@pytest.mark.parametrize("repo_type", ["git", "github", "gitlab", "gitee"])
def test_urls_that_urllib_cannot_read_are_invalid_sources_that_show_no_password(repo_type: str, url: str) -> None:
    with pytest.raises(InvalidSource) as caught:
        providers.parse_source(repo_type, url)
    assert "pw-do-not-show" not in str(caught.value)
