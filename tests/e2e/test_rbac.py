"""Run after every other test (see LAST in conftest): the RBAC rules shipped in deploy/bundle.yaml,
and those the chart renders, grant every API call the daemons made in this session (recorded by the
API stand-in, told from the tests' own calls by the daemon's token) and nothing they did not use.
Under `make test` the session is the parallel run before this module's own (see GATHERED_DIR_ENV
in conftest)."""

from __future__ import annotations

import pytest

from tests.deploy.conftest import BUNDLE, CHART, helm, parse, tool_env, tools_dir  # noqa: F401 - fixtures of `rules`
from tests.e2e.conftest import LAST, ApiCall, Gathered, gathered, nothing_gathered

Grant = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)
WRITES = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
# Granted although no e2e test makes the daemon call it, with the reason why.
JUSTIFIED: dict[Grant, str] = {}


def required(call: ApiCall) -> Grant:
    """The permission Kubernetes checks for a call, as its request info resolver derives it."""
    parts = call.path.strip("/").split("/")
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif parts[0] == "apis" and len(parts) > 3:
        group, rest = parts[1], parts[3:]
    else:
        return ("nonResourceURL", call.path, call.method.lower())
    if rest[0] == "namespaces" and len(rest) > 2:
        rest = rest[2:]
    resource = "/".join(rest[:1] + rest[2:3])
    if call.method == "GET":
        verb = "watch" if call.watch else "get" if len(rest) > 1 else "list"
    else:
        verb = "deletecollection" if call.method == "DELETE" and len(rest) == 1 else WRITES[call.method]
    return group, resource, verb


def grants(objects: list[dict]) -> set[Grant]:
    return {(group, resource, verb) for obj in objects if obj["kind"] in ("ClusterRole", "Role")
            for rule in obj["rules"] for group in rule["apiGroups"] for resource in rule["resources"]
            for verb in rule["verbs"]}


def test_required_names_the_verbs_kubernetes_checks() -> None:
    functions = "/apis/core.openfunction.io/v1beta2"
    assert required(ApiCall("GET", f"{functions}/functions", watch=False)) == (
        "core.openfunction.io", "functions", "list")
    assert required(ApiCall("GET", f"{functions}/namespaces/a/functions", watch=True)) == (
        "core.openfunction.io", "functions", "watch")
    assert required(ApiCall("PATCH", f"{functions}/namespaces/a/functions/f/status", watch=False)) == (
        "core.openfunction.io", "functions/status", "patch")
    assert required(ApiCall("GET", "/api/v1/namespaces/a/secrets/s", watch=False)) == ("", "secrets", "get")
    assert required(ApiCall("PUT", "/apis/coordination.k8s.io/v1/namespaces/a/leases/l", watch=False)) == (
        "coordination.k8s.io", "leases", "update")
    assert required(ApiCall("GET", "/version", watch=False)) == ("nonResourceURL", "/version", "get")


def whole_e2e_suite_ran(found: Gathered, session: pytest.Session) -> str:
    """Why the calls recorded may not be all the e2e suite makes; "" when it all ran."""
    if found.narrowed:
        return ", ".join(sorted(found.narrowed))
    here = session.config.rootpath / "tests" / "e2e"
    modules = {path.name for path in here.glob("test_*.py")} - set(LAST)
    missing = sorted(modules - found.modules)
    return f"these e2e modules did not run: {', '.join(missing)}" if missing else ""


@pytest.fixture(params=["bundle", "chart"])
def rules(request: pytest.FixtureRequest) -> set[Grant]:
    if request.param == "bundle":
        return grants(parse(BUNDLE.read_text()))
    render = request.getfixturevalue("helm")
    return grants(parse(render("template", "rc", CHART, "--namespace", "openfunction",
                               "--set", "revisionController.enable=true",
                               # On, as in the bundle: the e2e suite's standby replica patches Functions.
                               "--set", "revisionController.webhook.enabled=true")))


def test_rbac_grants_every_call_the_daemon_made_and_nothing_else(
        rules: set[Grant], request: pytest.FixtureRequest) -> None:
    found = gathered()
    if not found.api_calls:
        nothing_gathered("API calls")
    used = {required(call) for call in found.api_calls}
    examples = {required(call): call.path for call in sorted(found.api_calls, key=lambda c: c.path)}
    refused = {grant: examples[grant] for grant in used - rules}
    assert not refused, f"calls the RBAC would refuse, with a path for each: {refused}"
    partial = whole_e2e_suite_ran(found, request.session)
    if partial:
        pytest.skip(f"every call was granted, but whether every grant is used needs the whole e2e suite: {partial}")
    unused = rules - used - JUSTIFIED.keys()
    assert not unused, f"granted but never used by the daemon in the e2e suite: {sorted(unused)}"
