"""Which status patch, if any, an observed value calls for. Pure: the contract's table."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from providers import ChangedFiles
from revision_controller.function import DEFAULT_SOURCE, FunctionView
from revision_controller.paths import PathFilter

UNCHANGED_IN_PATHS = "SourceUnchangedInPaths"
# Changed files named in an Event or printed by `check`, at most.
SHOWN_FILES = 10


@dataclass(frozen=True)
class Change:
    """A patch to write, and what to tell the Function's owner about it."""

    patch: dict[str, Any]
    reason: str
    message: str


def decide(type_: str, view: FunctionView, observed: str) -> Change | None:
    """The change that makes OpenFunction rebuild or redeploy from `observed`, or None."""
    if type_ == "source":
        return _source(view, observed)
    if type_ == "source-image":
        return _source_image(view, observed)
    return _image(view, observed)


def _source(view: FunctionView, head: str) -> Change | None:
    # A Function that was never built has no recorded commit: its first build records one.
    if not view.commit_sha or view.commit_sha == head:
        return None
    return Change({"status": {"build": None,
                              "sources": [{"name": DEFAULT_SOURCE, "git": {"commitSha": head}}]}},
                  "SourceChanged",
                  f"source changed from {view.commit_sha} to {head}: status patched so the Function rebuilds")


def _source_image(view: FunctionView, digest: str) -> Change | None:
    if view.bundle_digest == digest:
        return None
    return Change({"status": {"build": None,
                              "sources": [{"name": DEFAULT_SOURCE, "bundle": {"digest": digest}}]}},
                  "SourceImageChanged",
                  f"source image {view.bundle_image} changed from {view.bundle_digest or '(none recorded)'} "
                  f"to {digest}: status patched so the Function rebuilds")


def _image(view: FunctionView, digest: str) -> Change | None:
    if view.image_digest == digest:
        return None
    return Change({"status": {"serving": {"state": "", "resourceHash": ""},
                              "revision": {"imageDigest": digest}}},
                  "ImageChanged",
                  f"image {view.image} changed from {view.image_digest or '(none recorded)'} to {digest}: "
                  f"status patched so the Function is served again")


@dataclass(frozen=True)
class Screened:
    """What a Function's `paths` make of a source change: the change to write, or None when
    every changed file lies elsewhere (then `skipped` tells why); `matched` are the changed
    files its paths cover."""

    change: Change | None
    matched: tuple[str, ...] = ()
    skipped: str = ""


def screen(change: Change, head: str, paths: PathFilter, changed: ChangedFiles) -> Screened:
    """Keep a source change only when a changed file is in `paths`, or when which files changed
    is uncertain: a missed rebuild is worse than an extra one."""
    matched = tuple(paths.matching(list(changed.files)))
    if changed.uncertain:
        return Screened(replace(change, message=f"{change.message}, although paths is set, because "
                                                f"{changed.uncertain}"), matched)
    if matched:
        return Screened(replace(change, message=f"{change.message} ({_listed(matched)} in paths)"), matched)
    patterns = _listed(tuple(json.dumps(pattern) for pattern in paths.patterns))
    return Screened(None, skipped=(
        f"source moved to {head}, but no changed file is in paths [{patterns}]: not rebuilt"
        + (f" (changed: {_listed(changed.files)})" if changed.files else "")))


def _listed(files: tuple[str, ...]) -> str:
    shown = ", ".join(files[:SHOWN_FILES])
    return shown + (f" and {len(files) - SHOWN_FILES} more" if len(files) > SHOWN_FILES else "")


def with_precondition(patch: dict[str, Any], resource_version: str) -> dict[str, Any]:
    """The patch carrying the resourceVersion it was decided on, so a concurrent
    write makes it fail with 409 instead of being overwritten."""
    return {"metadata": {"resourceVersion": resource_version}, **patch}
