"""Whether a Function is watched, and if so which target it subscribes to. Pure.

The rules are the contract's "When a Function is not watched"; every refusal
carries a message for the Function's Events.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from providers import ProviderError, parse_source
from revision_controller.function import FunctionView
from revision_controller.params import (SWITCH_ON, InvalidParameters, Params, parse_params)
from revision_controller.targets import GitTarget, SecretRef, Subscription

COMMIT_SHA = re.compile(r"^[0-9a-fA-F]{7,40}$")


@dataclass(frozen=True)
class Unwatched:
    """Why a Function is not watched. `reason` is the Event reason, or empty when
    nothing needs saying (the switch is off)."""

    reason: str
    message: str


Plan = Subscription | Unwatched

SWITCHED_OFF = Unwatched("", "the revision controller annotation is not 'enable'")


def plan_function(view: FunctionView, default_interval: float) -> Plan:
    if view.switch != SWITCH_ON:
        return SWITCHED_OFF
    try:
        params = parse_params(view.params, default_interval)
    except InvalidParameters as error:
        return Unwatched("InvalidParameters", str(error))
    if params.type == "source":
        return _plan_source(view, params)
    return Unwatched("NotWatched", f"type {params.type!r} is not supported by this version yet")


def _plan_source(view: FunctionView, params: Params) -> Plan:
    if not view.has_build:
        return Unwatched("NotWatched", "type source needs spec.build, and this Function has none")
    if not view.src_url:
        return Unwatched("NotWatched", "type source needs spec.build.srcRepo.url, and it is empty")
    if COMMIT_SHA.match(view.revision):
        return Unwatched("NotWatched", f"spec.build.srcRepo.revision {view.revision} is a commit SHA, "
                                       f"which cannot move")
    try:
        source = parse_source(params.repo_type, view.src_url, base_url=params.base_url,
                              project_id=params.project_id, auth_type=params.auth_type)
    except ProviderError as error:
        return Unwatched("InvalidParameters", str(error))
    credentials = SecretRef(view.ref.namespace, view.credentials) if view.credentials else None
    target = GitTarget(source, view.revision, credentials)
    return Subscription(view.ref, target, params.polling_interval, params.type, view.sub_path)
