"""Whether a Function is watched, and if so which target it subscribes to. Pure.

The rules are the contract's "When a Function is not watched". Whatever the
Function's owner should hear about (why it is not watched, parameters that
were ignored) is a `Notice`, which the daemon turns into an Event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from providers import ProviderError, parse_source
from revision_controller.events import NORMAL, WARNING
from revision_controller.function import FunctionView
from revision_controller.params import (KNOWN_KEYS, PARAMS_ANNOTATION, SWITCH_ON, InvalidParameters,
                                        Params, parse_params)
from revision_controller.targets import GitTarget, SecretRef, Subscription

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
    if params.type != "source":
        return _unwatched(NORMAL, "NotWatched", f"type {params.type!r} is not supported by this "
                                                f"version yet")
    plan = _plan_source(view, params)
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
    credentials = SecretRef(view.ref.namespace, view.credentials) if view.credentials else None
    target = GitTarget(source, view.revision, credentials)
    return Plan(Subscription(view.ref, target, params.polling_interval, params.type, view.sub_path))


def _unwatched(type_: str, reason: str, message: str) -> Plan:
    return Plan(notice=Notice(type_, reason, f"not watched: {message}"))
