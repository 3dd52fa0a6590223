"""No provider error shows the token or password it was given: not its text, its repr, nor any
exception chained to it that a logged traceback would show, even when the server echoes the whole
request, credentials included, back in its error body."""

from __future__ import annotations

import socket
import traceback
from collections.abc import Callable, Iterator

import pytest

from providers import ProviderError, RegistryAuth, open_provider, open_registry, parse_reference, parse_source
from providers.github import HeadQuery, read_heads
from revision_controller.testing.redirector import Answer, Arrival, Recorder
from tests.canary import leaks, secret

TOKEN = secret("provider-token")
AUTH = RegistryAuth("puller", secret("registry-password"))
STATUSES = (400, 401, 403, 404, 409, 422, 429, 500, 502, 503)


class Echo(Recorder):
    """Answers every request with `status` and the request itself, credentials and all, as its body."""

    def __init__(self, status: int) -> None:
        super().__init__()
        self.status = status

    def answer(self, arrival: Arrival) -> Answer:
        challenge = (("WWW-Authenticate", 'Basic realm="echo"'),) if self.status == 401 else ()
        return Answer(self.status, (("Content-Type", "application/json"), *challenge),
                      f'{{"message": {arrival.text()!r}}}'.encode())


@pytest.fixture(params=STATUSES)
def echo(request: pytest.FixtureRequest) -> Iterator[Echo]:
    with Echo(request.param) as server:
        yield server


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def shown(error: BaseException) -> list[str]:
    """Every text the error and what it chains to could show: str, repr, the formatted traceback."""
    texts = ["".join(traceback.format_exception(error))]
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return texts


def assert_hidden(error: BaseException) -> None:
    assert isinstance(error, ProviderError), f"{type(error).__name__} is no ProviderError"
    assert not [text for text in shown(error) if leaks(text)]


def raised(call: Callable[[], object]) -> BaseException:
    with pytest.raises(Exception) as caught:  # which class is what assert_hidden checks
        call()
    return caught.value


GIT_SOURCES = {
    "github": lambda url: parse_source("github", f"{url}/team/app", base_url=f"{url}/api/v3"),
    "gitlab": lambda url: parse_source("gitlab", f"{url}/group/app", base_url=url),
    "gitlab-oauth": lambda url: parse_source("gitlab", f"{url}/group/app", base_url=url, auth_type="OAuthToken"),
    "gitee": lambda url: parse_source("gitee", f"{url}/team/app", base_url=f"{url}/api/v5"),
    "git": lambda url: parse_source("git", f"{url}/team/app.git"),
}


@pytest.mark.parametrize("kind", sorted(GIT_SOURCES))
def test_git_provider_errors_hide_the_token(kind: str, echo: Echo) -> None:
    provider = open_provider(GIT_SOURCES[kind](echo.url), TOKEN)
    try:
        assert_hidden(raised(lambda: provider.head("main")))
        assert_hidden(raised(provider.default_branch))
    finally:
        provider.close()
    assert [arrival for arrival in echo.requests if leaks(arrival.text())], "no token was sent: proves nothing"


def test_a_password_in_a_git_url_is_hidden_too(echo: Echo) -> None:
    provider = open_provider(parse_source("git", echo.url.replace("//", f"//user:{TOKEN}@") + "/a.git"), None)
    try:
        error = raised(lambda: provider.head("main"))
    finally:
        provider.close()
    assert_hidden(error)
    assert not leaks(provider.source.describe())


def test_graphql_batch_errors_hide_the_token(echo: Echo) -> None:
    query = HeadQuery("team/app", "main")
    answers, _ = read_heads(f"{echo.url}/api/v3", TOKEN, [query])
    assert isinstance(answers[query], BaseException)
    assert_hidden(answers[query])


def test_registry_errors_hide_the_password(echo: Echo) -> None:
    host = echo.url.removeprefix("http://")
    registry = open_registry(host, AUTH, insecure=True)
    try:
        assert_hidden(raised(lambda: registry.digest(parse_reference(f"{host}/team/app:v1"))))
    finally:
        registry.close()


@pytest.mark.parametrize("kind", sorted(GIT_SOURCES))
def test_an_unreachable_server_hides_the_token(kind: str) -> None:
    provider = open_provider(GIT_SOURCES[kind](closed_port_url()), TOKEN)
    try:
        assert_hidden(raised(lambda: provider.head("main")))
    finally:
        provider.close()


def test_an_unreachable_registry_or_graphql_api_hides_the_credentials() -> None:
    host = closed_port_url().removeprefix("http://")
    registry = open_registry(host, AUTH, insecure=True)
    try:
        assert_hidden(raised(lambda: registry.digest(parse_reference(f"{host}/team/app:v1"))))
    finally:
        registry.close()
    query = HeadQuery("team/app", "main")
    answers, _ = read_heads(f"{closed_port_url()}/api/v3", TOKEN, [query])
    assert isinstance(answers[query], BaseException)
    assert_hidden(answers[query])
