"""The daemon process behind a forward proxy, as in clusters whose egress goes through one: HTTP_PROXY
with credentials in its URL, honoured by every provider, the git history fetch for `paths` included.
The servers are named `*.invalid`, which only the proxy resolves: nothing can reach them around it."""

from __future__ import annotations

from urllib.parse import urlsplit

from revision_controller.testing import ApiServer
from revision_controller.testing.faultproxy import ForwardProxy
from revision_controller.testing.gitserver import GitServer
from revision_controller.testing.registry import Registry, require_registry
from tests.canary import secret
from tests.e2e.conftest import (
    FIRST_POLL,
    WITHIN,
    create,
    events,
    function_manifest,
    put_secret,
    recorded,
    wait_for,
    wait_recorded,
)
from tests.e2e.test_forges import TOKEN, serving
from tests.e2e.test_hostile import IMAGE
from tests.e2e.test_images import create_with_status, image_function, served_digest
from tests.e2e.test_paths import FILES, PATHS
from tests.providers.conftest import require_git


def through(proxy_url: str) -> dict[str, str]:
    """The daemon's environment: plain HTTP through the proxy, nothing else proxied (whatever this machine sets)."""
    names = {"HTTP_PROXY": proxy_url, "HTTPS_PROXY": "", "ALL_PROXY": "", "NO_PROXY": ""}
    return {**names, **{name.lower(): value for name, value in names.items()}}


def test_heads_and_comparisons_go_through_the_proxy_the_environment_names(
        apiserver: ApiServer, functions, start_daemon) -> None:
    require_git()
    password = secret("proxy-password")
    with GitServer(backend="http-backend") as git, serving("github") as github, \
            ForwardProxy(credentials=("egress", password),
                         names={"git.invalid": "127.0.0.1", "github.invalid": "127.0.0.1"}) as proxy:
        hosted = git.create_repository("mono", branch="main")
        base = hosted.commit("two functions", FILES)
        url = hosted.url.replace("127.0.0.1", "git.invalid")
        for name in "ab":
            create(functions, function_manifest(name, url, f"repo-type: git\npolling-interval: 1s\n{PATHS}"), base)
        put_secret(apiserver, "forge-token", TOKEN)
        private = github.forge.create_repository("team/private", private=True)
        create(functions, function_manifest("c", github.url("team/private").replace("127.0.0.1", "github.invalid"),
                                            github.params().replace("127.0.0.1", "github.invalid"),
                                            credentials="forge-token"), private.head())
        # Only plain HTTP goes through it: the API stand-in is HTTPS, reached directly.
        daemon = start_daemon(env=through(proxy.url))
        wait_for(lambda: {urlsplit(r.path).hostname for r in proxy.requests} == {"git.invalid", "github.invalid"},
                 FIRST_POLL, "a first read of both hosts through the proxy")

        in_a = hosted.commit("change a", {"functions/a/main.go": "a2"})
        moved = private.commit("change", files={"x": "1"})
        wait_recorded(functions, "a", in_a)
        wait_recorded(functions, "c", moved)
        (skipped,) = wait_for(lambda: events(apiserver, "SourceUnchangedInPaths", "b"), WITHIN,
                              "b told it was not rebuilt: the comparison went through the proxy")
    assert "functions/a/main.go" in skipped["message"] and recorded(functions, "b") == base
    answered = {(r.method, urlsplit(r.path).path, r.status) for r in proxy.requests}
    assert all(status in (200, 304) for _, _, status in answered), answered  # 304: GitHub's ETags
    assert password not in daemon.output()


def test_an_image_digest_is_read_through_the_proxy(apiserver: ApiServer, functions, start_daemon) -> None:
    require_registry()
    with Registry() as registry, ForwardProxy(names={"registry.invalid": "127.0.0.1"}) as proxy:
        first = registry.push_image("app", "v1", b"one")
        image = registry.reference("app", "v1").replace("127.0.0.1", "registry.invalid")
        create_with_status(functions, image_function("served", IMAGE, image=image),
                           {"serving": {"state": "Running"}, "revision": {"imageDigest": first}})
        start_daemon(env=through(proxy.url))
        second = registry.push_image("app", "v1", b"two")
        wait_for(lambda: served_digest(functions, "served") == second, FIRST_POLL, "the new digest, through the proxy")
    assert {urlsplit(r.path).hostname for r in proxy.requests} == {"registry.invalid"}


def test_a_proxy_refusing_its_credentials_is_told_on_the_function(
        apiserver: ApiServer, functions, start_daemon) -> None:
    wrong = secret("wrong-proxy-password")
    with GitServer() as git, ForwardProxy(credentials=("egress", "right"), names={"git.invalid": "127.0.0.1"}) as proxy:
        hosted = git.create_repository("refused", branch="main")
        create(functions, function_manifest("refused", hosted.url.replace("127.0.0.1", "git.invalid"),
                                            "repo-type: git\npolling-interval: 1s"), hosted.head())
        daemon = start_daemon(env=through(proxy.url.replace(":right@", f":{wrong}@")))
        (failed,) = wait_for(lambda: events(apiserver, "PollFailed", "refused"), FIRST_POLL, "PollFailed")
    assert "forward proxy asks for credentials (HTTP 407)" in failed["message"]
    assert wrong not in failed["message"] + daemon.output()
