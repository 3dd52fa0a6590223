"""Every provider behind a forward proxy that refuses them or cannot be reached: the error names the
proxy settings to check, never the proxy's credentials. The proxy answers before any server would,
so the servers named here (`*.invalid`) need not exist."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from providers import ProviderError, open_provider, open_registry, parse_reference, parse_source
from revision_controller.testing.faultproxy import ForwardProxy
from tests.canary import leaks, secret
from tests.e2e.conftest import free_port

SHA, OTHER = "1" * 40, "2" * 40


def git_head(repo_type: str, url: str) -> Callable[[], object]:
    def read() -> object:
        provider = open_provider(parse_source(repo_type, url), "a-token")
        try:
            return provider.head("main")
        finally:
            provider.close()
    return read


def git_changes(repo_type: str, url: str) -> Callable[[], object]:
    def read() -> object:
        provider = open_provider(parse_source(repo_type, url), "a-token")
        try:
            return provider.changed_files(SHA, OTHER)
        finally:
            provider.close()
    return read


def digest() -> object:
    registry = open_registry("registry.invalid", None, False)
    try:
        return registry.digest(parse_reference("registry.invalid/team/app:v1"))
    finally:
        registry.close()


READS = {
    "git head": git_head("git", "https://git.invalid/team/app.git"),
    "git history": git_changes("git", "https://git.invalid/team/app.git"),
    "github head": git_head("github", "https://github.invalid/team/app"),
    "github compare": git_changes("github", "https://github.invalid/team/app"),
    "gitlab head": git_head("gitlab", "https://gitlab.invalid/team/app"),
    "gitee head": git_head("gitee", "https://gitee.com/team/app"),
    "registry digest": digest,
}


@pytest.mark.parametrize("read", list(READS))
def test_a_proxy_refusing_its_credentials_says_where_they_go(read: str, proxy_environment) -> None:
    wrong = secret("wrong-proxy-password")
    with ForwardProxy(credentials=("egress", "right")) as proxy:
        proxy_environment(HTTPS_PROXY=proxy.url.replace(":right@", f":{wrong}@"))
        with pytest.raises(ProviderError, match=r"forward proxy asks for credentials \(HTTP 407\)") as refused:
            READS[read]()
    assert not leaks(str(refused.value))
    assert [r.method for r in proxy.requests] and {r.status for r in proxy.requests} == {407}


@pytest.mark.parametrize("read", list(READS))
def test_a_proxy_that_cannot_be_reached_is_named(read: str, proxy_environment) -> None:
    proxy_environment(HTTPS_PROXY=f"http://egress:{secret('unused-proxy-password')}@127.0.0.1:{free_port()}")
    with pytest.raises(ProviderError, match=r"through the forward proxy .*check HTTPS_PROXY, HTTP_PROXY and NO_PROXY") \
            as failed:
        READS[read]()
    assert not leaks(str(failed.value))
