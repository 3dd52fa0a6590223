"""Clients shared by the providers of one host: leased, closed with the last lease, cookieless."""

from __future__ import annotations

import httpx
import respx

from providers import open_provider, parse_source, registry
from providers.sessions import SharedClients, cookieless


def test_a_client_is_opened_once_per_key_and_closed_with_the_last_lease() -> None:
    opened: list[str] = []
    closed: list[str] = []
    clients = SharedClients(lambda key: opened.append(key) or f"client-{key}", closed.append)
    first, second, other = clients.lease("a"), clients.lease("a"), clients.lease("b")
    assert first.client == second.client == "client-a" and other.client == "client-b"
    assert opened == ["a", "b"]
    first.end()
    first.end()  # a second end does not end another's lease
    assert closed == [] and len(clients) == 2
    second.end()
    assert closed == ["client-a"] and len(clients) == 1
    other.end()
    assert len(clients) == 0


def test_providers_of_one_host_and_credential_share_one_client() -> None:
    github_same = [open_provider(parse_source("github", f"https://github.com/o/r{n}"), "t1") for n in range(2)]
    github_other = open_provider(parse_source("github", "https://github.com/o/r"), "t2")
    gitlab_two = [open_provider(parse_source("gitlab", f"https://gitlab.com/g/r{n}"), token)
                  for n, token in enumerate(("a", "b"))]
    gitee_two = [open_provider(parse_source("gitee", f"https://gitee.com/o/r{n}"), "t") for n in range(2)]
    git_two = [open_provider(parse_source("git", f"https://git.example/r{n}.git"), None) for n in range(2)]
    registries = [registry.Provider("ghcr.io", None, False), registry.Provider("quay.io", None, False)]
    opened = [*github_same, github_other, *gitlab_two, *gitee_two, *git_two, *registries]
    try:
        assert github_same[0]._github is github_same[1]._github is not github_other._github
        assert gitlab_two[0]._gitlab is gitlab_two[1]._gitlab  # tokens go in each request
        assert gitee_two[0]._client is gitee_two[1]._client
        assert git_two[0]._remote._client is git_two[1]._remote._client
        assert registries[0]._client is registries[1]._client
    finally:
        for provider in opened:
            provider.close()
    assert github_same[0]._lease._owner is None  # closed: its lease has ended


def test_a_shared_client_keeps_no_cookie_from_one_target_for_another() -> None:
    with respx.mock(assert_all_mocked=True) as mock, httpx.Client(cookies=cookieless()) as client:
        route = mock.get("https://git.example/a").respond(200, headers={"Set-Cookie": "session=of-a; Path=/"})
        client.get("https://git.example/a")
        client.get("https://git.example/a")
        assert "cookie" not in route.calls.last.request.headers
