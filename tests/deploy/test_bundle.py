"""deploy/bundle.yaml: valid Kubernetes objects, named as the contract says, least privilege, hardened."""

from __future__ import annotations

import json
import re

from kubernetes import client

from tests.deploy.conftest import BUNDLE, ROOT, Tool

FUNCTIONS = "core.openfunction.io"

# Every Kubernetes API method the daemon calls, with the permissions it needs.
# The custom-object methods only ever address Functions; a list method also
# serves watches, because watch.Watch().stream is handed the list method.
PERMISSIONS = {
    "list_namespaced_custom_object": {(FUNCTIONS, "functions", "list"), (FUNCTIONS, "functions", "watch")},
    "list_cluster_custom_object": {(FUNCTIONS, "functions", "list"), (FUNCTIONS, "functions", "watch")},
    "get_namespaced_custom_object": {(FUNCTIONS, "functions", "get")},
    # Only the requested-at annotation, by which a standby passes a webhook to the leader.
    "patch_namespaced_custom_object": {(FUNCTIONS, "functions", "patch")},
    "patch_namespaced_custom_object_status": {(FUNCTIONS, "functions/status", "patch")},
    "read_namespaced_secret": {("", "secrets", "get")},
    "create_namespaced_event": {("", "events", "create")},
    "patch_namespaced_event": {("", "events", "patch")},
    "read_namespaced_lease": {("coordination.k8s.io", "leases", "get")},
    "create_namespaced_lease": {("coordination.k8s.io", "leases", "create")},
    "replace_namespaced_lease": {("coordination.k8s.io", "leases", "update")},
}
WEBHOOK_SERVICE = "revision-controller-webhook"
WEBHOOK_SECRET_DIR = "/etc/revision-controller/webhook"
API_METHOD = re.compile(r"\.((?:read|list|get|create|patch|replace|delete|watch)_(?:namespaced|cluster)_\w+)")


def by_kind(objects: list[dict], kind: str) -> dict:
    (found,) = [obj for obj in objects if obj["kind"] == kind]
    return found


def service(objects: list[dict], name: str) -> dict:
    (found,) = [obj for obj in objects if obj["kind"] == "Service" and obj["metadata"]["name"] == name]
    return found


def grants(role: dict) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for rule in role["rules"]
            for group in rule["apiGroups"] for resource in rule["resources"] for verb in rule["verbs"]}


def pod_spec(objects: list[dict]) -> dict:
    return by_kind(objects, "Deployment")["spec"]["template"]["spec"]


def container(objects: list[dict]) -> dict:
    (only,) = pod_spec(objects)["containers"]
    return only


def daemon_api_methods() -> set[str]:
    """Kubernetes API methods named in the daemon's code; the demo and test equipment run elsewhere."""
    sources = [path for package in ("revision_controller", "providers") for path in (ROOT / package).rglob("*.py")
               if "testing" not in path.parts and path.name != "demo.py"]
    return {method for path in sources for method in API_METHOD.findall(path.read_text())}


def test_every_object_is_a_valid_model_with_no_unknown_field(bundle: list[dict]) -> None:
    api = client.ApiClient()
    for obj in bundle:
        model = api.deserialize(json.dumps(obj), f"V1{obj['kind']}", "application/json")
        assert api.sanitize_for_serialization(model) == obj, obj["kind"]


def test_kubectl_reads_the_bundle_as_these_tests_do(kubectl: Tool, bundle: list[dict]) -> None:
    # Offline, kubectl create/apply --dry-run=client still ask a server for discovery;
    # `label --local` decodes without one. Removing an absent label changes nothing
    # but an empty labels map.
    output = kubectl("label", "--local", "-o", "json", "-f", BUNDLE, "absent-")
    # One indented JSON document per object: each starts with "{" at the start of a line.
    read = [json.loads(chunk) for chunk in re.split(r"(?m)^(?=\{)", output) if chunk.strip()]
    for obj in read:
        if not obj["metadata"]["labels"]:
            del obj["metadata"]["labels"]
    assert read == bundle


def test_names_and_labels_follow_the_contract(bundle: list[dict]) -> None:
    assert by_kind(bundle, "Namespace")["metadata"]["name"] == "openfunction"
    for obj in bundle:
        if obj["kind"] != "Namespace":
            # The webhook Service is named as the issue that added it says, like its Secret.
            name = obj["metadata"]["name"]
            assert name.startswith("openfunction-revision-controller") or name == WEBHOOK_SERVICE
            assert obj["metadata"]["labels"]["control-plane"] == "revision-controller"
            assert obj["metadata"].get("namespace", "openfunction") == "openfunction"
    deployment = by_kind(bundle, "Deployment")
    assert deployment["spec"]["selector"]["matchLabels"] == {"control-plane": "revision-controller"}
    assert deployment["spec"]["template"]["metadata"]["labels"]["control-plane"] == "revision-controller"
    assert pod_spec(bundle)["serviceAccountName"] == by_kind(bundle, "ServiceAccount")["metadata"]["name"]
    assert container(bundle)["image"] == "openfunction/revision-controller-python:0.1.0"
    assert container(bundle)["imagePullPolicy"] == "IfNotPresent"


def test_rbac_grants_exactly_the_listed_verbs(bundle: list[dict]) -> None:
    assert grants(by_kind(bundle, "ClusterRole")) == {
        (FUNCTIONS, "functions", "get"), (FUNCTIONS, "functions", "list"), (FUNCTIONS, "functions", "watch"),
        (FUNCTIONS, "functions", "patch"), (FUNCTIONS, "functions/status", "patch"),
        ("", "secrets", "get"),
        ("", "events", "create"), ("", "events", "patch"),
    }
    assert grants(by_kind(bundle, "Role")) == {
        ("coordination.k8s.io", "leases", verb) for verb in ("get", "create", "update")}


def test_bindings_give_the_roles_to_the_service_account(bundle: list[dict]) -> None:
    account = by_kind(bundle, "ServiceAccount")["metadata"]
    for binding_kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        binding = by_kind(bundle, binding_kind)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind,
                                      "name": by_kind(bundle, role_kind)["metadata"]["name"]}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"],
                                        "namespace": account["namespace"]}]


def test_leases_are_granted_only_in_the_controllers_namespace(bundle: list[dict]) -> None:
    assert by_kind(bundle, "Role")["metadata"]["namespace"] == "openfunction"
    assert not any(resource == "leases" for _, resource, _ in grants(by_kind(bundle, "ClusterRole")))


def test_rbac_grants_every_api_call_the_daemon_makes(bundle: list[dict]) -> None:
    called = daemon_api_methods()
    assert "read_namespaced_secret" in called, "the scan of the daemon's code found nothing: is it broken?"
    unknown = called - PERMISSIONS.keys()
    assert not unknown, f"new API calls {unknown}: add them to PERMISSIONS here and grant them in the bundle"
    granted = grants(by_kind(bundle, "ClusterRole")) | grants(by_kind(bundle, "Role"))
    needed = set().union(*(PERMISSIONS[method] for method in called))
    assert needed <= granted, f"not granted: {needed - granted}"


def test_the_container_runs_without_privilege(bundle: list[dict]) -> None:
    pod = pod_spec(bundle)
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    assert container(bundle)["securityContext"] == {"allowPrivilegeEscalation": False,
                                                    "readOnlyRootFilesystem": True,
                                                    "capabilities": {"drop": ["ALL"]}}
    assert pod["terminationGracePeriodSeconds"] == 30
    assert container(bundle)["resources"]["limits"] and container(bundle)["resources"]["requests"]


def test_tmp_is_a_small_writable_scratch_volume(bundle: list[dict]) -> None:
    (volume,) = [volume for volume in pod_spec(bundle)["volumes"] if "emptyDir" in volume]
    assert volume["emptyDir"]["sizeLimit"]
    (mount,) = [mount for mount in container(bundle)["volumeMounts"] if mount["name"] == volume["name"]]
    assert mount == {"name": volume["name"], "mountPath": "/tmp"}


def test_probes_and_metrics_are_served_where_the_arguments_bind_them(bundle: list[dict]) -> None:
    main = container(bundle)
    assert {port["name"]: port["containerPort"] for port in main["ports"]} == {
        "metrics": 8080, "probes": 8081, "webhook": 8090}
    assert "--health-probe-bind-address=:8081" in main["args"]
    assert "--metrics-bind-address=:8080" in main["args"]
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8081}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8081}
    metrics = service(bundle, "openfunction-revision-controller-metrics")
    assert metrics["spec"]["selector"] == by_kind(bundle, "Deployment")["spec"]["selector"]["matchLabels"]
    assert metrics["spec"]["ports"] == [{"name": "metrics", "port": 8080, "targetPort": "metrics"}]


def test_leader_election_is_on_with_the_pods_identity(bundle: list[dict]) -> None:
    main = container(bundle)
    assert "--leader-elect" in main["args"]
    assert "--log-format=json" in main["args"]
    assert {env["name"]: env["valueFrom"]["fieldRef"]["fieldPath"] for env in main["env"]} == {
        "POD_NAMESPACE": "metadata.namespace", "POD_NAME": "metadata.name"}


def test_webhooks_are_received_on_port_80_of_their_service(bundle: list[dict]) -> None:
    webhook = service(bundle, WEBHOOK_SERVICE)
    assert webhook["metadata"]["namespace"] == "openfunction"
    assert webhook["spec"]["ports"] == [{"name": "webhook", "port": 80, "targetPort": "webhook"}]
    pod_labels = by_kind(bundle, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert webhook["spec"]["selector"].items() <= pod_labels.items()
    main = container(bundle)
    assert {"name": "webhook", "containerPort": 8090} in main["ports"]
    assert "--webhook-bind-address=:8090" in main["args"]
    assert f"--webhook-secret-file={WEBHOOK_SECRET_DIR}/secret" in main["args"]


def test_the_webhook_secret_is_optional_and_mounted_read_only(bundle: list[dict]) -> None:
    """The pod starts without the Secret (and then receives no webhooks); the daemon reads the key `secret`."""
    (volume,) = [volume for volume in pod_spec(bundle)["volumes"] if "secret" in volume]
    assert volume["secret"] == {"secretName": WEBHOOK_SERVICE, "optional": True,
                                "items": [{"key": "secret", "path": "secret"}]}
    (mount,) = [mount for mount in container(bundle)["volumeMounts"] if mount["name"] == volume["name"]]
    assert mount == {"name": volume["name"], "mountPath": WEBHOOK_SECRET_DIR, "readOnly": True}
    assert container(bundle)["securityContext"]["readOnlyRootFilesystem"] is True
