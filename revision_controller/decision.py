"""Which status patch, if any, an observed value calls for. Pure: the contract's table."""

from __future__ import annotations

from typing import Any

from revision_controller.function import DEFAULT_SOURCE, FunctionView


def source_patch(view: FunctionView, head: str) -> dict[str, Any] | None:
    """The merge patch that makes OpenFunction rebuild from `head`, or None.

    A Function that was never built has no recorded commit: its first build
    records one, so nothing is written.
    """
    if not view.commit_sha or view.commit_sha == head:
        return None
    return {"status": {"build": None,
                       "sources": [{"name": DEFAULT_SOURCE, "git": {"commitSha": head}}]}}


def with_precondition(patch: dict[str, Any], resource_version: str) -> dict[str, Any]:
    """The patch carrying the resourceVersion it was decided on, so a concurrent
    write makes it fail with 409 instead of being overwritten."""
    return {"metadata": {"resourceVersion": resource_version}, **patch}
