"""What real clients other than the Python one rely on: HTTPS with the stand-in's own CA, content
negotiation (aggregated discovery, Tables) and the openapi index `kubectl apply` reads."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from revision_controller.testing import ApiServer
from revision_controller.testing.apiserver import TOKEN
from revision_controller.testing.tables import find, human_duration
from tests.testing.test_apiserver import FUNCTIONS, GROUP, NS, PLURAL, V1BETA2, RawResponse, function

TABLE = ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
         "application/json")
AGGREGATED = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
              "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")


def get(server: ApiServer, path: str, accept: str = "application/json") -> RawResponse:
    connection = http.client.HTTPSConnection(server.host, server.port, timeout=5, context=server.client_context())
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}", "Accept": accept})
        response = connection.getresponse()
        return RawResponse(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


def test_the_kubeconfig_names_the_ca_and_the_token(server: ApiServer, tmp_path: Path) -> None:
    kubeconfig = yaml.safe_load(server.write_kubeconfig(tmp_path / "kubeconfig").read_text())
    (cluster,) = kubeconfig["clusters"]
    assert cluster["cluster"]["server"] == f"https://127.0.0.1:{server.port}"
    assert server.certificates is not None
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == server.certificates.ca_pem
    assert kubeconfig["users"][0]["user"]["token"] == TOKEN


def test_a_client_that_does_not_trust_the_ca_is_refused(server: ApiServer) -> None:
    connection = http.client.HTTPSConnection(server.host, server.port, timeout=5,
                                             context=ssl.create_default_context())
    with pytest.raises(ssl.SSLCertVerificationError):
        connection.request("GET", "/version")
    connection.close()


def test_plain_http_stays_available(tmp_path: Path) -> None:
    with ApiServer(tls=False) as server:
        assert server.url.startswith("http://") and server.client_context() is None
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        assert "certificate-authority-data" not in kubeconfig.read_text()
        api = config.new_client_from_config(config_file=str(kubeconfig))
        core = client.CoreV1Api(api)
        core.create_namespaced_secret(NS, client.V1Secret(metadata=client.V1ObjectMeta(name="s")))
        assert [s.metadata.name for s in core.list_namespaced_secret(NS).items] == ["s"]
        api.close()


def test_aggregated_discovery_when_asked_legacy_otherwise(server: ApiServer) -> None:
    apis = get(server, "/apis", AGGREGATED)
    assert apis.headers["Content-Type"] == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    groups = {item["metadata"]["name"]: item["versions"] for item in json.loads(apis.body)["items"]}
    assert [version["version"] for version in groups[GROUP]] == ["v1beta2", "v1beta1"]  # preferred first
    (functions,) = groups[GROUP][0]["resources"]
    assert (functions["resource"], functions["shortNames"], functions["subresources"][0]["subresource"]) == (
        PLURAL, ["fn"], "status")
    core = json.loads(get(server, "/api", AGGREGATED).body)["items"][0]["versions"][0]
    assert {resource["resource"] for resource in core["resources"]} == {"secrets", "events"}
    assert json.loads(get(server, "/apis").body)["kind"] == "APIGroupList"


def test_openapi_v3_says_which_patches_each_kind_takes(server: ApiServer) -> None:
    index = json.loads(get(server, "/openapi/v3").body)["paths"]
    url = index[f"apis/{GROUP}/{V1BETA2}"]["serverRelativeURL"]
    document = json.loads(get(server, url).body)
    patch = document["paths"][f"/apis/{GROUP}/{V1BETA2}/namespaces/{{namespace}}/{PLURAL}/{{name}}"]["patch"]
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]  # a CRD
    assert "fieldValidation" in [parameter["name"] for parameter in patch["parameters"]]
    core = json.loads(get(server, index["api/v1"]["serverRelativeURL"]).body)
    secret_patch = core["paths"]["/api/v1/namespaces/{namespace}/secrets/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" in secret_patch["requestBody"]["content"]
    assert get(server, "/openapi/v2").status == 404


def test_functions_as_a_table_with_the_printer_columns(server: ApiServer) -> None:
    server.create({**function("f"), "status": {"build": {"state": "Succeeded"}, "addresses": [
        {"type": "External", "value": "x"}, {"type": "Internal", "value": "f.default.svc"}]}})
    server.create(function("g"))
    answer = get(server, f"/apis/{GROUP}/{V1BETA2}/namespaces/{NS}/{PLURAL}", TABLE)
    table = json.loads(answer.body)
    assert (answer.headers["Content-Type"], table["kind"]) == ("application/json;as=Table;v=v1;g=meta.k8s.io", "Table")
    assert [column["name"] for column in table["columnDefinitions"]] == [
        "Name", "BuildState", "ServingState", "Builder", "Serving", "Address", "Age"]
    f, g = (row["cells"] for row in table["rows"])
    assert f[:6] == ["f", "Succeeded", None, None, None, "f.default.svc"] and f[6].endswith("s")
    assert g[:6] == ["g", None, None, None, None, None]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    secrets = json.loads(get(server, f"/api/v1/namespaces/{NS}/secrets", TABLE).body)
    assert secrets["kind"] == "SecretList"  # no printer columns here: the JSON the client also accepts


def test_server_side_apply_creates_and_merges(server: ApiServer, custom: client.CustomObjectsApi) -> None:
    applied = {**function("f", image="a"), "metadata": {"name": "f", "labels": {"app": "f"}}}
    custom.patch_namespaced_custom_object(*FUNCTIONS, "f", applied, field_manager="me",
                                          _content_type="application/apply-patch+yaml")
    created = server.get(f"{GROUP}/{V1BETA2}", "Function", NS, "f")
    again = custom.patch_namespaced_custom_object(*FUNCTIONS, "f", {**applied, "spec": {"image": "b"}},
                                                  field_manager="me", _content_type="application/apply-patch+yaml")
    assert created and (created["spec"], created["metadata"]["generation"]) == ({"image": "a"}, 1)
    assert (again["spec"], again["metadata"]["generation"]) == ({"image": "b"}, 2)
    assert [r.status for r in server.requests] == [201, 200]


@pytest.mark.parametrize(("seconds", "shown"), [(0, "0s"), (119, "119s"), (150, "2m30s"), (600, "10m"),
                                                (3 * 3600 + 60, "3h1m"), (30 * 3600, "30h"), (50 * 3600, "2d2h"),
                                                (400 * 86400, "400d"), (-5, "<invalid>")])
def test_ages_read_as_kubectl_shows_them(seconds: int, shown: str) -> None:
    assert human_duration(seconds) == shown


def test_the_printer_columns_json_paths() -> None:
    obj = {"a": {"b": [{"t": "x", "v": 1}, {"t": "y", "v": 2}]}}
    assert find(obj, '.a.b[?(@.t=="y")].v') == [2]
    assert find(obj, "{.a.b[0].t}") == ["x"] and find(obj, ".a.missing") == []


def test_dry_runs_answer_as_the_write_would_and_store_nothing(server: ApiServer, custom: client.CustomObjectsApi,
                                                              core: client.CoreV1Api) -> None:
    created = custom.create_namespaced_custom_object(*FUNCTIONS, function("f", image="a"), dry_run="All")
    assert created["metadata"]["uid"] and "resourceVersion" not in created["metadata"]
    assert server.list(f"{GROUP}/{V1BETA2}", "Function") == []
    server.create(function("f", image="a"))
    before = server.resource_version
    stored = server.get(f"{GROUP}/{V1BETA2}", "Function", NS, "f")
    assert stored is not None
    replaced = custom.replace_namespaced_custom_object(*FUNCTIONS, "f", {**stored, "spec": {"image": "b"}},
                                                       dry_run="All")
    patched = custom.patch_namespaced_custom_object_status(*FUNCTIONS, "f", {"status": {"phase": "x"}}, dry_run="All")
    assert (replaced["spec"], replaced["metadata"]["generation"], patched["status"]) == (
        {"image": "b"}, 2, {"phase": "x"})
    custom.delete_namespaced_custom_object(*FUNCTIONS, "f", dry_run="All")
    assert server.resource_version == before
    assert server.get(f"{GROUP}/{V1BETA2}", "Function", NS, "f") == stored
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_secret(NS, client.V1Secret(metadata=client.V1ObjectMeta(name="s")), dry_run="Some")
    assert refused.value.status == 400 and 'supported values: "All"' in json.loads(refused.value.body)["message"]
