"""What a Secret may hold, and what its owner is told when it holds something else."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from kubernetes import client

from providers import RegistryAuth
from revision_controller.credentials import CredentialsError, CredentialStore, git_token, registry_auth_in
from revision_controller.kube import api_client
from revision_controller.targets import SecretRef
from revision_controller.testing import ApiServer

REF = SecretRef("ns", "creds")
SECRET_WORD = "s3cret-do-not-leak"
CONFIG = "kubernetes.io/dockerconfigjson"


def b64(raw: bytes | str) -> str:
    return base64.b64encode(raw.encode() if isinstance(raw, str) else raw).decode()


def config(document: object) -> dict[str, str]:
    return {".dockerconfigjson": b64(json.dumps(document))}


def test_a_token_is_decoded_and_trimmed() -> None:
    assert git_token(REF, {"password": b64(f"  {SECRET_WORD}\n")}) == SECRET_WORD


@pytest.mark.parametrize("data, said", [
    ({}, "has no key 'password'"),
    ({"password": "not base64!"}, "not base64-encoded text"),
    ({"password": b64(b"\xff\xfe" + SECRET_WORD.encode())}, "not base64-encoded text"),
    ({"password": b64(" \n ")}, "is empty"),
    ({"password": b64(f"{SECRET_WORD}\n{SECRET_WORD}")}, "line breaks"),
    ({"password": b64(f"{SECRET_WORD} {SECRET_WORD}")}, "spaces"),
    ({"password": b64(f"{SECRET_WORD}\x00")}, "printable ASCII"),
    ({"password": b64(f"{SECRET_WORD}é")}, "printable ASCII"),
    ({"password": b64(SECRET_WORD * 2000)}, "more than a git token has"),
])
def test_a_token_that_cannot_go_into_a_header_is_refused_naming_the_secret_not_the_token(
        data: dict[str, str], said: str) -> None:
    with pytest.raises(CredentialsError) as refused:
        git_token(REF, data)
    message = str(refused.value)
    assert said in message and "Secret ns/creds" in message
    assert SECRET_WORD not in message and len(message) < 300


def test_a_registry_auth_is_read_for_its_registry() -> None:
    auth = b64(f"user:{SECRET_WORD}")
    assert registry_auth_in(REF, CONFIG, config({"auths": {"r.example:5000": {"auth": auth}}}),
                            "r.example:5000") == RegistryAuth("user", SECRET_WORD)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("data, said", [
    ({".dockerconfigjson": b64('{"auths": ' + nested(100_000) + "}")}, "nested far deeper"),
    ({".dockerconfigjson": b64(nested(2_000))}, "nested far deeper"),
    (config({"auths": [SECRET_WORD]}), "'auths' mapping"),
    (config({"auths": {"r.example:5000": [SECRET_WORD]}}), "is not a mapping"),
    (config({"auths": {"r.example:5000": {"auth": 12345}}}), "'auth' is not base64"),
    (config({"auths": {"r.example:5000": {"auth": json.loads(nested(900))}}}), "'auth' is not base64"),
    (config({"auths": {"r.example:5000": {"auth": SECRET_WORD}}}), "'auth' is not base64"),
    (config({"auths": {"r.example:5000": {"auth": b64(SECRET_WORD)}}}), "'auth' is not base64"),
    (config({"auths": {"r.example:5000": {"auth": b64(b"u:\xff" + SECRET_WORD.encode())}}}),
     "'auth' is not base64"),
    (config({"auths": {"r.example:5000": {"password": SECRET_WORD}}}), "neither 'auth' nor"),
    (config({"auths": {"r.example:5000": {"username": 7, "password": SECRET_WORD}}}), "neither 'auth' nor"),
    ({".dockerconfigjson": b64(b"\xff\xfe\x00{" + SECRET_WORD.encode())}, "not base64-encoded JSON"),
])
def test_a_docker_config_of_another_shape_is_refused_naming_the_secret_not_its_content(
        data: dict[str, str], said: str) -> None:
    with pytest.raises(CredentialsError) as refused:
        registry_auth_in(REF, CONFIG, data, "r.example:5000")
    message = str(refused.value)
    assert said in message and "Secret ns/creds named in spec.imageCredentials" in message
    assert SECRET_WORD not in message and len(message) < 300


def test_a_secret_larger_than_kubernetes_allows_is_refused_before_it_is_parsed(
        apiserver: ApiServer, tmp_path: Path) -> None:
    api = api_client(str(tmp_path / "kubeconfig"))
    client.CoreV1Api(api).create_namespaced_secret("ns", {
        "metadata": {"name": "creds"}, "type": CONFIG,
        "data": {".dockerconfigjson": b64(b"{" * (1024 * 1024 + 1))}})
    store = CredentialStore(api)
    with pytest.raises(CredentialsError, match=r"Secret ns/creds holds \d+ characters of data, more than a "
                                               r"Kubernetes Secret may \(1 MiB\)"):
        store.registry_auth(REF, "r.example:5000")
    with pytest.raises(CredentialsError, match="more than a Kubernetes Secret may"):
        store.token(REF)


def test_a_missing_secret_is_remembered_like_a_read_one_until_forgotten(apiserver: ApiServer, tmp_path: Path) -> None:
    api = api_client(str(tmp_path / "kubeconfig"))
    store = CredentialStore(api)
    with pytest.raises(CredentialsError, match="Secret ns/creds does not exist"):
        store.token(REF)
    client.CoreV1Api(api).create_namespaced_secret("ns", {
        "metadata": {"name": "creds"}, "data": {"password": b64(b"token")}})
    with pytest.raises(CredentialsError, match="does not exist"):  # what the failed poll saw
        store.token(REF)
    store.forget(REF)
    assert store.token(REF) == "token"
