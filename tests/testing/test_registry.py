"""The test registry: the real docker-registry binary, its token server, and pushing over HTTP."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator

import httpx
import jwt
import pytest

from revision_controller.testing import registry as equipment
from revision_controller.testing.registry import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Registry, require_registry
from revision_controller.testing.tokenserver import TokenServer

ACCEPT_ALL = f"{OCI_INDEX}, {OCI_MANIFEST}, {DOCKER_MANIFEST}"


def sha256(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def plain() -> Iterator[Registry]:
    require_registry()
    with Registry() as reg:
        yield reg


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(verify=False, timeout=5) as http:
        yield http


def test_require_registry_skips_loudly_when_the_binary_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(equipment, "registry_binary", lambda: None)
    monkeypatch.delenv(equipment.REQUIRE_ENV, raising=False)

    with pytest.raises(pytest.skip.Exception, match="docker-registry not installed: run `make test`"):
        require_registry()


def test_require_registry_fails_when_ci_says_the_registry_must_be_there(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(equipment, "registry_binary", lambda: None)
    monkeypatch.setenv(equipment.REQUIRE_ENV, "1")

    with pytest.raises(pytest.fail.Exception, match="apt-get install docker-registry"):
        require_registry()


def test_an_unknown_auth_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="auth must be one of"):
        Registry(auth="oauth")


def test_the_registry_serves_the_v2_api_on_loopback(plain: Registry, client: httpx.Client) -> None:
    assert plain.host.startswith("127.0.0.1:") and plain.url == f"http://{plain.host}"
    assert plain.reference("app", "v1") == f"{plain.host}/app:v1"
    answer = client.get(f"{plain.url}/v2/")
    assert answer.status_code == 200
    assert answer.headers["Docker-Distribution-Api-Version"] == "registry/2.0"


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST])
def test_a_pushed_image_is_served_byte_for_byte(plain: Registry, client: httpx.Client, media_type: str) -> None:
    digest = plain.push_image("team/app", "v1", content=b"hello", media_type=media_type)

    answer = client.get(f"{plain.url}/v2/team/app/manifests/v1", headers={"Accept": ACCEPT_ALL})

    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == media_type
    assert answer.headers["Docker-Content-Digest"] == digest == sha256(answer.content)
    assert plain.stored_blob(digest) == answer.content


def test_the_layer_is_a_gzipped_tar_of_the_content_and_the_config_names_it(plain: Registry) -> None:
    manifest = json.loads(plain.stored_blob(plain.push_image("layered", "v1", content=b"payload")))

    layer = plain.stored_blob(manifest["layers"][0]["digest"])
    config = json.loads(plain.stored_blob(manifest["config"]["digest"]))

    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:gz") as tar:
        assert tar.extractfile("content").read() == b"payload"  # type: ignore[union-attr]
    assert config["rootfs"]["diff_ids"] == [sha256(gzip.decompress(layer))]
    assert manifest["layers"][0]["size"] == len(layer)


def test_pushing_again_moves_the_tag_and_equal_content_gives_equal_digests(plain: Registry) -> None:
    first = plain.push_image("moving", "v1", content=b"one")
    second = plain.push_image("moving", "v1", content=b"two")
    again = plain.push_image("moving", "v1", content=b"two")

    assert first != second == again


def test_an_index_lists_one_stored_manifest_per_platform(plain: Registry, client: httpx.Client) -> None:
    digest = plain.push_index("multi", "v1", platforms=["linux/amd64", "linux/arm64"])

    answer = client.get(f"{plain.url}/v2/multi/manifests/v1", headers={"Accept": ACCEPT_ALL})

    assert answer.headers["Docker-Content-Digest"] == digest == sha256(plain.stored_blob(digest))
    index = answer.json()
    assert index["mediaType"] == OCI_INDEX
    assert [(m["platform"]["os"], m["platform"]["architecture"]) for m in index["manifests"]] == \
        [("linux", "amd64"), ("linux", "arm64")]
    for listed in index["manifests"]:
        assert client.head(f"{plain.url}/v2/multi/manifests/{listed['digest']}",
                           headers={"Accept": OCI_MANIFEST}).status_code == 200


def test_secret_data_is_a_dockerconfigjson_for_the_registry(plain: Registry) -> None:
    config = json.loads(base64.b64decode(plain.secret_data("u", "p")[".dockerconfigjson"]))

    assert config == {"auths": {plain.host: {"auth": base64.b64encode(b"u:p").decode()}}}


def test_htpasswd_mode_challenges_with_basic_and_takes_only_the_password(client: httpx.Client) -> None:
    require_registry()
    with Registry(auth="htpasswd", username="alice", password="s3cret") as reg:
        digest = reg.push_image("app", "v1")
        manifest = f"{reg.url}/v2/app/manifests/v1"

        refused = client.head(manifest, headers={"Accept": OCI_MANIFEST})
        wrong = client.head(manifest, headers={"Accept": OCI_MANIFEST, "Authorization": basic("alice", "nope")})
        right = client.head(manifest, headers={"Accept": OCI_MANIFEST, "Authorization": basic("alice", "s3cret")})

    assert refused.status_code == wrong.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert right.status_code == 200 and right.headers["Docker-Content-Digest"] == digest


def test_token_mode_challenges_with_the_token_servers_realm_and_verifies_its_tokens(client: httpx.Client) -> None:
    require_registry()
    with Registry(auth="token", username="alice", password="s3cret") as reg:
        tokens = reg.token_server
        assert tokens is not None
        reg.push_image("team/app", "v1")
        manifest = f"{reg.url}/v2/team/app/manifests/v1"

        challenge = client.head(manifest).headers["WWW-Authenticate"]
        expected = f'Bearer realm="{tokens.realm}",service="{tokens.service}",scope="repository:team/app:pull"'
        granted = client.get(tokens.realm, params={"service": tokens.service, "scope": "repository:team/app:pull"},
                             headers={"Authorization": basic("alice", "s3cret")}).json()
        pulled = client.head(manifest, headers={"Accept": OCI_MANIFEST,
                                                "Authorization": f"Bearer {granted['token']}"})
        with TokenServer("alice", "s3cret") as impostor:  # a key the registry does not trust
            forged = impostor.issue("alice", ["repository:team/app:pull"], may_push=False)
        refused = client.head(manifest, headers={"Authorization": f"Bearer {forged}"})

    assert challenge == expected
    assert pulled.status_code == 200
    assert refused.status_code == 401
    assert granted["access_token"] == granted["token"] and granted["expires_in"] == tokens.expires_in


def test_tokens_are_es256_jwts_with_the_signing_certificate_and_the_granted_access() -> None:
    with TokenServer("alice", "s3cret") as tokens:
        token = tokens.issue("alice", ["repository:team/app:pull,push,delete", "registry:catalog:*"],
                             may_push=True)

    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, tokens.signer.key.public_key(), algorithms=["ES256"], audience=tokens.service,
                        issuer=tokens.issuer)
    assert header["alg"] == "ES256" and header["x5c"] == [tokens.signer.certificate_der_base64]
    assert claims["sub"] == "alice" and claims["nbf"] <= claims["iat"] < claims["exp"]
    assert claims["access"] == [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}]


def test_the_token_server_records_requests_and_refuses_wrong_credentials(client: httpx.Client) -> None:
    with TokenServer("alice", "s3cret", anonymous_pull=True) as tokens:
        wrong = client.get(tokens.realm, params={"scope": "repository:a:pull"},
                           headers={"Authorization": basic("alice", "nope")})
        anonymous = client.get(tokens.realm, params={"service": "svc", "scope": "repository:a:pull,push"})
        missing = client.get(tokens.url + "/elsewhere")

    assert wrong.status_code == 401 and missing.status_code == 404
    claims = jwt.decode(anonymous.json()["token"], options={"verify_signature": False})
    assert claims["sub"] == "anonymous"
    assert claims["access"] == [{"type": "repository", "name": "a", "actions": ["pull"]}]
    first, second = tokens.requests
    assert (first.authorization, first.scopes, first.service) == (basic("alice", "nope"), ["repository:a:pull"], None)
    assert (second.authorization, second.scopes, second.service) == (None, ["repository:a:pull,push"], "svc")


def test_tls_mode_serves_https_with_a_self_signed_certificate(client: httpx.Client) -> None:
    require_registry()
    with Registry(tls=True) as reg:
        assert reg.url == f"https://{reg.host}"
        assert client.get(f"{reg.url}/v2/").status_code == 200
        with httpx.Client(timeout=5) as verifying, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY"):
            verifying.get(f"{reg.url}/v2/")


def test_stopping_ends_the_process_and_removes_everything(client: httpx.Client) -> None:
    require_registry()
    with Registry(auth="token") as reg:
        url, realm = reg.url, reg.token_server.realm  # type: ignore[union-attr]
        root = reg._root
        assert root is not None and root.is_dir()

    assert not root.exists()
    for gone in (f"{url}/v2/", realm):
        with pytest.raises(httpx.ConnectError):
            client.get(gone)


def test_the_log_holds_what_the_registry_said(plain: Registry, client: httpx.Client) -> None:
    client.head(f"{plain.url}/v2/nothing-here/manifests/v1")
    assert "manifest unknown" in plain.log or "repository name not known" in plain.log
