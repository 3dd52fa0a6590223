"""Whether a Function is watched, and if so which target it subscribes to. Pure.

The rules are the contract's "When a Function is not watched". Whatever the
Function's owner should hear about (why it is not watched, parameters that
were ignored) is a `Notice`, which the daemon turns into an Event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from providers import ProviderError, parse_reference, parse_source
from revision_controller.events import NORMAL, WARNING
from revision_controller.function import FunctionView
from revision_controller.params import KNOWN_KEYS, PARAMS_ANNOTATION, SWITCH_ON, InvalidParameters, Params, parse_params
from revision_controller.paths import InvalidPaths, path_filter
from revision_controller.targets import GitTarget, ImageTarget, SecretRef, Subscription, Target

COMMIT_SHA = re.compile(r"^[0-9a-fA-F]{7,40}$")


@dataclass(frozen=True)
class Notice:
    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    subscription: Subscription | None = None
    notice: Notice | None = None


def plan_function(view: FunctionView, default_interval: float) -> Plan:
    if view.switch != SWITCH_ON:
        return Plan()
    try:
        params = parse_params(view.params, default_interval)
    except InvalidParameters as error:
        return _unwatched(WARNING, "InvalidParameters", str(error))
    plan = _PLANNERS[params.type](view, params)
    if plan.subscription and params.paths is not None and params.type != "source":
        return Plan(plan.subscription, Notice(
            WARNING, "UnknownParameters",
            f"paths is ignored for type {params.type}: it chooses which changed files of a source "
            "rebuild the Function, and an image has no files to choose from"))
    if plan.subscription and params.unknown_keys:
        return Plan(plan.subscription, Notice(
            WARNING, "UnknownParameters",
            f"{PARAMS_ANNOTATION} has keys this controller does not know, which are ignored: "
            f"{', '.join(params.unknown_keys)}; known keys are {', '.join(KNOWN_KEYS)}"))
    return plan


def _plan_source(view: FunctionView, params: Params) -> Plan:
    if not view.has_build:
        return _unwatched(NORMAL, "NotWatched", "type source needs spec.build, and this Function has none")
    if not view.src_url:
        return _unwatched(NORMAL, "NotWatched", "type source needs spec.build.srcRepo.url, and it is empty")
    if COMMIT_SHA.match(view.revision):
        return _unwatched(NORMAL, "NotWatched", f"spec.build.srcRepo.revision {view.revision} is a "
                                                f"commit SHA, which cannot move")
    try:
        source = parse_source(params.repo_type, view.src_url, base_url=params.base_url,
                              project_id=params.project_id, auth_type=params.auth_type)
    except ProviderError as error:
        return _unwatched(WARNING, "InvalidParameters", str(error))
    target = GitTarget(source, view.revision, _secret(view, view.credentials))
    if params.paths is None:
        return _subscribe(view, params, target)
    try:
        paths = path_filter(list(params.paths), view.sub_path)
    except InvalidPaths as error:
        return _unwatched(WARNING, "InvalidParameters", str(error))
    return Plan(Subscription(view.ref, target, params.polling_interval, params.type, view.sub_path, paths))


def _plan_source_image(view: FunctionView, params: Params) -> Plan:
    if not view.has_build or not view.has_bundle:
        return _unwatched(NORMAL, "NotWatched", "type source-image needs "
                                                "spec.build.srcRepo.bundleContainer, and it is absent")
    return _plan_image(view, params, view.bundle_image, "spec.build.srcRepo.bundleContainer.image")


def _plan_served_image(view: FunctionView, params: Params) -> Plan:
    if not view.has_serving:
        return _unwatched(NORMAL, "NotWatched", "type image needs spec.serving, and this Function has none")
    return _plan_image(view, params, view.image, "spec.image")


def _plan_image(view: FunctionView, params: Params, image: str, field: str) -> Plan:
    if not image:
        return _unwatched(NORMAL, "NotWatched", f"type {params.type} needs {field}, and it is empty")
    try:
        reference = parse_reference(image)
    except ProviderError as error:
        return _unwatched(WARNING, "InvalidParameters", f"{field}: {error}")
    if reference.digest:
        return _unwatched(NORMAL, "NotWatched", f"{field} {image} is pinned by digest, which cannot move")
    target = ImageTarget(reference, params.insecure_registry, _secret(view, view.image_credentials))
    return _subscribe(view, params, target)


_PLANNERS = {"source": _plan_source, "source-image": _plan_source_image, "image": _plan_served_image}


def _secret(view: FunctionView, name: str) -> SecretRef | None:
    return SecretRef(view.ref.namespace, name) if name else None


def _subscribe(view: FunctionView, params: Params, target: Target) -> Plan:
    return Plan(Subscription(view.ref, target, params.polling_interval, params.type, view.sub_path))


def _unwatched(type_: str, reason: str, message: str) -> Plan:
    return Plan(notice=Notice(type_, reason, f"not watched: {message}"))
