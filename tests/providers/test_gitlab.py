from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from providers import gitlab
from providers.base import (GitSource, InvalidSource, NotFound, ProviderError, Unauthorized,
                            Unavailable)
from tests.providers.conftest import TOKEN, assert_token_hidden

SERVER = "https://gitlab.com"
PROJECT_URL = f"{SERVER}/api/v4/projects/group%2Fsub%2Fproject"
COMMITS_URL = f"{PROJECT_URL}/repository/commits"
SHA = "0123456789abcdef0123456789abcdef01234567"
SOURCE = GitSource(repo_type="gitlab", server=SERVER, repository="group/sub/project",
                   auth_type="PrivateToken")


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


def provider(token: str | None = TOKEN, source: GitSource = SOURCE) -> gitlab.Provider:
    return gitlab.Provider(source, token, timeout=3)


@pytest.mark.parametrize("url", [
    "https://gitlab.com/group/sub/project",
    "https://gitlab.com/group/sub/project.git",
    "https://gitlab.com/group/sub/project/",
    "https://gitlab.com/group/sub/project/-/tree/main",
    "git@gitlab.com:group/sub/project.git",
    "ssh://git@gitlab.com/group/sub/project.git",
])
def test_every_url_form_names_the_project_path(url: str) -> None:
    assert gitlab.parse_source(url) == SOURCE


def test_self_managed_host_is_the_server() -> None:
    source = gitlab.parse_source("git@gitlab.example.com:team/app.git")
    assert (source.server, source.repository) == ("https://gitlab.example.com", "team/app")


@pytest.mark.parametrize("base_url", [
    "https://gl.example.com", "https://gl.example.com/", "https://gl.example.com/api/v4",
    "https://gl.example.com/api/v4/",
])
def test_base_url_loses_the_api_path_python_gitlab_adds(base_url: str) -> None:
    source = gitlab.parse_source("https://gl.example.com/team/app", base_url=base_url)
    assert source.server == "https://gl.example.com"


@pytest.mark.parametrize("project_id", ["4242", "other/project", " /other/project/ "])
def test_project_id_overrides_the_url(project_id: str) -> None:
    source = gitlab.parse_source("https://gitlab.com/group/sub/project", project_id=project_id)
    assert source.repository == project_id.strip().strip("/")


def test_with_base_url_and_project_id_the_url_is_not_needed() -> None:
    source = gitlab.parse_source("", base_url="https://gl.example.com", project_id="7")
    assert source == GitSource("gitlab", "https://gl.example.com", "7", "PrivateToken")


@pytest.mark.parametrize("auth_type", ["", "PrivateToken", "OAuthToken", "JobToken"])
def test_auth_type_is_kept_normalised(auth_type: str) -> None:
    source = gitlab.parse_source("https://gitlab.com/g/p", auth_type=auth_type)
    assert source.auth_type == (auth_type or "PrivateToken")


def test_unknown_auth_type_names_the_allowed_ones() -> None:
    with pytest.raises(InvalidSource, match="'Basic'.*PrivateToken, OAuthToken, JobToken"):
        gitlab.parse_source("https://gitlab.com/g/p", auth_type="Basic")


@pytest.mark.parametrize("url, project_id", [("", ""), ("gitlab.com/g/p", ""),
                                             ("https://gitlab.com/g/p", "g//p")])
def test_unreadable_sources_are_invalid(url: str, project_id: str) -> None:
    with pytest.raises(InvalidSource, match="write"):
        gitlab.parse_source(url, project_id=project_id)


@pytest.mark.parametrize("auth_type, header, value", [
    ("PrivateToken", "PRIVATE-TOKEN", TOKEN),
    ("OAuthToken", "Authorization", f"Bearer {TOKEN}"),
    ("JobToken", "JOB-TOKEN", TOKEN),
])
def test_head_is_one_request_with_the_token_kind_asked_for(
        mock: responses.RequestsMock, auth_type: str, header: str, value: str) -> None:
    mock.get(COMMITS_URL, json=[{"id": SHA, "short_id": SHA[:8]}])
    source = gitlab.parse_source("https://gitlab.com/group/sub/project", auth_type=auth_type)

    assert provider(source=source).head("feature/x") == SHA

    [call] = mock.calls
    assert urlsplit(call.request.url).path == "/api/v4/projects/group%2Fsub%2Fproject/repository/commits"
    assert parse_qs(urlsplit(call.request.url).query) == {"ref_name": ["feature/x"], "per_page": ["1"]}
    assert call.request.headers[header] == value
    assert call.request.req_kwargs["timeout"] == 3


def test_public_project_is_read_without_any_token_header(mock: responses.RequestsMock) -> None:
    mock.get(COMMITS_URL, json=[{"id": SHA}])

    provider(token=None).head("main")

    headers = mock.calls[0].request.headers
    assert not {"PRIVATE-TOKEN", "JOB-TOKEN", "Authorization"} & set(headers)


def test_numeric_project_id_is_used_as_is(mock: responses.RequestsMock) -> None:
    mock.get("https://gl.example.com/api/v4/projects/4242/repository/commits", json=[{"id": SHA}])
    source = gitlab.parse_source("", base_url="https://gl.example.com/api/v4", project_id="4242")

    assert provider(source=source).head("main") == SHA


def test_default_branch_is_read_from_the_project(mock: responses.RequestsMock) -> None:
    mock.get(PROJECT_URL, json={"id": 1, "path_with_namespace": "group/sub/project",
                                "default_branch": "develop"})

    assert provider().default_branch() == "develop"

    assert len(mock.calls) == 1


def test_branch_without_commits_is_not_found(mock: responses.RequestsMock) -> None:
    mock.get(COMMITS_URL, json=[])

    with pytest.raises(NotFound, match="'main': no commits"):
        provider().head("main")


@pytest.mark.parametrize("status, error", [
    (401, Unauthorized), (403, Unauthorized), (404, NotFound), (429, Unavailable),
    (500, Unavailable), (502, Unavailable), (503, Unavailable), (418, ProviderError),
])
def test_http_failures_map_to_provider_errors_after_one_request(
        mock: responses.RequestsMock, status: int, error: type[ProviderError]) -> None:
    mock.get(COMMITS_URL, status=status, headers={"Retry-After": "0"},
             json={"message": f"{status} echoing {TOKEN}"})

    with pytest.raises(error) as caught:
        provider().head("main")

    assert type(caught.value) is error
    assert "group/sub/project" in str(caught.value) and "'main'" in str(caught.value)
    assert_token_hidden(caught.value)
    assert len(mock.calls) == 1


def test_default_branch_failure_names_the_project(mock: responses.RequestsMock) -> None:
    mock.get(PROJECT_URL, status=404, json={"message": "404 Project Not Found"})

    with pytest.raises(NotFound, match="group/sub/project.*needs a token in the credentials Secret"):
        provider(token=None).default_branch()


@pytest.mark.parametrize("failure, expected", [
    (requests.exceptions.ReadTimeout(f"timed out {TOKEN}"), "no answer within 3s"),
    (requests.exceptions.ConnectionError(f"refused {TOKEN}"), "cannot reach the server"),
])
def test_network_failures_are_unavailable_after_one_attempt(
        mock: responses.RequestsMock, failure: Exception, expected: str) -> None:
    mock.get(COMMITS_URL, body=failure)

    with pytest.raises(Unavailable, match=expected) as caught:
        provider().head("main")

    assert_token_hidden(caught.value)
    assert len(mock.calls) == 1


def test_token_is_not_logged(mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    mock.get(COMMITS_URL, status=401, json={"message": "401 Unauthorized"})

    with pytest.raises(Unauthorized):
        provider().head("main")

    assert TOKEN not in caplog.text
