"""deploy/bundle.yaml: valid Kubernetes objects, named as the contract says, least privilege."""

import json
from pathlib import Path

import pytest
import yaml
from kubernetes import client

BUNDLE = Path(__file__).resolve().parents[2] / "deploy" / "bundle.yaml"


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return [doc for doc in yaml.safe_load_all(BUNDLE.read_text()) if doc]


def by_kind(objects: list[dict], kind: str) -> dict:
    (found,) = [obj for obj in objects if obj["kind"] == kind]
    return found


def test_every_object_is_a_valid_model_with_no_unknown_field(objects: list[dict]) -> None:
    api = client.ApiClient()
    for obj in objects:
        model = api.deserialize(json.dumps(obj), f"V1{obj['kind']}", "application/json")
        assert api.sanitize_for_serialization(model) == obj, obj["kind"]


def test_names_and_labels_follow_the_contract(objects: list[dict]) -> None:
    assert by_kind(objects, "Namespace")["metadata"]["name"] == "openfunction"
    for kind in ("ServiceAccount", "Deployment", "ClusterRole", "ClusterRoleBinding"):
        assert by_kind(objects, kind)["metadata"]["name"].startswith("openfunction-revision-controller")
    deployment = by_kind(objects, "Deployment")
    assert deployment["metadata"]["namespace"] == "openfunction"
    assert deployment["spec"]["template"]["metadata"]["labels"]["control-plane"] == "revision-controller"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == by_kind(objects, "ServiceAccount")["metadata"]["name"]


def test_rbac_grants_exactly_what_the_daemon_calls(objects: list[dict]) -> None:
    granted = {(group, resource): set(rule["verbs"])
               for rule in by_kind(objects, "ClusterRole")["rules"]
               for group in rule["apiGroups"] for resource in rule["resources"]}
    assert granted == {
        ("core.openfunction.io", "functions"): {"get", "list", "watch"},
        ("core.openfunction.io", "functions/status"): {"get", "patch"},
        ("", "secrets"): {"get"},
        ("", "events"): {"create", "patch"},
    }
    binding = by_kind(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == by_kind(objects, "ClusterRole")["metadata"]["name"]


def test_the_container_runs_without_privilege(objects: list[dict]) -> None:
    pod = by_kind(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = pod["containers"]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False,
                                            "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    assert container["resources"]["limits"] and container["resources"]["requests"]
