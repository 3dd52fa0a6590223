"""What a client learns about the served resources before it asks for any: discovery and openapi.

Three shapes, as a Kubernetes 1.33 API server serves them: the legacy documents (`/api`,
`/apis`, one `APIResourceList` per group-version), the aggregated ones (`/api` and `/apis`
asked for with `Accept: ...;as=APIGroupDiscoveryList`, which kubectl 1.33 and client-go
prefer: one request instead of one per group-version), and an openapi v3 index with a
document per group-version, which `kubectl apply` reads to learn that the server validates
fields (`fieldValidation`) and which patch types each kind takes. The openapi documents
describe the operations, not the schemas: objects are not validated against a schema.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from revision_controller.testing.store import JSON, ResourceType

AGGREGATED_MEDIA_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")
STATUS_VERBS = ("get", "patch", "update")
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
OPENAPI_ROOT = "/openapi/v3"


@dataclass(frozen=True)
class MediaType:
    """One entry of an Accept header, e.g. `application/json;as=Table;g=meta.k8s.io;v=v1`."""

    type: str
    params: dict[str, str]

    @classmethod
    def parse_accept(cls, accept: str) -> list[MediaType]:
        found = []
        for entry in accept.split(","):
            kind, *params = (part.strip() for part in entry.split(";"))
            found.append(cls(kind.lower(), dict(_pair(param) for param in params if "=" in param)))
        return found

    def is_a(self, group: str, versions: Iterable[str], as_kind: str) -> bool:
        return (self.type in ("application/json", "*/*") and self.params.get("g") == group
                and self.params.get("v") in set(versions) and self.params.get("as") == as_kind)


def _pair(param: str) -> tuple[str, str]:
    key, _, value = param.partition("=")
    return key.strip(), value.strip()


def wants(accept: str, group: str, versions: Iterable[str], as_kind: str) -> bool:
    """Whether the client asks for this representation before plain JSON (the first it names wins)."""
    for media in MediaType.parse_accept(accept):
        if media.is_a(group, versions, as_kind):
            return True
        if not media.params and media.type in ("application/json", "*/*"):
            return False
    return False


def group_versions(resources: tuple[ResourceType, ...]) -> list[str]:
    return list(dict.fromkeys(res.api_version(v) for res in resources for v in res.versions))


def legacy(path: str, resources: tuple[ResourceType, ...]) -> JSON | None:
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/apis":
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": _groups(resources)}
    for group_version in group_versions(resources):
        if path == _prefix(group_version) + group_version:
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
                    "resources": list(_api_resources(group_version, resources))}
    return None


def _prefix(group_version: str) -> str:
    return "/apis/" if "/" in group_version else "/api/"


def _groups(resources: tuple[ResourceType, ...]) -> list[JSON]:
    groups: list[JSON] = []
    for name in dict.fromkeys(res.group for res in resources if res.group):
        versions = dict.fromkeys(v for res in resources if res.group == name for v in res.versions)
        entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        groups.append({"name": name, "versions": entries, "preferredVersion": entries[-1]})
    return groups


def _api_resources(group_version: str, resources: tuple[ResourceType, ...]) -> Iterable[JSON]:
    for res in resources:
        if group_version in {res.api_version(v) for v in res.versions}:
            entry: JSON = {"name": res.plural, "singularName": res.kind.lower(), "namespaced": True,
                           "kind": res.kind, "verbs": list(VERBS)}
            if res.short_names:
                entry["shortNames"] = list(res.short_names)
            yield entry
            if res.status_subresource:
                yield {"name": f"{res.plural}/status", "singularName": "", "namespaced": True,
                       "kind": res.kind, "verbs": list(STATUS_VERBS)}


def aggregated(path: str, resources: tuple[ResourceType, ...]) -> JSON | None:
    """The `APIGroupDiscoveryList` of the legacy group (`/api`) or of the named groups (`/apis`)."""
    if path not in ("/api", "/apis"):
        return None
    names = [""] if path == "/api" else list(dict.fromkeys(res.group for res in resources if res.group))
    items = []
    for name in names:
        served = [res for res in resources if res.group == name]
        # The preferred (newest) version first, as the server sorts them.
        versions = list(dict.fromkeys(v for res in served for v in reversed(res.versions)))
        items.append({"metadata": {"name": name, "creationTimestamp": None} if name else {"creationTimestamp": None},
                      "versions": [{"version": version, "freshness": "Current",
                                    "resources": [_discovered(res, version) for res in served
                                                  if version in res.versions]}
                                   for version in versions]})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
            "items": items}


def _discovered(res: ResourceType, version: str) -> JSON:
    kind = {"group": res.group, "version": version, "kind": res.kind}
    entry: JSON = {"resource": res.plural, "responseKind": kind, "scope": "Namespaced",
                   "singularResource": res.kind.lower(), "verbs": list(VERBS)}
    if res.short_names:
        entry["shortNames"] = list(res.short_names)
    if res.status_subresource:
        entry["subresources"] = [{"subresource": "status", "responseKind": kind, "verbs": list(STATUS_VERBS)}]
    return entry


def openapi(path: str, resources: tuple[ResourceType, ...]) -> JSON | None:
    """The openapi v3 index, or one group-version's document; None for any other path."""
    documents = {gv: _openapi_document(gv, resources) for gv in group_versions(resources)}
    if path == OPENAPI_ROOT:
        return {"paths": {_prefix(gv).lstrip("/") + gv: {"serverRelativeURL": f"{OPENAPI_ROOT}{_prefix(gv)}{gv}"
                                                         f"?hash={_hash(document)}"}
                          for gv, document in documents.items()}}
    for gv, document in documents.items():
        if path == f"{OPENAPI_ROOT}{_prefix(gv)}{gv}":
            return document
    return None


def _hash(document: JSON) -> str:
    return hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest().upper()[:128]


def _openapi_document(group_version: str, resources: tuple[ResourceType, ...]) -> JSON:
    paths: JSON = {}
    for res in resources:
        for version in res.versions:
            if res.api_version(version) == group_version:
                paths.update(_openapi_paths(res, version))
    if group_version == "v1":
        paths.update(_namespace_patch())
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.33.0"}, "paths": paths,
            "components": {"schemas": {}}}


def _namespace_patch() -> JSON:
    """kubectl takes the Namespace PATCH operation as the representative of the kinds the openapi
    does not describe (another group's, a CRD not installed) to learn whether the server
    validates fields; without it `kubectl apply` refuses them before it even maps their kind.
    Namespaces are not served: only the operation is described."""
    gvk = {"group": "", "version": "v1", "kind": "Namespace"}
    patch = {"operationId": "patchCoreV1Namespace", "x-kubernetes-action": "patch",
             "x-kubernetes-group-version-kind": gvk, "responses": {"200": {"description": "OK"}},
             "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
             "requestBody": {"content": {media: {"schema": {"type": "object"}}
                                         for media in (*PATCH_TYPES, STRATEGIC_MERGE_PATCH)}}}
    return {"/api/v1/namespaces/{name}": {"patch": patch}}


def _openapi_paths(res: ResourceType, version: str) -> JSON:
    base = f"{_prefix(res.api_version(version))}{res.api_version(version)}/namespaces/{{namespace}}/{res.plural}"
    gvk = {"group": res.group, "version": version, "kind": res.kind}
    patch_types = (*PATCH_TYPES, *(() if res.custom else (STRATEGIC_MERGE_PATCH,)))

    def operation(action: str, body_types: tuple[str, ...] = ()) -> JSON:
        op: JSON = {"operationId": f"{action}{res.kind}", "x-kubernetes-action": action,
                    "x-kubernetes-group-version-kind": gvk, "responses": {"200": {"description": "OK"}},
                    "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                                   {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                                   {"name": "dryRun", "in": "query", "schema": {"type": "string"}}]}
        if body_types:
            op["requestBody"] = {"content": {media: {"schema": {"type": "object"}} for media in body_types}}
        return op

    item = {"get": operation("get"), "put": operation("put", ("application/json",)),
            "patch": operation("patch", patch_types), "delete": operation("delete")}
    paths: JSON = {base: {"get": operation("list"), "post": operation("post", ("application/json",))},
                   f"{base}/{{name}}": item}
    if res.status_subresource:
        paths[f"{base}/{{name}}/status"] = {key: item[key] for key in ("get", "put", "patch")}
    return paths
