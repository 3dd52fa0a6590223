"""deploy/chart: lints, renders the bundle's objects when switched on, nothing when off, honours its values."""

from __future__ import annotations

import copy
import shutil
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import CHART, ROOT, Tool, parse

ENABLE = ("--set", "revisionController.enable=true")
WEBHOOK = ("--set", "revisionController.webhook.enabled=true")
WEBHOOK_SERVICE = ("Service", "revision-controller-webhook")


def render(helm: Tool, *args: str, chart: Path = CHART, release: str = "any-release-name") -> list[dict]:
    return parse(helm("template", release, chart, "--namespace", "openfunction", *args))


def keyed(objects: list[dict]) -> dict[tuple[str, str], dict]:
    found = {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}
    assert len(found) == len(objects), "two objects share a kind and name"
    return found


def deployment(objects: list[dict]) -> dict:
    return keyed(objects)[("Deployment", "openfunction-revision-controller")]


def without_namespace(bundle: list[dict]) -> dict[tuple[str, str], dict]:
    return {key: obj for key, obj in keyed(bundle).items() if key[0] != "Namespace"}


def without_webhooks(objects: dict[tuple[str, str], dict]) -> dict[tuple[str, str], dict]:
    """The bundle's objects as they would be with webhooks off: the receiver not bound, nothing else for it."""
    objects = copy.deepcopy(objects)
    del objects[WEBHOOK_SERVICE]
    (main,) = deployment(list(objects.values()))["spec"]["template"]["spec"]["containers"]
    pod = deployment(list(objects.values()))["spec"]["template"]["spec"]
    main["args"] = [arg for arg in main["args"] if not arg.startswith("--webhook-")] + ["--webhook-bind-address=0"]
    main["ports"] = [port for port in main["ports"] if port["name"] != "webhook"]
    main["volumeMounts"] = [mount for mount in main["volumeMounts"] if mount["name"] != "webhook-secret"]
    pod["volumes"] = [volume for volume in pod["volumes"] if volume["name"] != "webhook-secret"]
    role = objects[("ClusterRole", "openfunction-revision-controller-role")]
    role["rules"] = [rule for rule in role["rules"] if rule != {
        "apiGroups": ["core.openfunction.io"], "resources": ["functions"], "verbs": ["patch"]}]
    return objects


@pytest.mark.parametrize("switch", [(), ENABLE, ENABLE + WEBHOOK], ids=["off", "on", "on-with-webhooks"])
def test_lints(helm: Tool, switch: tuple[str, ...]) -> None:
    helm("lint", "--strict", CHART, *switch)


def test_renders_nothing_when_switched_off(helm: Tool) -> None:
    assert render(helm) == []


def test_renders_the_bundle_less_its_namespace_when_switched_on_with_webhooks(
        helm: Tool, bundle: list[dict]) -> None:
    assert keyed(render(helm, *ENABLE, *WEBHOOK)) == without_namespace(bundle)


def test_webhooks_are_off_by_default_and_leave_no_trace(helm: Tool, bundle: list[dict]) -> None:
    """No Service, port, Secret volume or patch verb on Functions; the receiver is told not to bind."""
    assert keyed(render(helm, *ENABLE)) == without_webhooks(without_namespace(bundle))


def test_the_webhook_secret_name_is_a_value(helm: Tool) -> None:
    objects = render(helm, *ENABLE, *WEBHOOK, "--set", "revisionController.webhook.secretName=hooks-secret")
    pod = deployment(objects)["spec"]["template"]["spec"]
    (volume,) = [volume for volume in pod["volumes"] if volume["name"] == "webhook-secret"]
    assert volume["secret"] == {"secretName": "hooks-secret", "optional": True,
                                "items": [{"key": "secret", "path": "secret"}]}
    assert WEBHOOK_SERVICE in keyed(objects)


def test_namespaced_objects_follow_the_release_namespace(helm: Tool) -> None:
    objects = parse(helm("template", "rc", CHART, "--namespace", "elsewhere", *ENABLE, *WEBHOOK))
    assert WEBHOOK_SERVICE in keyed(objects)
    for obj in objects:
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == "elsewhere", obj["kind"]
        for subject in obj.get("subjects", []):
            assert subject["namespace"] == "elsewhere"


def test_values_are_honoured(helm: Tool, bundle: list[dict]) -> None:
    objects = render(helm, *ENABLE, *WEBHOOK,
                     "--set", "revisionController.image.repository=registry.example/rc",
                     "--set", "revisionController.image.tag=9.9.9",
                     "--set", "revisionController.image.pullPolicy=Always",
                     "--set", "revisionController.logLevel=debug",
                     "--set", "revisionController.replicas=3",
                     "--set-json", 'revisionController.extraArgs=["--workers=8", "--namespace=apps"]',
                     "--set-json", 'revisionController.resources={"limits": {"memory": "1Gi"}}',
                     "--set-json", 'revisionController.nodeSelector={"kubernetes.io/os": "linux"}',
                     "--set-json", 'revisionController.tolerations=[{"key": "dedicated", "operator": "Exists"}]',
                     "--set-json", 'revisionController.affinity={"podAntiAffinity": null}')
    spec = deployment(objects)["spec"]
    pod = spec["template"]["spec"]
    (main,) = pod["containers"]
    (bundled,) = deployment(bundle)["spec"]["template"]["spec"]["containers"]
    assert spec["replicas"] == 3
    assert main["image"] == "registry.example/rc:9.9.9"
    assert main["imagePullPolicy"] == "Always"
    assert main["args"] == [("--log-level=debug" if arg == "--log-level=info" else arg) for arg in bundled["args"]] + [
        "--workers=8", "--namespace=apps"]
    # Helm merges maps given on the command line into the defaults.
    assert main["resources"] == {"requests": {"cpu": "50m", "memory": "128Mi"},
                                 "limits": {"cpu": "500m", "memory": "1Gi"}}
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert "affinity" not in pod


def test_drops_into_the_umbrella_charts_templates_folder(helm: Tool, bundle: list[dict], tmp_path: Path) -> None:
    """As OpenFunction's chart holds its revision controller: templates/revision-controller/, values merged."""
    umbrella = tmp_path / "openfunction"
    shutil.copytree(CHART / "templates", umbrella / "templates" / "revision-controller")
    (umbrella / "Chart.yaml").write_text(yaml.safe_dump({"apiVersion": "v2", "name": "openfunction",
                                                          "version": "1.2.0"}))
    shutil.copy(CHART / "values.yaml", umbrella / "values.yaml")
    assert render(helm, chart=umbrella, release="openfunction") == []
    assert keyed(render(helm, *ENABLE, *WEBHOOK, chart=umbrella, release="openfunction")) == without_namespace(bundle)


@pytest.mark.parametrize("webhook", [False, True], ids=["contract-values", "and-webhooks"])
def test_renders_from_the_contracts_values_alone(helm: Tool, bundle: list[dict], tmp_path: Path, webhook: bool) -> None:
    """An umbrella chart holding only the values OpenFunction's chart always had (enable, image.*), as after
    `helm upgrade --reuse-values` from it: everything else is left out, and nothing fails to render."""
    umbrella = tmp_path / "openfunction"
    shutil.copytree(CHART / "templates", umbrella / "templates" / "revision-controller")
    (umbrella / "Chart.yaml").write_text(yaml.safe_dump({"apiVersion": "v2", "name": "openfunction",
                                                          "version": "1.2.0"}))
    image = {"repository": "registry.example/revision-controller", "tag": "9.9.9", "pullPolicy": "Always"}
    (umbrella / "values.yaml").write_text(yaml.safe_dump({"revisionController": {"enable": False, "image": image}}))
    helm("lint", "--strict", umbrella, *ENABLE)
    objects = keyed(render(helm, *ENABLE, *(WEBHOOK if webhook else ()), chart=umbrella, release="openfunction"))
    expected = without_namespace(bundle) if webhook else without_webhooks(without_namespace(bundle))
    assert objects.keys() == expected.keys()
    spec = deployment(list(objects.values()))["spec"]
    (main,) = spec["template"]["spec"]["containers"]
    (bundled,) = deployment(list(expected.values()))["spec"]["template"]["spec"]["containers"]
    assert "replicas" not in spec and "affinity" not in spec["template"]["spec"] and "resources" not in main
    assert (main["image"], main["imagePullPolicy"]) == ("registry.example/revision-controller:9.9.9", "Always")
    assert main["args"] == [arg for arg in bundled["args"] if not arg.startswith("--log-level=")]
    volumes = {volume["name"]: volume for volume in spec["template"]["spec"]["volumes"]}
    assert volumes.get("webhook-secret", {}).get("secret", {}).get("secretName") == (
        "revision-controller-webhook" if webhook else None)


def test_versions_agree_with_the_package(bundle: list[dict]) -> None:
    package = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    image = yaml.safe_load((CHART / "values.yaml").read_text())["revisionController"]["image"]
    (bundled,) = deployment(bundle)["spec"]["template"]["spec"]["containers"]
    assert chart["appVersion"] == image["tag"] == package
    assert bundled["image"] == f"{image['repository']}:{image['tag']}"
