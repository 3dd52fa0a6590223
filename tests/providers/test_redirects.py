"""Credentials go only to the host they were given for: a provider redirected to another host
(127.0.0.2 beside 127.0.0.1) sends it no token, password or header carrying one, whatever the
redirect status; the only other host a credential may reach is the token realm a registry names.

Each provider is opened as the daemon opens it (`open_provider`, `open_registry`, `read_heads`,
default arguments); the host they are sent to redirects every request to a `Challenger` that asks
for credentials, and records what arrives."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from providers import ProviderError, RegistryAuth, open_provider, open_registry, parse_reference, parse_source
from providers.github import HeadQuery, read_heads
from revision_controller.testing.redirector import REDIRECTS, Challenger, Recorder, Redirector
from tests.canary import leaks, secret

TOKEN = secret("redirected-token")
AUTH = RegistryAuth("puller", secret("redirected-password"))


@pytest.fixture
def elsewhere() -> Iterator[Challenger]:
    with Challenger(host="127.0.0.2") as server:
        yield server


@pytest.fixture(params=REDIRECTS)
def redirector(request: pytest.FixtureRequest, elsewhere: Challenger) -> Iterator[Redirector]:
    with Redirector(elsewhere.url, request.param) as server:
        yield server


def carried(server: Recorder) -> list[str]:
    """The requests that arrived at `server` carrying a credential, in full."""
    return [arrival.text() for arrival in server.requests if leaks(arrival.text())]


def assert_kept_home(home: Recorder, elsewhere: Recorder) -> None:
    """The credential went to its own host, was redirected, and never reached the other one."""
    assert carried(home), "the credential was not even sent to its own host: the test proves nothing"
    assert elsewhere.requests, "the redirect was not followed: the test proves nothing"
    assert carried(elsewhere) == []


def fails(call: Callable[[], object]) -> ProviderError:
    """A redirect elsewhere is an error the daemon reports on the Function, never another exception."""
    with pytest.raises(ProviderError) as raised:
        call()
    assert not leaks(str(raised.value))
    return raised.value


@pytest.mark.parametrize("repo_type, api_path", [("github", "/api/v3"), ("gitee", "/api/v5"), ("gitlab", "")])
def test_a_forge_api_token_is_not_sent_to_the_host_the_api_redirects_to(
        repo_type: str, api_path: str, redirector: Redirector, elsewhere: Challenger) -> None:
    source = parse_source(repo_type, f"{redirector.url}/team/app", base_url=redirector.url + api_path)
    provider = open_provider(source, TOKEN)
    try:
        fails(lambda: provider.head("main"))
        fails(provider.default_branch)
    finally:
        provider.close()
    # The providers follow no redirect of an API, which keeps the token home as well.
    assert carried(redirector) and not carried(elsewhere)


@pytest.mark.parametrize("auth_type", ["PrivateToken", "OAuthToken", "JobToken"])
def test_no_gitlab_token_kind_is_sent_to_the_host_the_api_redirects_to(
        auth_type: str, redirector: Redirector, elsewhere: Challenger) -> None:
    source = parse_source("gitlab", f"{redirector.url}/group/project", base_url=redirector.url, auth_type=auth_type)
    provider = open_provider(source, TOKEN)
    try:
        fails(lambda: provider.head("main"))
    finally:
        provider.close()
    assert carried(redirector) and not carried(elsewhere)


def test_a_graphql_batch_is_not_sent_to_the_host_the_api_redirects_to(
        redirector: Redirector, elsewhere: Challenger) -> None:
    query = HeadQuery("team/app", "main")
    answers, _ = read_heads(f"{redirector.url}/api/v3", TOKEN, [query])
    assert isinstance(answers[query], ProviderError) and not leaks(str(answers[query]))
    assert carried(redirector) and not carried(elsewhere)


@pytest.mark.parametrize("in_url", [False, True], ids=["token", "password-in-url"])
def test_git_credentials_are_not_sent_to_the_host_a_git_server_redirects_to(
        in_url: bool, redirector: Redirector, elsewhere: Challenger) -> None:
    url = f"{redirector.url}/team/app.git"
    if in_url:
        url = url.replace("http://", f"http://user:{TOKEN}@")
    provider = open_provider(parse_source("git", url), None if in_url else TOKEN)
    try:
        fails(lambda: provider.head("main"))
    finally:
        provider.close()
    assert_kept_home(redirector, elsewhere)


def test_registry_credentials_are_not_sent_to_the_host_the_registry_redirects_to(
        redirector: Redirector, elsewhere: Challenger) -> None:
    """The registry asks for Basic credentials, then redirects the request that carries them to a
    host that asks for them too: the password must not follow, nor answer that host's challenge."""
    redirector.challenge = 'Basic realm="registry"'
    host = redirector.url.removeprefix("http://")
    registry = open_registry(host, AUTH, insecure=True)
    try:
        fails(lambda: registry.digest(parse_reference(f"{host}/team/app:v1")))
    finally:
        registry.close()
    assert_kept_home(redirector, elsewhere)


def test_a_challenge_from_the_host_a_registry_redirects_to_does_not_draw_the_password(
        redirector: Redirector) -> None:
    """A Bearer challenge naming a realm is the registry's only when the registry itself sent it."""
    with Challenger(host="127.0.0.2") as realm:
        realm.challenge = f'Bearer realm="{realm.url}/token",service="elsewhere"'
        redirector.target = realm.url
        host = redirector.url.removeprefix("http://")
        registry = open_registry(host, AUTH, insecure=True)
        try:
            fails(lambda: registry.digest(parse_reference(f"{host}/team/app:v1")))
        finally:
            registry.close()
        assert realm.requests and carried(realm) == []


def test_registry_credentials_go_to_the_realm_the_registry_names_but_not_where_it_redirects(
        redirector: Redirector, elsewhere: Challenger) -> None:
    """The realm is on another host, legitimately: the registry named it. When the realm redirects
    to a third host, the password stays behind."""
    with Challenger(challenge=f'Bearer realm="{redirector.url}/token",service="registry"') as registry_server:
        host = registry_server.url.removeprefix("http://")
        registry = open_registry(host, AUTH, insecure=True)
        try:
            fails(lambda: registry.digest(parse_reference(f"{host}/team/app:v1")))
        finally:
            registry.close()
    assert_kept_home(redirector, elsewhere)
