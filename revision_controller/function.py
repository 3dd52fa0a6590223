"""The few fields of a Function that detection needs, extracted from the API object.

Only these small views are kept in memory, never whole Function objects.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from revision_controller.params import PARAMS_ANNOTATION, REQUESTED_AT_ANNOTATION, SWITCH_ANNOTATION

GROUP = "core.openfunction.io"
PLURAL = "functions"
KIND = "Function"
DEFAULT_SOURCE = "default"
FINGERPRINT_CHARACTERS = 64


@dataclass(frozen=True, order=True)
class FunctionRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class FunctionView:
    ref: FunctionRef
    uid: str
    resource_version: str
    switch: str | None = None
    params: str | None = None
    has_build: bool = False
    src_url: str = ""
    revision: str = ""
    sub_path: str = ""
    credentials: str = ""
    bundle_image: str = ""
    has_bundle: bool = False
    image: str = ""
    image_credentials: str = ""
    has_serving: bool = False
    commit_sha: str = ""
    bundle_digest: str = ""
    image_digest: str = ""
    requested_at: str = ""


def view_of(obj: object) -> FunctionView:
    """The view of a Function as the API gives it. Total: a field of another type than the
    CRD's (a stand-in, a conversion bug, a status written by hand) counts as absent."""
    root = _mapping(obj)
    metadata = _mapping(root.get("metadata"))
    annotations = _mapping(metadata.get("annotations"))
    spec = _mapping(root.get("spec"))
    build = spec.get("build")
    src_repo = _mapping(_mapping(build).get("srcRepo"))
    bundle = src_repo.get("bundleContainer")
    status = _mapping(root.get("status"))
    source = _default_source(status)
    return FunctionView(
        ref=FunctionRef(_string(metadata.get("namespace")), _string(metadata.get("name"))),
        uid=_string(metadata.get("uid")),
        resource_version=_string(metadata.get("resourceVersion")),
        switch=_annotation(annotations, SWITCH_ANNOTATION),
        params=_annotation(annotations, PARAMS_ANNOTATION),
        has_build=isinstance(build, dict),
        src_url=_text(src_repo.get("url")),
        revision=_text(src_repo.get("revision")),
        sub_path=_text(src_repo.get("sourceSubPath")),
        credentials=_text(_mapping(src_repo.get("credentials")).get("name")),
        has_bundle=isinstance(bundle, dict),
        bundle_image=_text(_mapping(bundle).get("image")),
        image=_text(spec.get("image")),
        image_credentials=_text(_mapping(spec.get("imageCredentials")).get("name")),
        has_serving=isinstance(spec.get("serving"), dict),
        commit_sha=_text(_mapping(source.get("git")).get("commitSha")),
        bundle_digest=_text(_mapping(source.get("bundle")).get("digest")),
        image_digest=_text(_mapping(status.get("revision")).get("imageDigest")),
        requested_at=_fingerprint(_annotation(annotations, REQUESTED_AT_ANNOTATION) or ""),
    )


def _default_source(status: dict[str, Any]) -> dict[str, Any]:
    sources = status.get("sources")
    for source in sources if isinstance(sources, list) else []:
        if isinstance(source, dict) and source.get("name") == DEFAULT_SOURCE:
            return source
    return {}


def _fingerprint(value: str) -> str:
    """A value short enough to keep for every Function, equal exactly when the values are."""
    if len(value) <= FINGERPRINT_CHARACTERS:
        return value
    return "#" + hashlib.blake2b(value.encode(errors="replace"), digest_size=16).hexdigest()


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _annotation(annotations: dict[str, Any], key: str) -> str | None:
    value = annotations.get(key)
    return value if isinstance(value, str) else None


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""
