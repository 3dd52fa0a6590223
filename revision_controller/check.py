"""What `revision-controller check` reports of one Function, worded as the daemon would act. Pure.

A Function is first assessed as the daemon plans it (watched or not, its parameters, its
target); what one poll observed is then turned into the daemon's decision: nothing, or the
status patch it would write, screened by `paths` the way the daemon screens it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from providers import ChangedFiles
from providers.base import redact
from revision_controller.decision import SHOWN_FILES, decide, screen
from revision_controller.duration import format_duration
from revision_controller.function import FunctionView
from revision_controller.params import SWITCH_ANNOTATION, SWITCH_ON, InvalidParameters, Params, parse_params
from revision_controller.planning import plan_function
from revision_controller.targets import GitTarget, Subscription

NOT_ENABLED = "NotEnabled"
INVALID = "InvalidParameters"
# Exit codes: it could decide; a target could not be read; parameters are invalid.
DECIDED, UNREADABLE, INVALID_EXIT = 0, 1, 2
OFFLINE = "not polled (--offline)"


@dataclass(frozen=True)
class Assessment:
    """A Function as the daemon plans it. `subscription` is the one it has, or for a Function
    whose switch is off, the one it would have once enabled."""

    view: FunctionView
    source: str
    watched: bool
    reason: str = ""
    message: str = ""
    params: Params | None = None
    subscription: Subscription | None = None


@dataclass(frozen=True)
class Observation:
    """What one poll read: the head or digest, and for a Function with paths whose source
    moved, the files that changed from its recorded commit."""

    observed: str
    changed: ChangedFiles | None = None


@dataclass(frozen=True)
class Report:
    """One Function's report; its fields are the keys of `--output json`."""

    function: str
    source: str
    watched: bool
    reason: str = ""
    message: str = ""
    parameters: dict[str, Any] | None = None
    target: dict[str, Any] | None = None
    observed: str = ""
    recorded: str = ""
    decision: str = ""
    patch: dict[str, Any] | None = None
    changed: list[str] | None = None
    matched: list[str] | None = None
    uncertain: str = ""
    error: str = ""
    exit: int = DECIDED


def assess(view: FunctionView, source: str, default_interval: float) -> Assessment:
    """Watched or not and why, its parameters and its target: `plan_function`'s answer."""
    try:
        params: Params | None = parse_params(view.params, default_interval)
    except InvalidParameters:
        params = None
    if view.switch != SWITCH_ON:
        return _not_enabled(view, source, default_interval, params)
    plan = plan_function(view, default_interval)
    notice = plan.notice
    if plan.subscription is None:
        assert notice is not None  # an enabled Function is watched, or told why not
        return Assessment(view, source, False, notice.reason, notice.message, params)
    return Assessment(view, source, True, notice.reason if notice else "", notice.message if notice else "",
                      params, plan.subscription)


def _not_enabled(view: FunctionView, source: str, default_interval: float, params: Params | None) -> Assessment:
    """The daemon says nothing of a Function whose switch is off; `check` says why, and what
    the Function would watch once enabled."""
    plan = plan_function(replace(view, switch=SWITCH_ON), default_interval)
    switch = "absent" if view.switch is None else f"{view.switch[:80]!r}"
    message = f"not watched: the annotation {SWITCH_ANNOTATION} is {switch}, not {SWITCH_ON!r}"
    notice = plan.notice
    if notice and plan.subscription is None:
        message += f"; enabled, it would not be watched either: {notice.message.removeprefix('not watched: ')}"
    elif notice:
        message += f"; enabled: {notice.message}"
    reason = INVALID if notice and notice.reason == INVALID else NOT_ENABLED
    return Assessment(view, source, False, reason, message, params, plan.subscription)


def needs_comparison(assessment: Assessment, observed: str) -> bool:
    """Whether the daemon would ask which files changed: a Function with paths whose source moved."""
    subscription = assessment.subscription
    return (assessment.watched and subscription is not None and subscription.paths is not None
            and decide(subscription.type, assessment.view, observed) is not None)


def report(assessment: Assessment, observation: Observation | None = None, error: str = "") -> Report:
    """The report of an assessed Function, polled (`observation`), not polled (neither given),
    or whose target could not be read (`error`)."""
    subscription = assessment.subscription
    base = Report(function=str(assessment.view.ref), source=assessment.source, watched=assessment.watched,
                  reason=assessment.reason, message=assessment.message,
                  parameters=parameters(assessment.params), target=target(subscription),
                  recorded=recorded(subscription.type, assessment.view) if subscription else "",
                  exit=INVALID_EXIT if assessment.reason == INVALID else DECIDED)
    if not assessment.watched or subscription is None:
        return replace(base, decision="nothing to do: not watched")
    if error:
        return replace(base, decision="could not decide: the target could not be read", error=error,
                       exit=UNREADABLE)
    if observation is None:
        return replace(base, decision=OFFLINE)
    return _decided(base, subscription, assessment.view, observation)


def _decided(base: Report, subscription: Subscription, view: FunctionView, observation: Observation) -> Report:
    observed = observation.observed
    base = replace(base, observed=observed)
    change = decide(subscription.type, view, observed)
    if change is None:
        return replace(base, decision=_unchanged(subscription.type, view))
    if subscription.paths is None or observation.changed is None:
        return replace(base, decision=f"would patch, with Event {change.reason}: {change.message}",
                       patch=change.patch)
    changed = observation.changed
    screened = screen(change, observed, subscription.paths, changed)
    base = replace(base, changed=list(changed.files), matched=list(screened.matched), uncertain=changed.uncertain)
    if screened.change is None:
        return replace(base, decision=f"nothing to do: {screened.skipped}")
    kept = screened.change
    return replace(base, decision=f"would patch, with Event {kept.reason}: {kept.message}", patch=kept.patch)


def _unchanged(type_: str, view: FunctionView) -> str:
    if type_ == "source" and not view.commit_sha:
        return "nothing to do: no commit is recorded yet (never built), and the first build records one"
    if type_ == "source":
        return "nothing to do: the head is the recorded commit"
    return "nothing to do: the digest is the recorded one"


def recorded(type_: str, view: FunctionView) -> str:
    """What the Function's status holds to compare the observed value with."""
    return {"source": view.commit_sha, "source-image": view.bundle_digest}.get(type_, view.image_digest)


def parameters(params: Params | None) -> dict[str, Any] | None:
    """The parameters with their defaults filled in, keyed as the annotation keys them."""
    if params is None:
        return None
    return {"type": params.type, "polling-interval": format_duration(params.polling_interval),
            "repo-type": params.repo_type, "base-url": params.base_url, "auth-type": params.auth_type,
            "project-id": params.project_id, "insecure-registry": params.insecure_registry,
            "paths": list(params.paths) if params.paths is not None else None,
            "unknown": list(params.unknown_keys)}


def target(subscription: Subscription | None) -> dict[str, Any] | None:
    """The target subscribed to, as `describe()` words it and field by field."""
    if subscription is None:
        return None
    watched = subscription.target
    credentials = str(watched.credentials) if watched.credentials else None
    if isinstance(watched, GitTarget):
        source = watched.source
        return {"describe": watched.describe(), "repo_type": source.repo_type, "server": redact(source.server),
                "repository": redact(source.repository), "branch": watched.branch,
                "sub_path": subscription.sub_path, "credentials": credentials}
    reference = watched.reference
    return {"describe": watched.describe(), "registry": reference.registry, "repository": reference.repository,
            "tag": reference.tag, "insecure": watched.insecure, "credentials": credentials}


def exit_code(reports: list[Report]) -> int:
    """2 when any Function has invalid parameters, else 1 when any target could not be read, else 0."""
    codes = {report.exit for report in reports}
    return INVALID_EXIT if INVALID_EXIT in codes else UNREADABLE if UNREADABLE in codes else DECIDED


def as_json(reports: list[Report]) -> str:
    return json.dumps([_fields(report) for report in reports], indent=2)


def _fields(report: Report) -> dict[str, Any]:
    return {name: getattr(report, name) for name in Report.__dataclass_fields__}


def as_text(report: Report) -> list[str]:
    """The report as lines for people: the first names the Function, the others are indented."""
    lines = [f"{report.function} ({report.source})"]
    if report.watched:
        lines.append("  watched: yes" + (f" ({report.reason}: {report.message})" if report.message else ""))
    else:
        lines.append(f"  watched: no ({report.reason}): {report.message.removeprefix('not watched: ')}")
    lines.append(f"  parameters: {_parameters_line(report.parameters)}")
    if report.target:
        lines.append(f"  target{'' if report.watched else ' once enabled'}: {_target_line(report.target)}")
    if report.observed:
        lines.append(f"  {'head' if report.target and 'branch' in report.target else 'digest'}: "
                     f"{report.observed} (recorded: {report.recorded or 'none'})")
    lines += _decision_lines(report)
    return [_printable(line) for line in lines]


def _decision_lines(report: Report) -> list[str]:
    lines = []
    if report.error:
        lines.append(f"  error: {report.error}")
    if report.changed is not None:
        lines.append(f"  paths: changed {_listed(report.changed)}; matched {_listed(report.matched or [])}")
    if report.uncertain:
        lines.append(f"  uncertain: {report.uncertain}")
    if report.patch is not None:
        lines.append(f"  would patch: {json.dumps(report.patch)}")
        lines.append(f"  {report.decision.removeprefix('would patch, ')}")
    else:
        lines.append(f"  {report.decision}")
    return lines


def _parameters_line(values: dict[str, Any] | None) -> str:
    if values is None:
        return "invalid (see above)"
    shown = {**values, "insecure-registry": str(values["insecure-registry"]).lower(),
             "paths": ",".join(values["paths"]) if values["paths"] is not None else None,
             "unknown": ",".join(values["unknown"])}
    return " ".join(f"{key}={'(any change)' if value is None else _shown(str(value))}"
                    for key, value in shown.items() if key != "unknown" or value)


def _target_line(values: dict[str, Any]) -> str:
    extras = [f"sub path {values['sub_path']}"] if values.get("sub_path") else []
    extras += [f"credentials from Secret {values['credentials']}"] if values["credentials"] else []
    return str(values["describe"]) + (f" ({', '.join(extras)})" if extras else "")


def _listed(files: list[str]) -> str:
    if not files:
        return "nothing"
    shown = ", ".join(files[:SHOWN_FILES])
    return shown + (f" and {len(files) - SHOWN_FILES} more" if len(files) > SHOWN_FILES else "")


def _printable(line: str) -> str:
    """The line with control characters escaped: a Function's fields are anyone's text, and a
    terminal obeys the escape sequences it prints."""
    return line if line.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)


def _shown(value: str) -> str:
    """A value as it is when it reads unambiguously on one line, else quoted."""
    return value if value.isprintable() and " " not in value and '"' not in value else json.dumps(value)
