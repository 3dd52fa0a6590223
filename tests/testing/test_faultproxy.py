"""The faulty proxy: faithful in front of the git server, a forge and the registry; each fault kind
as a client sees it; seeded."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from providers import RegistryAuth, open_provider, open_registry, parse_reference, parse_source
from revision_controller.testing import ApiServer
from revision_controller.testing.faultproxy import PROXY_KINDS, FaultProxy, ForwardProxy
from revision_controller.testing.forge import Forge
from revision_controller.testing.github import GitHubServer
from revision_controller.testing.gitserver import CAPABILITIES, LS_REFS, GitServer
from revision_controller.testing.registry import Registry, require_registry
from tests.canary import secret
from tests.providers.conftest import require_git
from tests.testing.test_apiserver import wait_until

TOKEN = "proxy-test-token"


@pytest.fixture
def gitserver() -> Iterator[GitServer]:
    with GitServer() as server:
        yield server


@pytest.fixture
def github(forge: Forge) -> Iterator[GitHubServer]:
    forge.grant(TOKEN)
    with GitHubServer(forge) as server:
        yield server



def test_git_smart_http_through_the_proxy_reads_the_head() -> None:
    require_git()
    with GitServer(backend="http-backend") as gitserver, FaultProxy(gitserver.url) as proxy:
        repo = gitserver.create_repository("through", branch="main")
        source = parse_source("git", f"{proxy.url}/through.git")
        provider = open_provider(source, None)
        try:
            assert provider.head("main") == repo.head("main")
            moved = repo.commit("change", files={"a": "1"})
            assert provider.head("main") == moved
        finally:
            provider.close()
        # The protocol v2 header and the POSTed ls-refs commands arrived whole: git answered them.
        assert [request.kind for request in gitserver.requests] == [CAPABILITIES, LS_REFS, LS_REFS]
    assert [(r.method, r.status, r.fault) for r in proxy.requests][-1] == ("POST", 200, "")


def test_a_forge_api_through_the_proxy_gets_the_token_and_the_etag(forge: Forge, github: GitHubServer) -> None:
    repo = forge.create_repository("team/private", private=True)
    with FaultProxy(github.url) as proxy:
        source = parse_source("github", f"{proxy.url}/team/private", base_url=f"{proxy.url}/api/v3")
        provider = open_provider(source, TOKEN)
        try:
            assert provider.head("main") == repo.head()
            assert provider.head("main") == repo.head()
        finally:
            provider.close()
    statuses = [r.status for r in github.requests if r.path.startswith("/api/")]
    assert statuses == [200, 304]  # the token and If-None-Match were forwarded
    assert {r.token for r in github.requests} == {TOKEN}


def test_a_registry_head_through_the_proxy_keeps_the_digest_the_length_and_the_credentials() -> None:
    require_registry()
    password = secret("proxied-registry")
    with Registry(auth="htpasswd", username="puller", password=password) as registry, \
            FaultProxy(registry.url) as proxy:
        digest = registry.push_image("app", "v1", b"one")
        response = httpx.head(f"{proxy.url}/v2/app/manifests/v1", auth=("puller", password),
                              headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        assert response.headers["Docker-Content-Digest"] == digest
        assert int(response.headers["Content-Length"]) == len(registry.stored_blob(digest))
        assert httpx.head(f"{proxy.url}/v2/app/manifests/v1").status_code == 401
        provider = open_registry(proxy.host, RegistryAuth("puller", password), True)
        try:
            assert provider.digest(parse_reference(f"{proxy.host}/app:v1")) == digest
        finally:
            provider.close()


@pytest.mark.parametrize("kind", ["500", "502", "503"])
def test_a_server_error_answers_for_the_upstream(gitserver: GitServer, kind: str) -> None:
    with FaultProxy(gitserver.url) as proxy:
        proxy.chaos(rate=1.0, seed=1, kinds=[kind])
        response = httpx.get(f"{proxy.url}/any/info/refs")
    assert response.status_code == int(kind) and "injected fault" in response.text
    assert gitserver.requests == []  # never forwarded


def test_429_says_when_to_retry(gitserver: GitServer) -> None:
    with FaultProxy(gitserver.url) as proxy:
        proxy.chaos(rate=1.0, seed=1, kinds=["429"])
        response = httpx.get(f"{proxy.url}/any/info/refs")
    assert (response.status_code, response.headers["Retry-After"]) == (429, "1")


def test_a_reset_is_a_tcp_reset_not_an_end_of_stream(gitserver: GitServer) -> None:
    with FaultProxy(gitserver.url) as proxy:
        proxy.chaos(rate=1.0, seed=1, kinds=["reset"])
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        connection.request("GET", "/any/info/refs")
        with pytest.raises(ConnectionResetError):
            connection.getresponse()
        connection.close()
    assert [(r.status, r.fault) for r in proxy.requests] == [(0, "reset")]


def test_a_truncated_answer_promises_more_than_it_sends(gitserver: GitServer) -> None:
    gitserver.create_repository("cut", branch="main")
    with FaultProxy(gitserver.url) as proxy:
        whole = httpx.get(f"{proxy.url}/cut.git/info/refs?service=git-upload-pack")
        proxy.chaos(rate=1.0, seed=1, kinds=["truncate"])
        with pytest.raises(httpx.RemoteProtocolError, match=r"incomplete|closed"):
            httpx.get(f"{proxy.url}/cut.git/info/refs?service=git-upload-pack")
        with pytest.raises(httpx.RemoteProtocolError):  # no body to cut: the headers are cut instead
            httpx.head(f"{proxy.url}/cut.git/info/refs?service=git-upload-pack")
    assert whole.status_code == 200 and len(whole.content) > 0


def test_a_delayed_answer_comes_after_the_client_gave_up_and_the_request_still_arrives(
        gitserver: GitServer) -> None:
    gitserver.create_repository("slow", branch="main")
    with FaultProxy(gitserver.url, delay=0.5) as proxy:
        proxy.chaos(rate=1.0, seed=1, kinds=["delay"])
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(f"{proxy.url}/slow.git/info/refs?service=git-upload-pack", timeout=0.2)
        proxy.calm()
        assert httpx.get(f"{proxy.url}/slow.git/info/refs?service=git-upload-pack").status_code == 200
        wait_until(lambda: gitserver.ls_remote_count("slow") == 2, "the delayed request arrives")
    assert [r.fault for r in proxy.requests] == ["", "delay"]  # recorded when answered


def test_faults_are_drawn_from_the_seed_at_the_rate_until_calm(gitserver: GitServer) -> None:
    def faults(seed: int) -> list[str]:
        with FaultProxy(gitserver.url, delay=0.01) as proxy:
            proxy.chaos(rate=0.5, seed=seed, kinds=["500", "503", "429"])
            with httpx.Client() as client:
                for _ in range(200):
                    client.get(f"{proxy.url}/x/info/refs")
                proxy.calm()
                client.get(f"{proxy.url}/x/info/refs")
            assert sum(proxy.faults_drawn.values()) == sum(1 for r in proxy.requests if r.fault)
            assert proxy.requests[-1].fault == ""
            return [r.fault for r in proxy.requests]

    first = faults(7)
    assert first == faults(7) and first != faults(8)
    assert 70 <= sum(1 for fault in first if fault) <= 130  # half of 200, give or take 4 sigma
    with pytest.raises(ValueError, match="kinds among"):
        FaultProxy(gitserver.url).chaos(rate=0.2, seed=1, kinds=["teapot"])
    assert set(PROXY_KINDS) == {"500", "502", "503", "429", "delay", "reset", "truncate"}


def test_the_forward_proxy_forwards_absolute_requests_and_tunnels_connect(gitserver: GitServer) -> None:
    gitserver.create_repository("forwarded", branch="main")
    with ForwardProxy() as proxy, ApiServer() as apiserver:
        plain = httpx.get(f"{gitserver.url}/forwarded.git/info/refs?service=git-upload-pack", proxy=proxy.url)
        tunnelled = httpx.get(f"{apiserver.url}/version", proxy=proxy.url, verify=apiserver.client_context())
        assert (plain.status_code, tunnelled.status_code, tunnelled.json()["major"]) == (200, 200, "1")
        assert [(r.method, r.path, r.status) for r in proxy.requests] == [
            ("GET", f"{gitserver.url}/forwarded.git/info/refs?service=git-upload-pack", 200),
            ("CONNECT", f"127.0.0.1:{apiserver.port}", 200)]
        assert [r.path for r in gitserver.requests][-1:] == ["/forwarded.git/info/refs"]  # origin-form there


def test_the_forward_proxy_asks_for_its_credentials(gitserver: GitServer) -> None:
    with ForwardProxy(credentials=("proxy-user", "proxy-pass")) as proxy:
        anonymous = proxy.url.replace("proxy-user:proxy-pass@", "")
        refused = httpx.get(f"{gitserver.url}/x", proxy=anonymous)
        connect_refused = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        connect_refused.request("CONNECT", "127.0.0.1:1")
        assert (refused.status_code, connect_refused.getresponse().status) == (407, 407)
        assert refused.headers["Proxy-Authenticate"].startswith("Basic")
        assert httpx.get(f"{gitserver.url}/x", proxy=proxy.url).status_code == 404  # through, to the git server


def test_a_reverse_proxy_opens_no_tunnel(gitserver: GitServer) -> None:
    with FaultProxy(gitserver.url) as proxy:
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        connection.request("CONNECT", f"127.0.0.1:{urlsplit(gitserver.url).port}")
        assert connection.getresponse().status == 405
