"""Writing the contract's status patch, with the resourceVersion precondition.

On 409 the Function changed under us: read it again and decide again, a
bounded number of times. A patch is recorded as an Event on the Function.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from kubernetes.client.exceptions import ApiException

from revision_controller.decision import Change, decide, with_precondition
from revision_controller.events import NORMAL, EventRecorder, InvolvedFunction
from revision_controller.function import FunctionView, view_of
from revision_controller.kube import FunctionsApi, api_error_summary
from revision_controller.metrics import Metrics

MAX_ATTEMPTS = 4

log = logging.getLogger(__name__)


# What happened to one Function for one observed value.
PatchResult = Literal["unchanged", "patched", "gone", "conflict", "failed", "standby"]
# Whether a change is still written, given the Function as it is now: None leaves it unwritten.
Screen = Callable[[FunctionView, Change], Change | None]


class StatusPatcher:
    def __init__(self, functions: FunctionsApi, events: EventRecorder, metrics: Metrics,
                 on_view: Callable[[FunctionView], None], may_act: Callable[[], bool]) -> None:
        self._functions = functions
        self._events = events
        self._metrics = metrics
        self._on_view = on_view
        self._may_act = may_act

    def apply(self, type_: str, view: FunctionView, observed: str, found_through: str = "",
              screen: Screen | None = None) -> PatchResult:
        """Write what `observed` calls for on a Function watching as `type_`; `found_through` names
        what prompted the poll (a webhook, say) for the Event; `screen` may keep a change unwritten
        (a source change outside the Function's paths)."""
        result = self._apply(type_, view, observed, found_through, screen)
        if result != "unchanged":
            self._metrics.patched(result)
        return result

    def _apply(self, type_: str, view: FunctionView, observed: str, found_through: str,
               screen: Screen | None) -> PatchResult:
        for attempt in range(MAX_ATTEMPTS):
            change = decide(type_, view, observed)
            if change is not None and screen is not None:
                change = screen(view, change)
            if change is None:
                return "unchanged"
            if attempt == 0:
                self._metrics.changed(type_)
            if not self._may_act():  # leadership was lost while this poll ran
                return "standby"
            try:
                patched = view_of(self._functions.patch_status(
                    view.ref, with_precondition(change.patch, view.resource_version)))
            except ApiException as error:
                if error.status == 409:
                    log.info("Function %s changed while patching; reading it again", view.ref)
                    fresh = self._reread(view)
                    if fresh is None:
                        return "gone"
                    view = fresh
                    continue
                if error.status == 404:
                    return "gone"
                log.error("could not patch the status of Function %s: %s; will retry at the next poll",
                          view.ref, api_error_summary(error))
                return "failed"
            self._on_view(patched)
            self._announce(view, change, found_through)
            return "patched"
        log.warning("gave up patching Function %s after %d conflicts; will retry at the next poll",
                    view.ref, MAX_ATTEMPTS)
        return "conflict"

    def _reread(self, view: FunctionView) -> FunctionView | None:
        try:
            fresh = view_of(self._functions.get(view.ref))
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        self._on_view(fresh)
        return fresh

    def _announce(self, view: FunctionView, change: Change, found_through: str) -> None:
        message = f"{change.message} (found through {found_through})" if found_through else change.message
        log.info("Function %s: %s", view.ref, message)
        self._events.record(involved(view, self._functions.api_version), NORMAL, change.reason, message)


def involved(view: FunctionView, api_version: str) -> InvolvedFunction:
    return InvolvedFunction(view.ref, view.uid, api_version)
