"""The registry provider: reference and Secret reading, the request flow against respx,
and the real CNCF distribution registry (Debian's docker-registry) on loopback."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import respx

from providers import registry
from providers.base import (
    ImageReference,
    InvalidSource,
    NotFound,
    ProviderError,
    RegistryAuth,
    Unauthorized,
    Unavailable,
)
from providers.registry import Challenge, auth_for, parse_challenge, parse_reference
from revision_controller.testing.registry import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Registry, require_registry
from tests.providers.conftest import TOKEN, assert_token_hidden

HUB = "registry-1.docker.io"
DIGEST = "sha256:" + "a" * 64
OTHER_DIGEST = "sha256:" + "b" * 64


# --- references -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("nginx", (HUB, "library/nginx", "latest", "")),
    ("nginx:1.27", (HUB, "library/nginx", "1.27", "")),
    ("docker.io/nginx", (HUB, "library/nginx", "latest", "")),
    ("docker.io/library/nginx", (HUB, "library/nginx", "latest", "")),
    ("index.docker.io/library/nginx", (HUB, "library/nginx", "latest", "")),
    ("index.docker.io/nginx:stable", (HUB, "library/nginx", "stable", "")),
    ("user/app:v1", (HUB, "user/app", "v1", "")),
    ("docker.io/user/app:v1", (HUB, "user/app", "v1", "")),
    ("ghcr.io/o/app:v1", ("ghcr.io", "o/app", "v1", "")),
    ("localhost:5000/app", ("localhost:5000", "app", "latest", "")),
    ("localhost/app:v2", ("localhost", "app", "v2", "")),
    ("registry.internal:5000/a/b/c:tag", ("registry.internal:5000", "a/b/c", "tag", "")),
    ("127.0.0.1:5000/team/app:v1.2-rc_3", ("127.0.0.1:5000", "team/app", "v1.2-rc_3", "")),
    ("[::1]:5000/app:v1", ("[::1]:5000", "app", "v1", "")),
    ("my-registry.example.com/team/go.func__x:V1", ("my-registry.example.com", "team/go.func__x", "V1", "")),
    (f"app@{DIGEST}", (HUB, "library/app", "latest", DIGEST)),
    (f"app:v1@{DIGEST}", (HUB, "library/app", "v1", DIGEST)),
    (f"localhost:5000/app:v1@{DIGEST}", ("localhost:5000", "app", "v1", DIGEST)),
    ("  ghcr.io/o/app:v1\n", ("ghcr.io", "o/app", "v1", "")),
])
def test_references_read_the_way_docker_reads_them(text: str, expected: tuple[str, str, str, str]) -> None:
    assert parse_reference(text) == ImageReference(*expected)


def test_a_reference_describes_itself_as_written_in_full() -> None:
    assert parse_reference("localhost:5000/app:v1").describe() == "localhost:5000/app:v1"
    assert parse_reference("nginx").describe() == "registry-1.docker.io/library/nginx:latest"


@pytest.mark.parametrize("text, why", [
    ("", "empty"),
    ("   ", "empty"),
    ("ghcr.io/o/my app:v1", "spaces"),
    ("ghcr.io/Owner/App:v1", "lowercase"),
    ("User/app", "lowercase"),
    ("app@sha256:abc", "digest"),
    ("app@md5:" + "a" * 32, "digest"),
    (f"app@sha256:{'A' * 64}", "digest"),
    ("app:", "tag"),
    ("app:-bad", "tag"),
    ("app:" + "v" * 129, "tag"),
    ("ghcr.io/o/app::v1", "repository name"),
    ("https://ghcr.io/o/app:v1", "scheme"),
    ("-bad.example.com/app", "host"),
    ("ghcr.io/o//app", "repository name"),
    ("ghcr.io/o/app-", "repository name"),
    ("ghcr.io/" + "a" * 250 + "/app", "longer than 255"),
])
def test_invalid_references_name_the_value_and_an_example(text: str, why: str) -> None:
    with pytest.raises(InvalidSource) as caught:
        parse_reference(text)
    message = str(caught.value)
    assert why in message and repr(text) in message and "e.g. ghcr.io/OWNER/APP:TAG" in message


# --- credentials from Secrets -----------------------------------------------------------------

def encoded(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return base64.b64encode(text.encode()).decode()


def basic(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def config_json(auths: Mapping[str, object]) -> dict[str, str]:
    return {".dockerconfigjson": encoded({"auths": auths})}


def auth_from(auths: Mapping[str, object], registry_host: str) -> RegistryAuth | None:
    return auth_for("kubernetes.io/dockerconfigjson", config_json(auths), registry_host)


@pytest.mark.parametrize("key", ["https://index.docker.io/v1/", "docker.io", "index.docker.io",
                                 "registry-1.docker.io", "https://registry-1.docker.io/v2/"])
def test_docker_hub_entries_match_the_host_requests_go_to(key: str) -> None:
    assert auth_from({key: {"auth": basic("hub-user", TOKEN)}}, HUB) == RegistryAuth("hub-user", TOKEN)


@pytest.mark.parametrize("key", ["registry.example.com:5000", "https://registry.example.com:5000",
                                 "http://registry.example.com:5000/v2/", "registry.example.com:5000/team/app",
                                 "REGISTRY.example.com:5000"])
def test_entries_match_by_host_and_port_whatever_scheme_and_path(key: str) -> None:
    assert auth_from({key: {"auth": basic("u", TOKEN)}}, "registry.example.com:5000") == RegistryAuth("u", TOKEN)


@pytest.mark.parametrize("key", ["registry.example.com", "registry.example.com:5001", "other.example.com:5000",
                                 "https://index.docker.io/v1/"])
def test_no_entry_for_the_registry_means_anonymous(key: str) -> None:
    assert auth_from({key: {"auth": basic("u", TOKEN)}}, "registry.example.com:5000") is None


def test_an_entry_named_exactly_as_the_registry_wins() -> None:
    auths = {"https://ghcr.io": {"auth": basic("by-url", "p1")}, "ghcr.io": {"auth": basic("exact", "p2")}}
    assert auth_from(auths, "ghcr.io") == RegistryAuth("exact", "p2")


def test_username_and_password_fields_are_read_when_there_is_no_auth() -> None:
    assert auth_from({"ghcr.io": {"username": "u", "password": TOKEN}}, "ghcr.io") == RegistryAuth("u", TOKEN)
    assert auth_from({"ghcr.io": {"auth": "", "username": "u", "password": TOKEN}}, "ghcr.io") == \
        RegistryAuth("u", TOKEN)


def test_auth_wins_over_username_and_password_as_in_kubelet() -> None:
    entry = {"auth": basic("from-auth", "p1"), "username": "from-fields", "password": "p2"}
    assert auth_from({"ghcr.io": entry}, "ghcr.io") == RegistryAuth("from-auth", "p1")


def test_a_password_may_hold_colons() -> None:
    assert auth_from({"ghcr.io": {"auth": basic("u", "a:b:c")}}, "ghcr.io") == RegistryAuth("u", "a:b:c")


def test_the_older_dockercfg_is_a_flat_map_of_registries() -> None:
    data = {".dockercfg": encoded({"https://index.docker.io/v1/": {"auth": basic("u", TOKEN), "email": "e@x"}})}
    assert auth_for("kubernetes.io/dockercfg", data, HUB) == RegistryAuth("u", TOKEN)


def test_the_password_is_not_in_the_auths_repr() -> None:
    assert TOKEN not in repr(auth_from({"ghcr.io": {"auth": basic("u", TOKEN)}}, "ghcr.io"))


@pytest.mark.parametrize("secret_type, data, said", [
    ("Opaque", {".dockerconfigjson": encoded({"auths": {}})}, "type 'Opaque'"),
    ("kubernetes.io/dockerconfigjson", {}, "no key '.dockerconfigjson'"),
    ("kubernetes.io/dockerconfigjson", {".dockercfg": encoded({})}, "no key '.dockerconfigjson'"),
    ("kubernetes.io/dockerconfigjson", {".dockerconfigjson": f"not base64 {TOKEN}"}, "not base64-encoded JSON"),
    ("kubernetes.io/dockerconfigjson", {".dockerconfigjson": encoded(f"{{{TOKEN}")}, "not base64-encoded JSON"),
    ("kubernetes.io/dockerconfigjson", {".dockerconfigjson": encoded([TOKEN])}, "'auths' mapping"),
    ("kubernetes.io/dockerconfigjson", {".dockerconfigjson": encoded({"auths": [TOKEN]})}, "'auths' mapping"),
    ("kubernetes.io/dockercfg", {".dockercfg": encoded([TOKEN])}, "mapping of registries"),
    ("kubernetes.io/dockerconfigjson", config_json({"ghcr.io": TOKEN}), "entry 'ghcr.io' is not a mapping"),
    ("kubernetes.io/dockerconfigjson", config_json({"ghcr.io": {"auth": f"{TOKEN}!"}}), "'auth' is not base64"),
    ("kubernetes.io/dockerconfigjson", config_json({"ghcr.io": {"auth": encoded(TOKEN)}}), "'auth' is not base64"),
    ("kubernetes.io/dockerconfigjson", config_json({"ghcr.io": {"auth": encoded(f":{TOKEN}")}}),
     "'auth' is not base64"),
    ("kubernetes.io/dockerconfigjson", config_json({"ghcr.io": {"password": TOKEN}}),
     "neither 'auth' nor 'username' and 'password'"),
    ("kubernetes.io/dockerconfigjson", config_json({"ghcr.io": {"identitytoken": TOKEN}}),
     "neither 'auth' nor 'username' and 'password'"),
])
def test_unusable_secrets_say_which_key_and_what_is_wrong_without_their_content(
        secret_type: str, data: dict[str, str], said: str) -> None:
    with pytest.raises(InvalidSource) as caught:
        auth_for(secret_type, data, "ghcr.io")
    assert said in str(caught.value)
    assert_token_hidden(caught.value)


def test_a_malformed_entry_for_another_registry_does_not_matter() -> None:
    auths = {"other.example.com": TOKEN, "ghcr.io": {"auth": basic("u", "p")}}
    assert auth_from(auths, "ghcr.io") == RegistryAuth("u", "p")


# --- challenges -------------------------------------------------------------------------------

@pytest.mark.parametrize("headers, expected", [
    ([('WWW-Authenticate', 'Bearer realm="https://auth.example.com/token",service="reg",scope="repository:a:pull"')],
     Challenge("bearer", "https://auth.example.com/token", "reg")),
    ([('WWW-Authenticate', 'bearer Realm=https://auth.example.com/token, Service=reg')],
     Challenge("bearer", "https://auth.example.com/token", "reg")),
    ([('WWW-Authenticate', 'Basic realm="Registry Realm"')], Challenge("basic", "Registry Realm", "")),
    ([('WWW-Authenticate', 'Negotiate'), ('WWW-Authenticate', 'Basic realm="r"')], Challenge("basic", "r", "")),
    ([('WWW-Authenticate', 'Negotiate')], None),
    ([], None),
])
def test_challenges_are_read_from_www_authenticate(headers: list[tuple[str, str]],
                                                   expected: Challenge | None) -> None:
    assert parse_challenge(httpx.Headers(headers)) == expected


# --- the request flow, against respx ----------------------------------------------------------

HOST = "registry.example.com"
REFERENCE = ImageReference(HOST, "team/app", "v1")
MANIFEST = f"https://{HOST}/v2/team/app/manifests/v1"
REALM = "https://auth.example.com/token"
BEARER = f'Bearer realm="{REALM}",service="registry.example.com",scope="repository:team/app:pull"'
AUTH = RegistryAuth("robot", TOKEN)
BEARER_TOKEN = f"bearer-{TOKEN}"


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def open_provider(clock: Clock) -> Iterator[Callable[..., registry.Provider]]:
    opened: list[registry.Provider] = []

    def open_(auth: RegistryAuth | None = AUTH, insecure: bool = False, host: str = HOST) -> registry.Provider:
        opened.append(registry.Provider(host, auth, insecure, timeout=3, clock=clock))
        return opened[-1]
    yield open_
    for provider in opened:
        provider.close()


def token_answer(token: str = BEARER_TOKEN, **extra: object) -> httpx.Response:
    return httpx.Response(200, json={"token": token, **extra})


def test_head_asks_for_indexes_and_manifests_and_reads_the_digest_header(
        mock: respx.MockRouter, open_provider: Callable[..., registry.Provider]) -> None:
    route = mock.head(MANIFEST).respond(200, headers={"Docker-Content-Digest": DIGEST})

    assert open_provider(auth=None).digest(REFERENCE) == DIGEST

    request = route.calls.last.request
    assert request.headers["Accept"] == (
        "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
        "application/vnd.docker.distribution.manifest.list.v2+json, "
        "application/vnd.docker.distribution.manifest.v2+json")
    assert "Authorization" not in request.headers
    assert request.extensions["timeout"] == httpx.Timeout(3).as_dict()


@pytest.mark.parametrize("header", [None, "", "md5:abc", "sha256:short"])
def test_without_a_usable_digest_header_the_manifest_bytes_are_hashed_exactly(
        mock: respx.MockRouter, open_provider: Callable[..., registry.Provider], header: str | None) -> None:
    body = b'{ "schemaVersion": 2,\n  "mediaType": "application/vnd.oci.image.index.v1+json" }\n'
    mock.head(MANIFEST).respond(200, headers={"Docker-Content-Digest": header} if header is not None else {})
    get = mock.get(MANIFEST).respond(200, content=body)

    assert open_provider(auth=None).digest(REFERENCE) == "sha256:" + hashlib.sha256(body).hexdigest()
    assert "index.v1+json" in get.calls.last.request.headers["Accept"]


@pytest.mark.parametrize("status", [405, 501])
def test_a_registry_that_does_not_answer_head_is_asked_with_get(
        mock: respx.MockRouter, open_provider: Callable[..., registry.Provider], status: int) -> None:
    body = b'{"schemaVersion": 2}'
    mock.head(MANIFEST).respond(status)
    get = mock.get(MANIFEST).respond(200, content=body, headers={"Docker-Content-Digest": DIGEST})

    assert open_provider(auth=None).digest(REFERENCE) == "sha256:" + hashlib.sha256(body).hexdigest()
    assert get.called


def test_a_refused_head_is_not_asked_again_with_get(
        mock: respx.MockRouter, open_provider: Callable[..., registry.Provider]) -> None:
    mock.head(MANIFEST).respond(404)
    get = mock.get(MANIFEST).respond(200, content=b"{}")

    with pytest.raises(NotFound):
        open_provider(auth=None).digest(REFERENCE)
    assert not get.called


def test_docker_hub_references_go_to_registry_1(mock: respx.MockRouter,
                                                open_provider: Callable[..., registry.Provider]) -> None:
    route = mock.head(f"https://{HUB}/v2/library/nginx/manifests/latest").respond(
        200, headers={"Docker-Content-Digest": DIGEST})

    assert open_provider(auth=None, host=HUB).digest(parse_reference("nginx")) == DIGEST
    assert route.called


def test_a_pinned_reference_is_its_own_digest_without_asking(
        mock: respx.MockRouter, open_provider: Callable[..., registry.Provider]) -> None:
    assert open_provider().digest(ImageReference(HOST, "team/app", "v1", DIGEST)) == DIGEST
    assert not mock.calls


def test_bearer_challenge_fetches_a_pull_token_for_the_repository_and_retries(
        mock: respx.MockRouter, open_provider: Callable[..., registry.Provider]) -> None:
    head = mock.head(MANIFEST).mock(side_effect=[
        httpx.Response(401, headers={"WWW-Authenticate": BEARER}),
        httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})])
    realm = mock.get(REALM).mock(return_value=token_answer())

    assert open_provider().digest(REFERENCE) == DIGEST

    token_request = realm.calls.last.request
    assert dict(token_request.url.params) == {"service": "registry.example.com",
                                              "scope": "repository:team/app:pull"}
    assert token_request.headers["Authorization"] == "Basic " + basic("robot", TOKEN)
    assert "Authorization" not in head.calls[0].request.headers
    assert head.calls[1].request.headers["Authorization"] == f"Bearer {BEARER_TOKEN}"


def test_anonymous_bearer_tokens_are_fetched_without_credentials(
        mock: respx.MockRouter, open_provider: Callable[..., registry.Provider]) -> None:
    mock.head(MANIFEST).mock(side_effect=[httpx.Response(401, headers={"WWW-Authenticate": BEARER}),
                                          httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})])
    realm = mock.get(REALM).mock(return_value=httpx.Response(200, json={"access_token": "anonymous-token"}))

    assert open_provider(auth=None).digest(REFERENCE) == DIGEST
    assert "Authorization" not in realm.calls.last.request.headers


def test_the_token_is_kept_for_its_scope_until_it_nearly_expires(
        mock: respx.MockRouter, open_provider: Callable[..., registry.Provider], clock: Clock) -> None:
    head = mock.head(MANIFEST).mock(side_effect=[httpx.Response(401, headers={"WWW-Authenticate": BEARER})] + [
        httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})] * 3)
    realm = mock.get(REALM).mock(side_effect=[token_answer("first", expires_in=300),
                                              token_answer("second", expires_in=300)])
    provider = open_provider()

    provider.digest(REFERENCE)
    clock.now += 289
    provider.digest(REFERENCE)
    assert realm.call_count == 1 and head.call_count == 3
    assert head.calls.last.request.headers["Authorization"] == "Bearer first"

    clock.now += 2  # within ten seconds of expiry: fetched afresh, before the registry refuses it
    provider.digest(REFERENCE)
    assert realm.call_count == 2 and head.call_count == 4
    assert head.calls.last.request.headers["Authorization"] == "Bearer second"


def test_a_token_without_expires_in_lives_sixty_seconds(
        mock: respx.MockRouter, open_provider: Callable[..., registry.Provider], clock: Clock) -> None:
    mock.head(MANIFEST).mock(side_effect=[httpx.Response(401, headers={"WWW-Authenticate": BEARER})] + [
        httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})] * 3)
    realm = mock.get(REALM).mock(return_value=token_answer())
    provider = open_provider()

    provider.digest(REFERENCE)
    clock.now += 49
    provider.digest(REFERENCE)
    assert realm.call_count == 1
    clock.now += 2
    provider.digest(REFERENCE)
    assert realm.call_count == 2


def test_a_refused_cached_token_is_fetched_again_once(
        mock: respx.MockRouter, open_provider: Callable[..., registry.Provider]) -> None:
    mock.head(MANIFEST).mock(side_effect=[
        httpx.Response(401, headers={"WWW-Authenticate": BEARER}),
        httpx.Response(200, headers={"Docker-Content-Digest": DIGEST}),
        httpx.Response(401, headers={"WWW-Authenticate": BEARER}),  # revoked early
        httpx.Response(200, headers={"Docker-Content-Digest": OTHER_DIGEST})])
    realm = mock.get(REALM).mock(side_effect=[token_answer("first"), token_answer("second")])
    provider = open_provider()

    assert provider.digest(REFERENCE) == DIGEST
    assert provider.digest(REFERENCE) == OTHER_DIGEST
    assert realm.call_count == 2


def test_basic_challenge_is_answered_with_the_credentials_and_remembered(
        mock: respx.MockRouter, open_provider: Callable[..., registry.Provider]) -> None:
    head = mock.head(MANIFEST).mock(side_effect=[
        httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="Registry"'}),
        httpx.Response(200, headers={"Docker-Content-Digest": DIGEST}),
        httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})])
    provider = open_provider()

    provider.digest(REFERENCE)
    provider.digest(REFERENCE)

    assert [call.request.headers.get("Authorization") for call in head.calls] == \
        [None, "Basic " + basic("robot", TOKEN), "Basic " + basic("robot", TOKEN)]


@pytest.mark.parametrize("challenge", ['Basic realm="Registry"', BEARER])
def test_refused_credentials_are_unauthorized_and_say_so(
        mock: respx.MockRouter, open_provider: Callable[..., registry.Provider], challenge: str) -> None:
    head = mock.head(MANIFEST).respond(401, headers={"WWW-Authenticate": challenge}, json={"detail": TOKEN})
    mock.get(REALM).mock(return_value=token_answer())

    with pytest.raises(Unauthorized, match="refused the credentials in imageCredentials") as caught:
        open_provider().digest(REFERENCE)

    assert "registry.example.com/team/app:v1" in str(caught.value)
    assert head.call_count == 2
    assert_token_hidden(caught.value)


@pytest.mark.parametrize("challenge", ['Basic realm="Registry"', 'Negotiate', None])
def test_without_credentials_a_401_says_to_set_image_credentials(
        mock: respx.MockRouter, open_provider: Callable[..., registry.Provider], challenge: str | None) -> None:
    head = mock.head(MANIFEST).respond(401, headers={"WWW-Authenticate": challenge} if challenge else {})

    with pytest.raises(Unauthorized, match=r"needs credentials.*set spec\.imageCredentials"):
        open_provider(auth=None).digest(REFERENCE)
    assert head.call_count == 1


@pytest.mark.parametrize("auth, said", [(AUTH, "refused the credentials"), (None, "needs credentials")])
def test_a_token_server_that_refuses_is_unauthorized(
        mock: respx.MockRouter, open_provider: Callable[..., registry.Provider],
        auth: RegistryAuth | None, said: str) -> None:
    mock.head(MANIFEST).respond(401, headers={"WWW-Authenticate": BEARER})
    mock.get(REALM).respond(401, json={"details": TOKEN})

    with pytest.raises(Unauthorized, match=f"token server {said}") as caught:
        open_provider(auth=auth).digest(REFERENCE)
    assert_token_hidden(caught.value)


@pytest.mark.parametrize("answer", [httpx.Response(200, json={"expires_in": 60}), httpx.Response(200, text="{"),
                                    httpx.Response(200, json=["token"]), httpx.Response(200, json={"token": 7})])
def test_a_token_answer_without_a_token_is_unavailable(
        mock: respx.MockRouter, open_provider: Callable[..., registry.Provider], answer: httpx.Response) -> None:
    mock.head(MANIFEST).respond(401, headers={"WWW-Authenticate": BEARER})
    mock.get(REALM).mock(return_value=answer)

    with pytest.raises(Unavailable, match="answered without a token"):
        open_provider().digest(REFERENCE)


@pytest.mark.parametrize("status, error, said", [
    (403, Unauthorized, "denied access (HTTP 403)"),
    (404, NotFound, "no such image or tag"),
    (429, Unavailable, "rate limited by the registry"),
    (500, Unavailable, "registry failed (HTTP 500)"),
    (503, Unavailable, "registry failed (HTTP 503)"),
    (418, ProviderError, "unexpected answer from the registry (HTTP 418)"),
])
def test_statuses_map_to_provider_errors(mock: respx.MockRouter, open_provider: Callable[..., registry.Provider],
                                         status: int, error: type[ProviderError], said: str) -> None:
    mock.head(MANIFEST).respond(status, json={"errors": [{"detail": TOKEN}]})

    with pytest.raises(error, match=re.escape(said)) as caught:
        open_provider().digest(REFERENCE)

    assert type(caught.value) is error
    assert "registry.example.com/team/app:v1" in str(caught.value)
    assert_token_hidden(caught.value)


def test_anonymous_rate_limits_suggest_credentials(mock: respx.MockRouter,
                                                   open_provider: Callable[..., registry.Provider]) -> None:
    mock.head(MANIFEST).respond(429)
    with pytest.raises(Unavailable, match="anonymous pulls get a low limit"):
        open_provider(auth=None).digest(REFERENCE)


@pytest.mark.parametrize("failure, said", [
    (httpx.ReadTimeout(f"timed out {TOKEN}"), "no answer from the registry within 3s"),
    (httpx.ConnectTimeout(f"timed out {TOKEN}"), "no answer from the registry within 3s"),
    (httpx.ConnectError(f"refused {TOKEN}"), "cannot reach the registry"),
    (httpx.RemoteProtocolError(f"bad {TOKEN}"), "cannot reach the registry"),
])
def test_network_failures_are_unavailable(mock: respx.MockRouter, open_provider: Callable[..., registry.Provider],
                                          failure: Exception, said: str) -> None:
    mock.head(MANIFEST).mock(side_effect=failure)

    with pytest.raises(Unavailable, match=said) as caught:
        open_provider().digest(REFERENCE)
    assert_token_hidden(caught.value)


def test_a_token_server_that_cannot_be_reached_is_unavailable(
        mock: respx.MockRouter, open_provider: Callable[..., registry.Provider]) -> None:
    mock.head(MANIFEST).respond(401, headers={"WWW-Authenticate": BEARER})
    mock.get(REALM).mock(side_effect=httpx.ConnectError("refused"))

    with pytest.raises(Unavailable, match="cannot reach"):
        open_provider().digest(REFERENCE)


def test_an_oversized_answer_is_not_read_to_the_end(mock: respx.MockRouter,
                                                     open_provider: Callable[..., registry.Provider]) -> None:
    mock.head(MANIFEST).respond(200)
    mock.get(MANIFEST).respond(200, content=b"x" * (4 * 1024 * 1024 + 1))

    with pytest.raises(Unavailable, match="answer could not be read"):
        open_provider().digest(REFERENCE)


def test_without_insecure_only_https_is_tried(mock: respx.MockRouter,
                                              open_provider: Callable[..., registry.Provider]) -> None:
    mock.head(MANIFEST).mock(side_effect=httpx.ConnectError("handshake failed"))
    plain = mock.head(f"http://{HOST}/v2/team/app/manifests/v1").respond(
        200, headers={"Docker-Content-Digest": DIGEST})

    with pytest.raises(Unavailable):
        open_provider().digest(REFERENCE)
    assert not plain.called


def test_with_insecure_plain_http_is_tried_when_https_fails(
        mock: respx.MockRouter, open_provider: Callable[..., registry.Provider]) -> None:
    secure = mock.head(MANIFEST).mock(side_effect=httpx.ConnectError("handshake failed"))
    plain = mock.head(f"http://{HOST}/v2/team/app/manifests/v1").respond(
        200, headers={"Docker-Content-Digest": DIGEST})

    assert open_provider(insecure=True).digest(REFERENCE) == DIGEST
    assert secure.called and plain.called


def test_with_insecure_a_working_https_is_kept(mock: respx.MockRouter,
                                               open_provider: Callable[..., registry.Provider]) -> None:
    mock.head(MANIFEST).respond(200, headers={"Docker-Content-Digest": DIGEST})
    assert open_provider(insecure=True).digest(REFERENCE) == DIGEST


def test_credentials_are_not_sent_to_a_plain_http_realm_of_a_secure_registry(
        mock: respx.MockRouter, open_provider: Callable[..., registry.Provider]) -> None:
    mock.head(MANIFEST).respond(401, headers={"WWW-Authenticate": 'Bearer realm="http://auth.example.com/token"'})
    realm = mock.get("http://auth.example.com/token")

    with pytest.raises(ProviderError, match=re.escape("realm http://auth.example.com/token is plain http")) as caught:
        open_provider().digest(REFERENCE)
    assert not realm.called
    assert_token_hidden(caught.value)


def test_anonymous_tokens_may_come_from_a_plain_http_realm(
        mock: respx.MockRouter, open_provider: Callable[..., registry.Provider]) -> None:
    mock.head(MANIFEST).mock(side_effect=[
        httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="http://auth.example.com/token"'}),
        httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})])
    mock.get("http://auth.example.com/token").mock(return_value=token_answer())

    assert open_provider(auth=None).digest(REFERENCE) == DIGEST


@pytest.mark.parametrize("realm", ["", "/token", "ftp://auth.example.com/token"])
def test_a_challenge_without_a_usable_realm_is_unavailable(
        mock: respx.MockRouter, open_provider: Callable[..., registry.Provider], realm: str) -> None:
    mock.head(MANIFEST).respond(401, headers={"WWW-Authenticate": f'Bearer realm="{realm}"'})

    with pytest.raises(Unavailable, match="no usable token realm"):
        open_provider().digest(REFERENCE)


def test_redirects_keep_credentials_only_on_the_registrys_origin(
        mock: respx.MockRouter, open_provider: Callable[..., registry.Provider]) -> None:
    mock.head(MANIFEST).mock(side_effect=[
        httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'}),
        httpx.Response(307, headers={"Location": "/v2/team/app/manifests/moved"})])
    same = mock.head(f"https://{HOST}/v2/team/app/manifests/moved").respond(
        302, headers={"Location": "https://cdn.example.net/manifest"})
    elsewhere = mock.head("https://cdn.example.net/manifest").respond(
        200, headers={"Docker-Content-Digest": DIGEST})

    assert open_provider().digest(REFERENCE) == DIGEST

    assert same.calls.last.request.headers["Authorization"] == "Basic " + basic("robot", TOKEN)
    assert "Authorization" not in elsewhere.calls.last.request.headers


def test_a_redirect_from_https_to_http_on_the_same_host_drops_credentials(
        mock: respx.MockRouter, open_provider: Callable[..., registry.Provider]) -> None:
    mock.head(MANIFEST).mock(side_effect=[
        httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'}),
        httpx.Response(301, headers={"Location": f"http://{HOST}/v2/team/app/manifests/v1"})])
    plain = mock.head(f"http://{HOST}/v2/team/app/manifests/v1").respond(
        200, headers={"Docker-Content-Digest": DIGEST})

    open_provider().digest(REFERENCE)
    assert "Authorization" not in plain.calls.last.request.headers


def test_the_token_realm_redirecting_elsewhere_loses_the_credentials(
        mock: respx.MockRouter, open_provider: Callable[..., registry.Provider]) -> None:
    mock.head(MANIFEST).mock(side_effect=[httpx.Response(401, headers={"WWW-Authenticate": BEARER}),
                                          httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})])
    mock.get(REALM).respond(302, headers={"Location": "https://elsewhere.example.net/token"})
    elsewhere = mock.get("https://elsewhere.example.net/token").mock(return_value=token_answer())

    open_provider().digest(REFERENCE)
    assert "Authorization" not in elsewhere.calls.last.request.headers


def test_endless_redirects_are_unavailable(mock: respx.MockRouter,
                                           open_provider: Callable[..., registry.Provider]) -> None:
    mock.head(MANIFEST).respond(302, headers={"Location": MANIFEST})

    with pytest.raises(Unavailable, match="redirected too many times"):
        open_provider().digest(REFERENCE)


def test_credentials_and_tokens_are_not_logged(mock: respx.MockRouter,
                                               open_provider: Callable[..., registry.Provider],
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    mock.head(MANIFEST).mock(side_effect=[httpx.Response(401, headers={"WWW-Authenticate": BEARER}),
                                          httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})])
    mock.get(REALM).mock(return_value=token_answer())

    open_provider().digest(REFERENCE)

    assert TOKEN not in caplog.text and basic("robot", TOKEN) not in caplog.text


# --- against the real registry ----------------------------------------------------------------

USER, PASSWORD = "robot", TOKEN


def real_provider(reg: Registry, auth: RegistryAuth | None = None, insecure: bool = True) -> registry.Provider:
    return registry.Provider(reg.host, auth, insecure, timeout=5)


def digest_of(reg: Registry, reference: str, auth: RegistryAuth | None = None, insecure: bool = True) -> str:
    provider = real_provider(reg, auth, insecure)
    try:
        return provider.digest(parse_reference(reference))
    finally:
        provider.close()


def digest_of_host(host: str, auth: RegistryAuth | None) -> str:
    provider = registry.Provider(host, auth, True, timeout=5)
    try:
        return provider.digest(ImageReference(host, "app", "v1"))
    finally:
        provider.close()


@pytest.fixture(scope="module")
def plain() -> Iterator[Registry]:
    """Anonymous, over plain HTTP."""
    require_registry()
    with Registry() as reg:
        yield reg


@pytest.fixture(scope="module")
def basic_tls() -> Iterator[Registry]:
    """htpasswd Basic auth, over TLS with a self-signed certificate."""
    require_registry()
    with Registry(auth="htpasswd", tls=True, username=USER, password=PASSWORD) as reg:
        reg.push_image("app", "v1")
        yield reg


@pytest.fixture
def token_registry() -> Iterator[Registry]:
    """Bearer tokens from a token server on another port, over plain HTTP: one per test,
    so each sees only its own token requests."""
    require_registry()
    with Registry(auth="token", username=USER, password=PASSWORD) as reg:
        reg.push_image("team/app", "v1")
        yield reg


@pytest.mark.parametrize("media_type, tag", [(OCI_MANIFEST, "oci"), (DOCKER_MANIFEST, "docker")])
def test_the_digest_is_the_pushed_manifests(plain: Registry, media_type: str, tag: str) -> None:
    pushed = plain.push_image("app", tag, content=b"one", media_type=media_type)
    assert digest_of(plain, plain.reference("app", tag)) == pushed


def test_pushing_the_tag_again_moves_the_digest(plain: Registry) -> None:
    provider = real_provider(plain)
    reference = parse_reference(plain.reference("moving", "v1"))
    first = plain.push_image("moving", "v1", content=b"one")
    assert provider.digest(reference) == first

    second = plain.push_image("moving", "v1", content=b"two")

    assert provider.digest(reference) == second != first
    provider.close()


def test_a_multi_arch_image_yields_the_digest_of_its_index(plain: Registry) -> None:
    pushed = plain.push_index("multi", "v1", platforms=["linux/amd64", "linux/arm64"])

    found = digest_of(plain, plain.reference("multi", "v1"))

    stored = plain.stored_blob(found)
    assert found == pushed == "sha256:" + hashlib.sha256(stored).hexdigest()
    index = json.loads(stored)
    assert index["mediaType"] == OCI_INDEX
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]


def test_an_unknown_tag_or_repository_is_not_found(plain: Registry) -> None:
    plain.push_image("known", "v1")
    for reference in (plain.reference("known", "v2"), plain.reference("unknown", "v1")):
        with pytest.raises(NotFound, match="no such image or tag"):
            digest_of(plain, reference)


def test_a_plain_http_registry_needs_insecure(plain: Registry) -> None:
    pushed = plain.push_image("app", "http")

    with pytest.raises(Unavailable, match=r"TLS handshake.*plain HTTP, set insecure-registry: true"):
        digest_of(plain, plain.reference("app", "http"), insecure=False)
    assert digest_of(plain, plain.reference("app", "http"), insecure=True) == pushed


def test_a_self_signed_registry_needs_insecure(basic_tls: Registry) -> None:
    auth = RegistryAuth(USER, PASSWORD)
    with pytest.raises(Unavailable, match=r"TLS certificate could not be verified.*insecure-registry: true") as caught:
        digest_of(basic_tls, basic_tls.reference("app", "v1"), auth, insecure=False)
    assert_token_hidden(caught.value)

    assert digest_of(basic_tls, basic_tls.reference("app", "v1"), auth, insecure=True).startswith("sha256:")


def test_basic_auth_takes_the_right_credentials_only(basic_tls: Registry) -> None:
    reference = basic_tls.reference("app", "v1")
    pushed = basic_tls.push_image("app", "v1")

    assert digest_of(basic_tls, reference, RegistryAuth(USER, PASSWORD)) == pushed
    with pytest.raises(Unauthorized, match="refused the credentials in imageCredentials") as wrong:
        digest_of(basic_tls, reference, RegistryAuth(USER, f"not-{TOKEN}"))
    assert_token_hidden(wrong.value)
    with pytest.raises(Unauthorized, match="needs credentials"):
        digest_of(basic_tls, reference, None)


def test_credentials_read_from_a_secret_work_against_the_registry(basic_tls: Registry) -> None:
    auth = auth_for("kubernetes.io/dockerconfigjson", basic_tls.secret_data(), basic_tls.host)

    assert auth == RegistryAuth(USER, PASSWORD)
    assert digest_of(basic_tls, basic_tls.reference("app", "v1"), auth).startswith("sha256:")


def test_the_token_flow_asks_the_realm_for_a_pull_scope(token_registry: Registry) -> None:
    pushed = token_registry.push_image("team/app", "v1")
    provider = real_provider(token_registry, RegistryAuth(USER, PASSWORD))
    reference = parse_reference(token_registry.reference("team/app", "v1"))

    assert provider.digest(reference) == pushed
    assert provider.digest(reference) == pushed  # the cached token: no second token request
    provider.close()

    assert token_registry.token_server is not None
    asked, = token_registry.token_server.requests
    assert asked.scopes == ["repository:team/app:pull"]
    assert asked.service == token_registry.token_server.service
    assert asked.authorization == "Basic " + basic(USER, PASSWORD)


def test_the_token_server_refuses_wrong_credentials(token_registry: Registry) -> None:
    with pytest.raises(Unauthorized, match="token server refused the credentials in imageCredentials") as caught:
        digest_of(token_registry, token_registry.reference("team/app", "v1"), RegistryAuth(USER, f"not-{TOKEN}"))
    assert_token_hidden(caught.value)


def test_an_anonymous_token_that_grants_nothing_means_credentials_are_needed(token_registry: Registry) -> None:
    """Docker Hub's way with private images: anyone gets a token, which grants nothing."""
    with pytest.raises(Unauthorized, match="the registry needs credentials"):
        digest_of(token_registry, token_registry.reference("team/app", "v1"))
    assert token_registry.token_server is not None
    assert [asked.authorization for asked in token_registry.token_server.requests] == [None]


def test_public_images_are_read_with_an_anonymous_token() -> None:
    require_registry()
    with Registry(auth="token", username=USER, password=PASSWORD, anonymous_pull=True) as reg:
        pushed = reg.push_image("public", "v1")
        assert digest_of(reg, reg.reference("public", "v1")) == pushed


# --- credentials stay with the registry and its realm -----------------------------------------

@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None


@dataclass
class Recorder:
    """A loopback HTTP server that records requests and answers them with `respond`."""

    respond: Callable[[Seen], tuple[int, dict[str, str]]]
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def host(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def recorders() -> Iterator[Callable[[Callable[[Seen], tuple[int, dict[str, str]]]], Recorder]]:
    started: list[tuple[Recorder, threading.Thread]] = []

    def start(respond: Callable[[Seen], tuple[int, dict[str, str]]]) -> Recorder:
        recorder = Recorder(respond)
        recorder.server = ThreadingHTTPServer(("127.0.0.1", 0), _recording_handler(recorder))
        thread = threading.Thread(target=recorder.server.serve_forever, kwargs={"poll_interval": 0.05},
                                  daemon=True)
        thread.start()
        started.append((recorder, thread))
        return recorder
    yield start
    for recorder, thread in started:
        assert recorder.server is not None
        recorder.server.shutdown()
        recorder.server.server_close()
        thread.join()


def _recording_handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self._answer()

        def do_GET(self) -> None:
            self._answer()

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self) -> None:
            seen = Seen(self.command, self.path, self.headers.get("Authorization"))
            recorder.seen.append(seen)
            status, headers = recorder.respond(seen)
            self.send_response(status)
            for name, value in {"Content-Length": "0", **headers}.items():
                self.send_header(name, value)
            self.end_headers()
    return Handler


def test_a_redirect_to_another_host_does_not_carry_the_credentials(recorders: Callable[..., Recorder]) -> None:
    elsewhere = recorders(lambda seen: (200, {"Docker-Content-Digest": DIGEST}))

    def registry_host(seen: Seen) -> tuple[int, dict[str, str]]:
        if seen.authorization is None:
            return 401, {"WWW-Authenticate": 'Basic realm="r"'}
        return 307, {"Location": f"http://{elsewhere.host}{seen.path}"}
    first = recorders(registry_host)

    assert digest_of_host(first.host, RegistryAuth(USER, PASSWORD)) == DIGEST

    assert [seen.authorization for seen in first.seen] == [None, "Basic " + basic(USER, PASSWORD)]
    assert [seen.authorization for seen in elsewhere.seen] == [None]


def test_a_second_registry_never_sees_the_firsts_credentials(
        basic_tls: Registry, recorders: Callable[..., Recorder]) -> None:
    other = recorders(lambda seen: (401, {"WWW-Authenticate": 'Basic realm="other"'}))
    first = real_provider(basic_tls, RegistryAuth(USER, PASSWORD))
    second = registry.Provider(other.host, None, True, timeout=5)

    first.digest(parse_reference(basic_tls.reference("app", "v1")))
    with pytest.raises(Unauthorized):
        second.digest(parse_reference(f"{other.host}/app:v1"))
    first.close()
    second.close()

    assert other.seen and all(seen.authorization is None for seen in other.seen)


def test_the_bearer_token_goes_to_the_registry_and_the_password_only_to_the_realm(
        recorders: Callable[..., Recorder], token_registry: Registry) -> None:
    """A stand-in registry on its own port whose realm is the real token server."""
    tokens = token_registry.token_server
    assert tokens is not None

    def registry_host(seen: Seen) -> tuple[int, dict[str, str]]:
        if seen.authorization is None:
            return 401, {"WWW-Authenticate": f'Bearer realm="{tokens.realm}",service="{tokens.service}"'}
        return 200, {"Docker-Content-Digest": DIGEST}
    stand_in = recorders(registry_host)

    assert digest_of_host(stand_in.host, RegistryAuth(USER, PASSWORD)) == DIGEST

    assert all(seen.authorization is None or seen.authorization.startswith("Bearer ey")
               for seen in stand_in.seen)
    assert [asked.authorization for asked in tokens.requests] == ["Basic " + basic(USER, PASSWORD)]
