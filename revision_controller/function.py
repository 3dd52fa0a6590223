"""The few fields of a Function that detection needs, extracted from the API object.

Only these small views are kept in memory, never whole Function objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from revision_controller.params import PARAMS_ANNOTATION, SWITCH_ANNOTATION

GROUP = "core.openfunction.io"
PLURAL = "functions"
KIND = "Function"
DEFAULT_SOURCE = "default"


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


def view_of(obj: dict[str, Any]) -> FunctionView:
    metadata = obj.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    spec = obj.get("spec") or {}
    build = spec.get("build")
    src_repo = (build or {}).get("srcRepo") or {}
    bundle = src_repo.get("bundleContainer")
    status = obj.get("status") or {}
    source = _default_source(status)
    return FunctionView(
        ref=FunctionRef(metadata.get("namespace", ""), metadata.get("name", "")),
        uid=metadata.get("uid", ""),
        resource_version=metadata.get("resourceVersion", ""),
        switch=annotations.get(SWITCH_ANNOTATION),
        params=annotations.get(PARAMS_ANNOTATION),
        has_build=build is not None,
        src_url=_text(src_repo.get("url")),
        revision=_text(src_repo.get("revision")),
        sub_path=_text(src_repo.get("sourceSubPath")),
        credentials=_text((src_repo.get("credentials") or {}).get("name")),
        has_bundle=bundle is not None,
        bundle_image=_text((bundle or {}).get("image")),
        image=_text(spec.get("image")),
        image_credentials=_text((spec.get("imageCredentials") or {}).get("name")),
        has_serving=spec.get("serving") is not None,
        commit_sha=_text((source.get("git") or {}).get("commitSha")),
        bundle_digest=_text((source.get("bundle") or {}).get("digest")),
        image_digest=_text((status.get("revision") or {}).get("imageDigest")),
    )


def _default_source(status: dict[str, Any]) -> dict[str, Any]:
    for source in status.get("sources") or []:
        if isinstance(source, dict) and source.get("name") == DEFAULT_SOURCE:
            return source
    return {}


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""
